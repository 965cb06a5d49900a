package httpd_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"ferry.dev/ferry/internal/ferrytest"
)

// setup starts a server with org acme: an admin, a user with grants on
// /finance, and an outsider in another org.
func setup(t *testing.T, opts ...ferrytest.Option) (s *ferrytest.Server, admin, alice, bob string) {
	s = ferrytest.Start(t, opts...)
	admin = s.User("acme", "admin@acme.test", "admin")
	s.Admin("party", "create", "--org", "acme", "Globex", "--contact", "legal@globex.test")
	s.Admin("folder", "create", "--org", "acme", "/finance/2026", "--party", "Globex")
	s.Admin("folder", "create", "--org", "acme", "/hr")
	alice = s.User("acme", "alice@acme.test", "user")
	s.Admin("grant", "--org", "acme", "--user", "alice@acme.test", "/finance", "list,read,write,delete")
	bob = s.User("other", "bob@other.test", "admin")
	return
}

type errResp struct {
	Error struct{ Kind, Message string } `json:"error"`
}

func expectErr(t *testing.T, res *http.Response, status int, kind string) {
	t.Helper()
	b := ferrytest.Expect(t, res, status)
	var e errResp
	if err := json.Unmarshal([]byte(b), &e); err != nil || e.Error.Kind != kind || e.Error.Message == "" {
		t.Fatalf("%s %s: body %s, want error kind %q", res.Request.Method, res.Request.URL.Path, b, kind)
	}
	if strings.Contains(b, "goroutine") || strings.Contains(b, ".go:") {
		t.Fatalf("error body leaks internals: %s", b)
	}
}

func TestPutGetListDelete(t *testing.T) {
	s, _, alice, _ := setup(t)
	content := bytes.Repeat([]byte("quarterly numbers\n"), 20000) // 360 KB: several segments
	sum := sha256.Sum256(content)

	b := ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/finance/2026/report.pdf", alice, bytes.NewReader(content)), 201)
	var put struct {
		Path, SHA256, Expires string
		Size                  int64
	}
	if err := json.Unmarshal([]byte(b), &put); err != nil || put.Path != "/finance/2026/report.pdf" || put.Size != int64(len(content)) || put.SHA256 != hex.EncodeToString(sum[:]) || put.Expires == "" {
		t.Fatalf("PUT response %s", b)
	}

	res := s.Do("GET", "/api/v1/files/finance/2026/report.pdf", alice, nil)
	got := ferrytest.Expect(t, res, 200)
	if got != string(content) {
		t.Fatalf("GET returned %d bytes, want %d", len(got), len(content))
	}
	for h, want := range map[string]string{
		"Content-Disposition":    `attachment; filename=report.pdf`,
		"X-Content-Type-Options": "nosniff",
		"Content-Type":           "application/octet-stream",
		"Repr-Digest":            "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":",
		"Etag":                   `"` + hex.EncodeToString(sum[:]) + `"`,
	} {
		if g := res.Header.Get(h); g != want {
			t.Errorf("%s = %q, want %q", h, g, want)
		}
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") {
		t.Errorf("CSP %q lacks sandbox", csp)
	}

	// Range reads.
	res = s.Do("GET", "/api/v1/files/finance/2026/report.pdf", alice, nil, "Range", "bytes=100000-100099")
	if g := ferrytest.Expect(t, res, 206); g != string(content[100000:100100]) {
		t.Fatalf("range body wrong")
	}
	if cr := res.Header.Get("Content-Range"); cr != "bytes 100000-100099/360000" {
		t.Fatalf("Content-Range %q", cr)
	}
	res = s.Do("GET", "/api/v1/files/finance/2026/report.pdf", alice, nil, "Range", "bytes=-10")
	if g := ferrytest.Expect(t, res, 206); g != string(content[len(content)-10:]) {
		t.Fatalf("suffix range body wrong")
	}
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/2026/report.pdf", alice, nil, "Range", "bytes=999999-"), 416)
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/2026/report.pdf", alice, nil, "If-None-Match", `"`+hex.EncodeToString(sum[:])+`"`), 304)

	// HEAD
	res = s.Do("HEAD", "/api/v1/files/finance/2026/report.pdf", alice, nil)
	ferrytest.Expect(t, res, 200)
	if res.ContentLength != int64(len(content)) {
		t.Fatalf("HEAD Content-Length %d", res.ContentLength)
	}

	// Listing
	b = ferrytest.Expect(t, s.Do("GET", "/api/v1/folders/finance/2026", alice, nil), 200)
	var list struct {
		Entries []struct {
			Name, Type, SHA256 string
			Size               int64
		}
	}
	json.Unmarshal([]byte(b), &list)
	if len(list.Entries) != 1 || list.Entries[0].Name != "report.pdf" || list.Entries[0].Type != "file" || list.Entries[0].Size != int64(len(content)) {
		t.Fatalf("listing %s", b)
	}
	// The root shows alice only the way to /finance, not /hr.
	b = ferrytest.Expect(t, s.Do("GET", "/api/v1/folders/", alice, nil), 200)
	if !strings.Contains(b, `"finance"`) || strings.Contains(b, `"hr"`) {
		t.Fatalf("root listing for alice: %s", b)
	}

	// Replace: the new version wins.
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/finance/2026/report.pdf", alice, strings.NewReader("v2")), 201)
	if g := ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/2026/report.pdf", alice, nil), 200); g != "v2" {
		t.Fatalf("after replace got %q", g)
	}

	// Move, mkdir, delete.
	ferrytest.Expect(t, s.Do("POST", "/api/v1/folders/finance/2026/q4", alice, nil), 201)
	ferrytest.Expect(t, s.Do("POST", "/api/v1/files/finance/2026/report.pdf?move=/finance/2026/q4/final.pdf", alice, nil), 200)
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/2026/report.pdf", alice, nil), 404)
	if g := ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/2026/q4/final.pdf", alice, nil), 200); g != "v2" {
		t.Fatalf("after move got %q", g)
	}
	ferrytest.Expect(t, s.Do("DELETE", "/api/v1/files/finance/2026/q4/final.pdf", alice, nil), 204)
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/2026/q4/final.pdf", alice, nil), 404)
	ferrytest.Expect(t, s.Do("DELETE", "/api/v1/files/finance/2026/q4", alice, nil), 204)
}

