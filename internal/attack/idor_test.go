package attack_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferrytest"
)

// persona is an attacker identity of the matrix.
type persona struct {
	name, email, tok string
	// ownData: routes about "my own" tokens, sessions and uploads answer
	// this persona with its own (empty) data, not a denial.
	ownData bool
}

// idorCase attacks one route. path and body may use {TOK}, {SESS}, {UPLOAD}
// (alice's token, session and upload ids); for "ext" (the external user,
// whose party folder is /finance/2026) paths are taken under /hr instead.
type idorCase struct {
	pattern      string
	method, path string
	body         string
	hdr          []string
	own          bool // answers the caller's own data: a denial only for revoked tokens
	readOK       bool // allowed for a read-scoped token of alice
	// obj names alice's object the path attacks ({PKG}, {DRAFT}, {SHARE},
	// {WATCH}): each denial must be audited with it, for the identity
	// refused (not only some denial of that identity's).
	obj string
}

var idorCases = []idorCase{
	{pattern: "GET /api/v1/me", method: "GET", path: "/api/v1/me", own: true, readOK: true},
	{pattern: "GET /api/v1/tokens", method: "GET", path: "/api/v1/tokens", own: true, readOK: true},
	{pattern: "POST /api/v1/tokens", method: "POST", path: "/api/v1/tokens", body: `{"name":"idor","scope":"read,write,share"}`, own: true, hdr: []string{"Content-Type", "application/json"}},
	// Revoking one's own tokens and sessions needs only a token (docs/API.md):
	// a read-only token of alice may; no one else may.
	{pattern: "DELETE /api/v1/tokens/{id}", method: "DELETE", path: "/api/v1/tokens/{TOK}", readOK: true},
	{pattern: "GET /api/v1/sessions", method: "GET", path: "/api/v1/sessions", own: true, readOK: true},
	{pattern: "DELETE /api/v1/sessions/{id}", method: "DELETE", path: "/api/v1/sessions/{SESS}", readOK: true},
	{pattern: "GET /api/v1/files/{path...}", method: "GET", path: "/api/v1/files/finance/2026/report.txt", readOK: true},
	{pattern: "HEAD /api/v1/files/{path...}", method: "HEAD", path: "/api/v1/files/finance/2026/report.txt", readOK: true},
	{pattern: "PUT /api/v1/files/{path...}", method: "PUT", path: "/api/v1/files/finance/2026/report.txt", body: "overwritten by an attacker"},
	{pattern: "DELETE /api/v1/files/{path...}", method: "DELETE", path: "/api/v1/files/finance/2026/report.txt"},
	{pattern: "POST /api/v1/files/{path...}", method: "POST", path: "/api/v1/files/finance/2026/report.txt?move=/finance/2026/stolen.txt"},
	{pattern: "GET /api/v1/folders/{path...}", method: "GET", path: "/api/v1/folders/finance/2026", readOK: true},
	{pattern: "POST /api/v1/folders/{path...}", method: "POST", path: "/api/v1/folders/finance/2026/planted"},
	{pattern: "GET /api/v1/uploads/{$}", method: "GET", path: "/api/v1/uploads/", own: true, readOK: true},
	{pattern: "POST /api/v1/uploads/{$}", method: "POST", path: "/api/v1/uploads/", hdr: []string{"Tus-Resumable", "1.0.0", "Upload-Length", "5", "Upload-Metadata", "path " + b64("/finance/2026/planted.txt")}},
	{pattern: "HEAD /api/v1/uploads/{id}", method: "HEAD", path: "/api/v1/uploads/{UPLOAD}", hdr: []string{"Tus-Resumable", "1.0.0"}, readOK: true},
	// Abandoning an upload shreds what arrived: a write, refused to a
	// read-only token like PATCH is.
	{pattern: "PATCH /api/v1/uploads/{id}", method: "PATCH", path: "/api/v1/uploads/{UPLOAD}", body: "AAAAA",
		hdr: []string{"Tus-Resumable", "1.0.0", "Upload-Offset", "0", "Content-Type", "application/offset+octet-stream"}},
	{pattern: "DELETE /api/v1/uploads/{id}", method: "DELETE", path: "/api/v1/uploads/{UPLOAD}", hdr: []string{"Tus-Resumable", "1.0.0"}},
	// Packages: alice's sent package (to herself and a guest) and her
	// draft. No one but its sender and recipients may read, send, recall
	// or download it; composing needs the share scope.
	{pattern: "POST /api/v1/packages", method: "POST", path: "/api/v1/packages", body: `{"to":["partner@example.org"],"subject":"idor"}`, own: true, hdr: []string{"Content-Type", "application/json"}},
	{pattern: "GET /api/v1/packages", method: "GET", path: "/api/v1/packages", own: true, readOK: true},
	{pattern: "GET /api/v1/packages/{id}", method: "GET", path: "/api/v1/packages/{PKG}", readOK: true, obj: "{PKG}"},
	{pattern: "GET /api/v1/packages/{id}", method: "GET", path: "/api/v1/packages/{DRAFT}", readOK: true, obj: "{DRAFT}"},
	{pattern: "POST /api/v1/packages/{id}/send", method: "POST", path: "/api/v1/packages/{DRAFT}/send", obj: "{DRAFT}"},
	{pattern: "POST /api/v1/packages/{id}/recall", method: "POST", path: "/api/v1/packages/{PKG}/recall", obj: "{PKG}"},
	// alice is a recipient of her own package: her read-only token may
	// download it (a read). Everyone else: denied.
	{pattern: "GET /api/v1/packages/{id}/files/{file}", method: "GET", path: "/api/v1/packages/{PKG}/files/{PFILE}", readOK: true, obj: "{PKG}"},
	// Share links: only their maker (and the organisation's admins) list
	// or revoke them; making one needs share permission and scope.
	{pattern: "POST /api/v1/shares", method: "POST", path: "/api/v1/shares", body: `{"path":"/finance/2026/report.txt"}`, hdr: []string{"Content-Type", "application/json"}},
	{pattern: "GET /api/v1/shares", method: "GET", path: "/api/v1/shares", own: true, readOK: true},
	{pattern: "GET /api/v1/shares", method: "GET", path: "/api/v1/shares?all=true", own: true, readOK: true},
	{pattern: "DELETE /api/v1/shares/{id}", method: "DELETE", path: "/api/v1/shares/{SHARE}", obj: "{SHARE}"},
	// Folder watches: a watch is its user's alone. Watching needs list or
	// read permission on the folder (a read-only token may watch).
	{pattern: "POST /api/v1/watches", method: "POST", path: "/api/v1/watches", body: `{"path":"/finance/2026"}`, readOK: true, hdr: []string{"Content-Type", "application/json"}},
	{pattern: "GET /api/v1/watches", method: "GET", path: "/api/v1/watches", own: true, readOK: true},
	// Ending one's own watch, like revoking one's own token, needs only a
	// token (transfer.Unwatch checks no scope).
	{pattern: "DELETE /api/v1/watches/{id}", method: "DELETE", path: "/api/v1/watches/{WATCH}", readOK: true, obj: "{WATCH}"},
}

