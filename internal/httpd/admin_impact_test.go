package httpd_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/ferrytest"
)

// TestAdminImpactPages drives the Impact pages of the admin UI: the report of
// a scope with its checkpoint, the exports, drafting, editing and sending a
// notification (Mailpit receives it); and checks on the admin API that an
// organisation administrator sees only their own organisation's reads.
func TestAdminImpactPages(t *testing.T) {
	mp := ferrytest.StartMailpit(t)
	s := ferrytest.Start(t, ferrytest.WithMail(mp))
	serverAdmin(t, s, "acme", "root@acme.test")
	s.Admin("org", "create", "beta")
	s.Admin("party", "create", "--org", "acme", "Globex <b>", "--contact", "ops@globex.test")
	s.Admin("party", "create", "--org", "beta", "Hooli", "--contact", "ops@hooli.test")
	s.Admin("folder", "create", "--org", "acme", "/globex", "--party", "Globex <b>")
	s.Admin("folder", "create", "--org", "beta", "/hooli", "--party", "Hooli")
	acme := s.User("acme", "boss@acme.test", "admin")
	beta := s.User("beta", "boss@beta.test", "admin")
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/globex/q3.csv", acme, strings.NewReader("globex numbers")), http.StatusCreated)
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/hooli/h.csv", beta, strings.NewReader("hooli numbers!")), http.StatusCreated)
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/globex/q3.csv", acme, nil), http.StatusOK)
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/hooli/h.csv", beta, nil), http.StatusOK)

	b := newTwoPlanes(t, s)
	adminSignIn(t, b, "root@acme.test", adminPW)
	A := s.AdminURL
	from, to := time.Now().Add(-time.Hour).UTC().Format("2006-01-02T15:04"), time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04")
	scope := url.Values{"from": {from}, "to": {to}, "org": {"acme"}}

	res, page := b.get(A, "/admin/impact")
	if res.StatusCode != 200 || !strings.Contains(page, `id="impact-scope"`) || !strings.Contains(page, `href="/admin/impact" aria-current="page"`) {
		t.Fatalf("GET /admin/impact: %d\n%s", res.StatusCode, page)
	}
	res, page = b.get(A, "/admin/impact?"+scope.Encode()+"&verify=1")
	for _, w := range []string{"Globex &lt;b&gt;", "ops@globex.test", "/globex/q3.csv", "boss@acme.test", `id="impact-checkpoint"`, "it matches the stored log", `id="impact-verified"`, "Checkpoint note"} {
		if !strings.Contains(page, w) {
			t.Errorf("report page lacks %q", w)
		}
	}
	if res.StatusCode != 200 || strings.Contains(page, "Hooli") {
		t.Fatalf("report page (%d) names another organisation's party:\n%s", res.StatusCode, page)
	}
	if res, page := b.get(A, "/admin/impact?from=yesterday&to="+to); res.StatusCode != 400 || !strings.Contains(page, "want a date") {
		t.Errorf("a bad scope: %d", res.StatusCode)
	}

	// Exports.
	res, body := b.get(A, "/admin/impact/export?format=json&"+scope.Encode())
	var rep audit.ImpactReport
	if res.StatusCode != 200 || json.Unmarshal([]byte(body), &rep) != nil || rep.Schema != audit.ImpactSchema || len(rep.Parties) != 1 || rep.Parties[0].Bytes != 14 {
		t.Fatalf("JSON export: %d\n%s", res.StatusCode, body)
	}
	res, body = b.get(A, "/admin/impact/export?format=csv&"+scope.Encode())
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if res.StatusCode != 200 || err != nil || len(rows) != 2 || rows[1][1] != "Globex <b>" || rows[1][4] != "/globex/q3.csv" || rows[1][7] != "14" {
		t.Fatalf("CSV export: %d %v\n%s", res.StatusCode, err, body)
	}

	// Draft, edit, send.
	csrf := csrfOf(t, page)
	form := url.Values{"csrf": {csrf}}
	for k, v := range scope {
		form[k] = v
	}
	res, _ = b.post(A, "/admin/impact/drafts", form)
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/admin/impact/drafts?report=") {
		t.Fatalf("draft: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	res, page = b.get(A, res.Header.Get("Location"))
	m := regexp.MustCompile(`action="/admin/impact/drafts/([0-9a-f]+)/send"`).FindStringSubmatch(page)
	if res.StatusCode != 200 || m == nil || !strings.Contains(page, "[TO EDIT") || !strings.Contains(page, "ops@globex.test") {
		t.Fatalf("drafts page: %d\n%s", res.StatusCode, page)
	}
	id := m[1]
	report := regexp.MustCompile(`name="report" value="([0-9a-f]+)"`).FindStringSubmatch(page)[1]
	res, page = b.post(A, "/admin/impact/drafts/"+id+"/send", url.Values{"csrf": {csrf}, "report": {report}})
	if res.StatusCode != 400 || !strings.Contains(page, "edit it first") {
		t.Fatalf("sending an unedited draft: %d", res.StatusCode)
	}
	res, _ = b.post(A, "/admin/impact/drafts/"+id, url.Values{"csrf": {csrf}, "report": {report}, "to": {"ops@globex.test, legal@globex.test"},
		"subject": {"Access to your files"}, "text": {"We closed the account that read /globex/q3.csv and rotated every token."}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("save: %d", res.StatusCode)
	}
	res, _ = b.post(A, "/admin/impact/drafts/"+id+"/send", url.Values{"report": {report}}) // no CSRF token
	if res.StatusCode != 403 {
		t.Fatalf("send without the CSRF token: %d", res.StatusCode)
	}
	res, _ = b.post(A, "/admin/impact/drafts/"+id+"/send", url.Values{"csrf": {csrf}, "report": {report}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("send: %d", res.StatusCode)
	}
	for _, to := range []string{"ops@globex.test", "legal@globex.test"} {
		if msg := mp.WaitFor(t, to, "Access to your files", 30*time.Second); !strings.Contains(msg.Text, "rotated every token") {
			t.Errorf("mail to %s: %q", to, msg.Text)
		}
	}
	_, page = b.get(A, "/admin/impact/drafts?report="+report)
	if !strings.Contains(page, "sent") || strings.Contains(page, `/send"`) {
		t.Errorf("the sent draft can still be sent:\n%s", page)
	}

	// The admin API: an organisation administrator sees their own
	// organisation, and may not name another.
	api := func(tok, path string) (int, string) {
		req, _ := http.NewRequest("GET", A+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := s.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, ferrytest.Body(t, res)
	}
	all := url.Values{"from": {from}, "to": {to}}
	code, body := api(beta, "/admin/v1/impact?"+all.Encode())
	if code != 200 || !strings.Contains(body, "Hooli") || strings.Contains(body, "Globex") {
		t.Fatalf("beta's administrator: %d\n%s", code, body)
	}
	if code, body := api(beta, "/admin/v1/impact?"+scope.Encode()); code != 403 || strings.Contains(body, "Globex") {
		t.Fatalf("beta's administrator naming acme: %d\n%s", code, body)
	}
	if code, body := api(beta, "/admin/v1/impact/drafts"); code != 200 || strings.Contains(body, "Globex") {
		t.Fatalf("beta's administrator listing drafts: %d\n%s", code, body)
	}
	req, _ := http.NewRequest("POST", A+"/admin/v1/impact/drafts/"+id, bytes.NewReader([]byte(`{"to":["x@evil.test"],"subject":"s","text":"t"}`)))
	req.Header.Set("Authorization", "Bearer "+beta)
	res, err = s.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := ferrytest.Body(t, res); res.StatusCode != 404 {
		t.Fatalf("beta's administrator editing acme's draft: %d %s", res.StatusCode, b)
	}
	user := s.User("acme", "carol@acme.test", "user")
	if code, _ := api(user, "/admin/v1/impact?"+all.Encode()); code != 403 {
		t.Fatalf("a user: %d", code)
	}
}