func TestBadInput(t *testing.T) {
	s, admin, alice, bob := setup(t)
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/finance/2026/a.txt", alice, strings.NewReader("secret")), 201)

	for _, p := range []string{
		"/api/v1/files/finance/../hr/x",
		"/api/v1/files/finance/%2e%2e/hr/x",
		"/api/v1/files/finance//x",
		"/api/v1/files/finance/./x",
		"/api/v1/files/finance/a%00b",
		"/api/v1/files/finance/a%01b",
		"/api/v1/files/finance/" + strings.Repeat("a", 4100),
		"/api/v1/files/finance/" + strings.Repeat("a/", 2100) + "x",
	} {
		expectErr(t, s.Do("PUT", p, alice, strings.NewReader("x")), 400, "invalid")
	}
	// No write permission on /hr: alice cannot see it → 404; a user who can
	// see it but not write → 403.
	expectErr(t, s.Do("PUT", "/api/v1/files/hr/x.txt", alice, strings.NewReader("x")), 404, "not_exist")
	s.Admin("grant", "--org", "acme", "--user", "alice@acme.test", "/hr", "list")
	expectErr(t, s.Do("PUT", "/api/v1/files/hr/x.txt", alice, strings.NewReader("x")), 403, "permission")
	// A user without any grant sees an empty root, and nothing else.
	carol := s.User("acme", "carol@acme.test", "user")
	if b := ferrytest.Expect(t, s.Do("GET", "/api/v1/folders/", carol, nil), 200); !strings.Contains(b, `"entries": []`) {
		t.Fatalf("root listing for a user without grants: %s", b)
	}
	expectErr(t, s.Do("GET", "/api/v1/folders/finance", carol, nil), 404, "not_exist")
	expectErr(t, s.Do("PUT", "/api/v1/files/x.txt", carol, strings.NewReader("x")), 403, "permission")
	// Another organisation's path: not found, whatever exists there.
	expectErr(t, s.Do("GET", "/api/v1/files/finance/2026/a.txt", bob, nil), 404, "not_exist")
	// Missing parent folder.
	expectErr(t, s.Do("PUT", "/api/v1/files/finance/nope/x.txt", alice, strings.NewReader("x")), 404, "not_exist")
	// Tokens.
	expectErr(t, s.Do("GET", "/api/v1/files/finance/2026/a.txt", "", nil), 401, "unauthenticated")
	expectErr(t, s.Do("GET", "/api/v1/files/finance/2026/a.txt", "ferry_0000000000000000_bogus", nil), 401, "unauthenticated")
	expectErr(t, s.Do("GET", "/api/v1/files/finance/2026/a.txt", alice[:len(alice)-2]+"xx", nil), 401, "unauthenticated")
	// Unknown route and admin routes on the public listener.
	expectErr(t, s.Do("POST", "/admin/v1/orgs", admin, strings.NewReader(`{"name":"x"}`)), 404, "not_exist")
	expectErr(t, s.Do("GET", "/metrics", "", nil), 404, "not_exist")
	// Conflicts.
	expectErr(t, s.Do("POST", "/api/v1/folders/finance/2026", alice, nil), 409, "exist")
	expectErr(t, s.Do("POST", "/api/v1/files/finance/2026/a.txt", alice, nil), 400, "invalid")
}