// idorPublic are API routes open by design (no identity to abuse).
var idorPublic = map[string]bool{
	"GET /healthz": true, "GET /api/v1/openapi.yaml": true, "POST /api/v1/auth/token": true,
	"OPTIONS /api/v1/uploads/{$}": true, "OPTIONS /api/v1/uploads/{id}": true,
}

// TestIDORMatrix (MOVEit step 2 and every IDOR since: a valid identity used
// on someone else's objects): every API route × another user of the same
// organisation, an administrator of another organisation, an external user
// of a party, a revoked token, and a read-only token of the owner → denied
// (401/403/404) with none of the victim's data in the body; the victim's
// objects are intact afterwards; and the denials are audited. An ended web
// session's cookie opens no page. A new API route without a case fails by
// name.
func TestIDORMatrix(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	s := w.s

	// Alice's objects: a second token, a web session, an upload in progress.
	victimTok := strings.TrimSpace(s.Admin("token", "create", "--user", "alice@acme.test"))
	tokID := strings.Split(victimTok, "_")[1]
	web := webLogin(t, s, "alice@acme.test", alicePassword)
	var sessions struct {
		Sessions []struct {
			ID string `json:"id"`
		} `json:"sessions"`
	}
	json.Unmarshal([]byte(ferrytest.Expect(t, s.Do("GET", "/api/v1/sessions", w.alice, nil), 200)), &sessions)
	if len(sessions.Sessions) == 0 {
		t.Fatal("alice has no web session")
	}
	sessID := sessions.Sessions[0].ID
	res := s.Do("POST", "/api/v1/uploads/", w.alice, nil, "Tus-Resumable", "1.0.0", "Upload-Length", "100", "Upload-Metadata", "path "+b64("/finance/2026/inflight.txt"))
	ferrytest.Expect(t, res, 201)
	uploadID := res.Header.Get("Location")
	uploadID = uploadID[strings.LastIndexByte(uploadID, '/')+1:]
	if uploadID == "" {
		t.Fatal("no upload id")
	}

	// Her package, draft, share link and watch.
	obj := makeObjects(t, s, w.alice)

	// The attackers.
	revoked := strings.TrimSpace(s.Admin("token", "create", "--user", "alice@acme.test"))
	s.Admin("token", "revoke", strings.Split(revoked, "_")[1])
	var ro struct{ Token string }
	json.Unmarshal([]byte(ferrytest.Expect(t, s.Do("POST", "/api/v1/tokens", w.alice, strings.NewReader(`{"name":"ro","scope":"read"}`), "Content-Type", "application/json"), 201)), &ro)
	personas := []persona{
		{name: "same org", email: "carol@acme.test", tok: w.carol, ownData: true},
		{name: "other org", email: "bob@other.test", tok: w.bob, ownData: true},
		{name: "external", email: "ext@globex.test", tok: w.ext, ownData: true},
		{name: "revoked token", tok: revoked},
		{name: "read-only token", email: "alice@acme.test", tok: ro.Token, ownData: true},
	}
	secrets := []string{reportBody, salaryBody, victimTok, tokID, sessID, uploadID,
		pkgBody, obj.pkg, obj.pkgFile, obj.draft, obj.share, obj.shareTok, obj.watch}

	// Every API route has a case.
	cased := map[string]bool{}
	for _, c := range idorCases {
		cased[c.pattern] = true
	}
	pub, _ := routeTables(t)
	for _, p := range pub {
		_, path := splitPattern(p)
		if strings.HasPrefix(path, "/api/") && !cased[p] && !idorPublic[p] {
			t.Errorf("API route %q has no IDOR case: add one to idorCases in internal/attack/idor_test.go", p)
		}
	}

	n := 0
	type audited struct{ actor, action, obj string }
	var mustAudit []audited
	for _, c := range idorCases {
		for _, pe := range personas {
			ro := pe.name == "read-only token"
			if ro && c.readOK {
				continue // alice reading with her read-only token: allowed
			}
			path := obj.replace(strings.NewReplacer("{TOK}", tokID, "{SESS}", sessID, "{UPLOAD}", uploadID).Replace(c.path))
			cbody := c.body
			if pe.name == "external" {
				path = strings.Replace(path, "finance/2026", "hr", 1)
				path = strings.Replace(path, "report.txt", "salaries.txt", 1)
				cbody = strings.Replace(strings.Replace(cbody, "finance/2026", "hr", 1), "report.txt", "salaries.txt", 1)
			}
			hdr := append([]string(nil), c.hdr...)
			if pe.name == "external" {
				for i := range hdr {
					hdr[i] = strings.Replace(hdr[i], b64("/finance/2026/planted.txt"), b64("/hr/planted.txt"), 1)
				}
			}
			var body *strings.Reader
			if cbody != "" {
				body = strings.NewReader(cbody)
			} else {
				body = strings.NewReader("")
			}
			var res *http.Response
			if pe.name == "revoked token" {
				// Bad tokens lock an address out (429) after a few: each
				// from its own address, as a botnet would.
				res = fromNewAddress(t, s, c.method, path, pe.tok, body, hdr...)
			} else {
				res = s.Do(c.method, path, pe.tok, body, hdr...)
			}
			b := ferrytest.Body(t, res)
			n++
			for _, sec := range secrets {
				if sec != "" && strings.Contains(b, sec) {
					t.Errorf("%s as %s: the body holds alice's data (%.20q…)", c.pattern, pe.name, sec)
				}
			}
			if c.own && pe.ownData && !ro {
				// Its own data: allowed, but none of alice's may show.
				if res.StatusCode >= 500 {
					t.Errorf("%s as %s: %d", c.pattern, pe.name, res.StatusCode)
				}
				continue
			}
			want := []int{403, 404}
			if pe.name == "revoked token" {
				want = []int{401}
			}
			if !containsInt(want, res.StatusCode) {
				t.Errorf("%s %s as %s: %d, want %v: %.200s", c.method, path, pe.name, res.StatusCode, want, b)
			}
			if c.obj != "" && pe.email != "" {
				mustAudit = append(mustAudit, audited{pe.email, c.method + " " + path, obj.replace(c.obj)})
			}
		}
	}

	// Alice's objects are intact.
	if b := ferrytest.Expect(t, s.Do("GET", "/api/v1/files"+reportPath, w.alice, nil), 200); b != reportBody {
		t.Errorf("alice's report changed: %q", b)
	}
	if b := ferrytest.Expect(t, s.Do("GET", "/api/v1/files"+salaryPath, w.admin, nil), 200); b != salaryBody {
		t.Errorf("the salaries changed: %q", b)
	}
	ferrytest.Expect(t, s.Do("GET", "/api/v1/me", victimTok, nil), 200)
	ferrytest.Expect(t, s.Do("HEAD", "/api/v1/uploads/"+uploadID, w.alice, nil, "Tus-Resumable", "1.0.0"), 200)
	checkObjectsIntact(t, s, w, obj)
	if r, _ := do(t, web, "GET", s.URL()+"/account", "", ""); r.StatusCode != 200 {
		t.Errorf("alice's web session was ended: %d", r.StatusCode)
	}
	for _, p := range []string{"/finance/2026/stolen.txt", "/finance/2026/planted.txt", "/hr/planted.txt"} {
		if r := s.Do("HEAD", "/api/v1/files"+p, w.admin, nil); r.StatusCode != 404 {
			ferrytest.Body(t, r)
			t.Errorf("%s exists after the attacks: %d", p, r.StatusCode)
		} else {
			ferrytest.Body(t, r)
		}
	}

	// An ended session's cookie opens no page.
	ended := webLogin(t, s, "alice@acme.test", alicePassword)
	u, _ := url.Parse(s.URL())
	var endedCookie string
	for _, c := range ended.Jar.Cookies(u) {
		if c.Name == auth.SessionCookie {
			endedCookie = c.Value
		}
	}
	json.Unmarshal([]byte(ferrytest.Expect(t, s.Do("GET", "/api/v1/sessions", w.alice, nil), 200)), &sessions)
	for _, ss := range sessions.Sessions {
		if ss.ID != sessID {
			ferrytest.Body(t, s.Do("DELETE", "/api/v1/sessions/"+ss.ID, w.alice, nil))
		}
	}
	for _, p := range []string{"/account", "/files/finance/2026", "/download" + reportPath, "/zip/finance", "/inbox",
		"/outbox", "/outbox/new", "/packages/" + obj.pkg, "/packages/" + obj.pkg + "/files/" + obj.pkgFile, "/shares", "/move" + reportPath} {
		req, _ := http.NewRequest("GET", s.URL()+p, nil)
		req.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: endedCookie})
		r, err := (&http.Client{Transport: s.HTTP().Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b := ferrytest.Body(t, r)
		// A redirect to the sign-in page (which names the page asked for in
		// its link) or a refusal; nothing of alice's.
		loc := r.Header.Get("Location")
		toLogin := r.StatusCode == http.StatusSeeOther && strings.HasPrefix(loc, "/login")
		if !toLogin && r.StatusCode != 401 && r.StatusCode != 403 && r.StatusCode != 404 {
			t.Errorf("GET %s with an ended session: %d %s", p, r.StatusCode, loc)
		}
		for _, sec := range []string{reportBody, pkgBody, "Contract", obj.share, obj.watch} {
			if strings.Contains(b, sec) {
				t.Errorf("GET %s with an ended session: the body holds %q", p, sec)
			}
		}
		if !toLogin && strings.Contains(b, "report.txt") {
			t.Errorf("GET %s with an ended session lists alice's files", p)
		}
	}

	// The denials are audited, for each identity that was refused.
	denied := map[string]int{}
	for _, e := range auditLog(t, s) {
		if e.Outcome == "denied" {
			denied[e.Actor]++
		}
	}
	for _, pe := range personas {
		if pe.email != "" && denied[pe.email] == 0 {
			t.Errorf("no denied audit record for %s (%s); denied records by actor: %v", pe.email, pe.name, denied)
		}
	}
	t.Logf("%d attacks; denied audit records by actor: %v", n, denied)
	// Each refusal to touch one of alice's objects is on record with the
	// object, for the identity refused.
	evs := auditLog(t, s)
	for _, m := range mustAudit {
		found := false
		for _, e := range evs {
			if e.Outcome == "denied" && e.Actor == m.actor && (e.Object == m.obj || strings.Contains(e.Path, m.obj) || strings.Contains(e.Detail, m.obj)) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("%s as %s was refused without a denied audit record naming %s", m.action, m.actor, m.obj)
		}
	}
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

var addrSeq atomic.Uint32

// fromNewAddress sends an API request from a fresh address of 127.2.0.0/16.
func fromNewAddress(t *testing.T, s target, method, path, tok string, body io.Reader, hdr ...string) *http.Response {
	t.Helper()
	i := addrSeq.Add(1)
	tr := s.HTTP().Transport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 2, byte(i>>8), byte(i))}}
	tr.DialContext = d.DialContext
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(method, s.URL()+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// checkObjectsIntact checks that alice's package, draft, share link and
// watch are as she left them after the attacks.
func checkObjectsIntact(t *testing.T, s target, w *world, obj objects) {
	t.Helper()
	var pkg struct{ Status string }
	json.Unmarshal([]byte(ferrytest.Expect(t, s.Do("GET", "/api/v1/packages/"+obj.pkg, w.alice, nil), 200)), &pkg)
	if pkg.Status != "sent" {
		t.Errorf("alice's package is %q after the attacks, want sent", pkg.Status)
	}
	json.Unmarshal([]byte(ferrytest.Expect(t, s.Do("GET", "/api/v1/packages/"+obj.draft, w.alice, nil), 200)), &pkg)
	if pkg.Status != "draft" {
		t.Errorf("alice's draft is %q after the attacks, want draft", pkg.Status)
	}
	if b := ferrytest.Expect(t, s.Do("GET", "/api/v1/packages/"+obj.pkg+"/files/"+obj.pkgFile, w.alice, nil), 200); b != pkgBody {
		t.Errorf("alice's package file: %q", b)
	}
	if b := ferrytest.Expect(t, s.Do("GET", "/api/v1/shares", w.alice, nil), 200); !strings.Contains(b, obj.share) {
		t.Errorf("alice's share link is gone: %s", b)
	}
	if b := ferrytest.Expect(t, s.Do("GET", "/api/v1/watches", w.alice, nil), 200); !strings.Contains(b, obj.watch) {
		t.Errorf("alice's watch is gone: %s", b)
	}
}