func TestRevokedAndExpiredTokens(t *testing.T) {
	s, _, alice, _ := setup(t)
	ferrytest.Expect(t, s.Do("GET", "/api/v1/folders/finance", alice, nil), 200)
	id := strings.Split(alice, "_")[1]
	s.Admin("token", "revoke", id)
	expectErr(t, s.Do("GET", "/api/v1/folders/finance", alice, nil), 401, "unauthenticated")

	tok := strings.TrimSpace(s.Admin("token", "create", "--user", "alice@acme.test", "--expires", "1s"))
	ferrytest.Expect(t, s.Do("GET", "/api/v1/folders/finance", tok, nil), 200)
	waitExpired(t, s, tok)

	tok = strings.TrimSpace(s.Admin("token", "create", "--user", "alice@acme.test"))
	s.Admin("user", "disable", "alice@acme.test")
	expectErr(t, s.Do("GET", "/api/v1/folders/finance", tok, nil), 401, "unauthenticated")
}

func waitExpired(t *testing.T, s *ferrytest.Server, tok string) {
	t.Helper()
	for i := 0; i < 50; i++ {
		res := s.Do("GET", "/api/v1/folders/finance", tok, nil)
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode == 401 {
			return
		}
		sleep()
	}
	t.Fatal("expired token still accepted")
}

// TestBadTokenLockout: an address that presents ten bad tokens in a row is
// locked out (429 with Retry-After), even with a good token, and stops
// filling the audit log.
func TestBadTokenLockout(t *testing.T) {
	s, _, alice, _ := setup(t)
	for i := 0; i < 10; i++ {
		expectErr(t, s.Do("GET", "/api/v1/folders/finance", "ferry_0123456789abcdef_guess", nil), 401, "unauthenticated")
	}
	res := s.Do("GET", "/api/v1/folders/finance", alice, nil)
	expectErr(t, res, 429, "quota")
	if res.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	before, _, _ := s.Run("", "audit", "log", "--action", "auth.token", "--json")
	expectErr(t, s.Do("GET", "/api/v1/folders/finance", "ferry_0123456789abcdef_guess", nil), 429, "quota")
	after, _, _ := s.Run("", "audit", "log", "--action", "auth.token", "--json")
	if strings.Count(before, "\n") != 10 || before != after {
		t.Fatalf("audited token failures: %d before, %d after the lockout", strings.Count(before, "\n"), strings.Count(after, "\n"))
	}
}
