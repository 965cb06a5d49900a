package httpd_test

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"ferry.dev/ferry/internal/ferrytest"
)

// Tests of the admin UI on the admin listener (admin_web.go).

// twoPlanes is a cookie-keeping client for both listeners with one cookie
// jar, as a browser has: cookies ignore ports, so each listener's session
// cookie is sent to the other too.
type twoPlanes struct {
	t   *testing.T
	s   *ferrytest.Server
	c   *http.Client
	jar *cookiejar.Jar
}

func newTwoPlanes(t *testing.T, s *ferrytest.Server) *twoPlanes {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: s.Client.Transport, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &twoPlanes{t: t, s: s, c: c, jar: jar}
}

func (b *twoPlanes) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(body)
}

// get fetches base+path (base: the admin or public URL).
func (b *twoPlanes) get(base, path string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	return b.do(req)
}

// post submits a form with Origin base, or origin if given.
func (b *twoPlanes) post(base, path string, form url.Values, origin ...string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	o := base
	if len(origin) > 0 {
		o = origin[0]
	}
	req.Header.Set("Origin", o)
	return b.do(req)
}

func (b *twoPlanes) cookie(base, name string) string {
	u, _ := url.Parse(base)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

const adminPW = "violet tugboat ledger quarry"

// serverAdmin creates the first (server) administrator through /setup.
func serverAdmin(t *testing.T, s *ferrytest.Server, org, email string) {
	t.Helper()
	u, err := url.Parse(s.SetupURL)
	if err != nil || s.SetupURL == "" {
		t.Fatalf("no setup URL: %q", s.SetupURL)
	}
	form := url.Values{"code": {u.Query().Get("code")}, "org": {org}, "email": {email}, "password": {adminPW}}
	res, err := s.Client.PostForm(s.AdminURL+"/setup", form)
	if err != nil {
		t.Fatal(err)
	}
	ferrytest.Expect(t, res, 200)
}

func adminSignIn(t *testing.T, b *twoPlanes, email, pw string) {
	t.Helper()
	res, _ := b.post(b.s.AdminURL, "/admin/login", url.Values{"email": {email}, "password": {pw}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/admin/" {
		t.Fatalf("admin sign-in of %s: %d %s", email, res.StatusCode, res.Header.Get("Location"))
	}
}

// TestAdminSignInPlanes: only administrators sign in on the admin listener;
// each listener refuses the other's session cookie; forms need the same
// origin and the CSRF token.
func TestAdminSignInPlanes(t *testing.T) {
	s := ferrytest.Start(t)
	serverAdmin(t, s, "acme", "root@acme.test")
	withPassword(t, s, "acme", "alice@acme.test", "user", "correct horse battery")
	withPassword(t, s, "acme", "olga@acme.test", "admin", "amber walrus kettle drift")
	b := newTwoPlanes(t, s)

	// Not signed in: to the admin sign-in page, which has a strict CSP.
	res, _ := b.get(s.AdminURL, "/admin/orgs")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/admin/login" {
		t.Fatalf("anonymous /admin/orgs: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	res, page := b.get(s.AdminURL, "/admin/login")
	if res.StatusCode != 200 || !strings.Contains(page, `action="/admin/login"`) {
		t.Fatalf("admin login page: %d", res.StatusCode)
	}
	if csp := res.Header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("admin page CSP %q", csp)
	}

	// A user (not an administrator) signs in on the public listener, not
	// here; the answer is the one of a wrong password.
	res, page = b.post(s.AdminURL, "/admin/login", url.Values{"email": {"alice@acme.test"}, "password": {"correct horse battery"}})
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "wrong email or password") {
		t.Fatalf("user on the admin listener: %d", res.StatusCode)
	}
	// The user's public session cookie reaches the admin listener (same
	// host) and is not accepted there.
	res, _ = b.post(s.PublicURL, "/login", url.Values{"email": {"alice@acme.test"}, "password": {"correct horse battery"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("public login: %d", res.StatusCode)
	}
	pub := b.cookie(s.PublicURL, "__Host-ferry_session")
	if pub == "" {
		t.Fatal("no public session cookie")
	}
	for _, name := range []string{"__Host-ferry_session", "__Host-ferry_admin"} {
		req, _ := http.NewRequest("GET", s.AdminURL+"/admin/orgs", nil)
		req.AddCookie(&http.Cookie{Name: name, Value: pub})
		res, err := s.Client.Do(req) // follows the redirect to the sign-in page
		if err != nil {
			t.Fatal(err)
		}
		body := ferrytest.Body(t, res)
		if res.Request.URL.Path != "/admin/login" || strings.Contains(body, "Sign out") {
			t.Fatalf("public session in cookie %s accepted on the admin listener: %s", name, res.Request.URL)
		}
	}

	// Cross-site sign-in form: refused.
	res, _ = b.post(s.AdminURL, "/admin/login", url.Values{"email": {"root@acme.test"}, "password": {adminPW}}, "https://evil.example")
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site admin login: %d", res.StatusCode)
	}
	adminSignIn(t, b, "root@acme.test", adminPW)
	adm := b.cookie(s.AdminURL, "__Host-ferry_admin")
	if adm == "" {
		t.Fatal("no admin session cookie")
	}
	// The admin session is refused by the public listener, in either cookie.
	for _, name := range []string{"__Host-ferry_session", "__Host-ferry_admin"} {
		req, _ := http.NewRequest("GET", s.PublicURL+"/account", nil)
		req.AddCookie(&http.Cookie{Name: name, Value: adm})
		req.Header.Set("Accept", "text/html")
		c := &http.Client{Transport: s.Client.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/login") {
			t.Fatalf("admin session in cookie %s on the public listener: %d %s", name, res.StatusCode, res.Header.Get("Location"))
		}
	}

	res, page = b.get(s.AdminURL, "/admin/orgs")
	if res.StatusCode != 200 || !strings.Contains(page, "root@acme.test") || !strings.Contains(page, "acme") {
		t.Fatalf("orgs page: %d\n%s", res.StatusCode, page)
	}
	csrf := csrfOf(t, page)
	// No CSRF token, a wrong one, or another origin: refused, nothing made.
	for _, form := range []url.Values{{"name": {"evil1"}}, {"name": {"evil2"}, "csrf": {"x" + csrf}}} {
		if res, _ := b.post(s.AdminURL, "/admin/orgs", form); res.StatusCode != http.StatusForbidden {
			t.Fatalf("POST without the right CSRF token: %d", res.StatusCode)
		}
	}
	if res, _ := b.post(s.AdminURL, "/admin/orgs", url.Values{"name": {"evil3"}, "csrf": {csrf}}, "https://evil.example"); res.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site POST: %d", res.StatusCode)
	}
	if res, _ := b.post(s.AdminURL, "/admin/orgs", url.Values{"name": {"globex"}, "csrf": {csrf}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create org: %d", res.StatusCode)
	}
	_, page = b.get(s.AdminURL, "/admin/orgs")
	if strings.Contains(page, "evil") || !strings.Contains(page, "globex") {
		t.Fatalf("orgs after forged posts:\n%s", page)
	}

	// An organisation administrator sees their own organisation only.
	b2 := newTwoPlanes(t, s)
	adminSignIn(t, b2, "olga@acme.test", "amber walrus kettle drift")
	_, page = b2.get(s.AdminURL, "/admin/orgs")
	if !strings.Contains(page, "/admin/orgs/acme/users") || strings.Contains(page, "globex") || strings.Contains(page, "New organisation") {
		t.Fatalf("org admin's orgs page:\n%s", page)
	}
	if res, _ := b2.get(s.AdminURL, "/admin/orgs/globex/users"); res.StatusCode != http.StatusForbidden {
		t.Fatalf("org admin on another org's users: %d", res.StatusCode)
	}

	// Sign out ends the session.
	if res, _ := b.post(s.AdminURL, "/admin/logout", url.Values{"csrf": {csrf}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", res.StatusCode)
	}
	req, _ := http.NewRequest("GET", s.AdminURL+"/admin/orgs", nil)
	req.AddCookie(&http.Cookie{Name: "__Host-ferry_admin", Value: adm})
	if res, _ := b.do(req); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("admin session after logout: %d", res.StatusCode)
	}
	// Sign-ins and refusals on the admin listener are audited as such.
	var denied, ok int
	for _, ev := range auditEvents(t, s, "auth.login") {
		if ev["protocol"] == "admin" && ev["outcome"] == "denied" {
			denied++
		}
		if ev["protocol"] == "admin" && ev["outcome"] == "ok" {
			ok++
		}
	}
	if denied != 1 || ok != 2 {
		t.Fatalf("admin-plane logins audited: %d denied, %d ok", denied, ok)
	}
}

// adminUIPaths are paths of the admin UI; the public listener must answer
// 404 to every one, with any method.
var adminUIPaths = []string{"/admin/", "/admin/login", "/admin/login/mfa", "/admin/logout", "/admin/orgs", "/admin/orgs/acme/users",
	"/admin/orgs/acme/users/disable", "/admin/orgs/acme/users/mfa-reset", "/admin/orgs/acme/parties", "/admin/orgs/acme/folders",
	"/admin/orgs/acme/grants", "/admin/orgs/acme/tokens", "/admin/orgs/acme/tokens/revoke", "/admin/orgs/acme/policy",
	"/admin/audit", "/admin/audit/export?format=csv", "/admin/static/admin.css", "/setup", "/metrics", "/admin/v1/orgs"}

// TestAdminUIAbsentOnPublic: the public listener has none of the admin
// UI's paths, even for a signed-in administrator.
func TestAdminUIAbsentOnPublic(t *testing.T) {
	s := ferrytest.Start(t)
	serverAdmin(t, s, "acme", "root@acme.test")
	b := newTwoPlanes(t, s)
	if res, _ := b.post(s.PublicURL, "/login", url.Values{"email": {"root@acme.test"}, "password": {adminPW}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("public login: %d", res.StatusCode)
	}
	adminSignIn(t, b, "root@acme.test", adminPW)
	for _, p := range adminUIPaths {
		for _, m := range []string{"GET", "POST"} {
			req, _ := http.NewRequest(m, s.PublicURL+p, strings.NewReader("csrf=x"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", s.PublicURL)
			if res, _ := b.do(req); res.StatusCode != http.StatusNotFound {
				t.Errorf("public %s %s: %d, want 404", m, p, res.StatusCode)
			}
		}
	}
	// And they do exist on the admin listener.
	for _, p := range []string{"/admin/", "/admin/orgs", "/admin/audit", "/admin/static/admin.css"} {
		if res, _ := b.get(s.AdminURL, p); res.StatusCode != 200 {
			t.Errorf("admin GET %s: %d", p, res.StatusCode)
		}
	}
}

// TestAdminPages: each page renders with data, every change goes through
// internal/admin and lands in the audit log, which filters and exports.
func TestAdminPages(t *testing.T) {
	s := ferrytest.Start(t)
	serverAdmin(t, s, "acme", "root@acme.test")
	b := newTwoPlanes(t, s)
	adminSignIn(t, b, "root@acme.test", adminPW)
	A := s.AdminURL
	_, page := b.get(A, "/admin/orgs/acme/users")
	csrf := csrfOf(t, page)
	post := func(path string, form url.Values, want int) string {
		t.Helper()
		form.Set("csrf", csrf)
		res, body := b.post(A, path, form)
		if res.StatusCode != want {
			t.Fatalf("POST %s: %d, want %d\n%s", path, res.StatusCode, want, body)
		}
		return body
	}
	post("/admin/orgs/acme/parties", url.Values{"name": {"Initech <b>"}, "contacts": {"ops@initech.test, cfo@initech.test"}}, 303)
	page = post("/admin/orgs/acme/users", url.Values{"email": {"bob@acme.test"}, "role": {"user"}}, 200)
	if !strings.Contains(page, `id="secret"`) || !strings.Contains(page, "Created bob@acme.test") {
		t.Fatalf("no generated password shown:\n%s", page)
	}
	post("/admin/orgs/acme/users", url.Values{"email": {"ext@initech.test"}, "role": {"external"}, "party": {"Initech <b>"}, "password": {"saffron pelican mosaic"}}, 200)
	page = post("/admin/orgs/acme/users", url.Values{"email": {"not an email"}, "role": {"user"}}, 400)
	if !strings.Contains(page, "not a valid email address") {
		t.Fatalf("invalid email not explained:\n%s", page)
	}
	post("/admin/orgs/acme/folders", url.Values{"path": {"/customers/initech"}, "party": {"Initech <b>"}}, 303)
	post("/admin/orgs/acme/grants", url.Values{"email": {"bob@acme.test"}, "path": {"/customers/initech"}, "perm": {"list", "read", "write"}}, 303)
	post("/admin/orgs/acme/grants", url.Values{"email": {"ext@initech.test"}, "path": {"/customers/initech"}, "perm": {"list", "read"}}, 303)
	page = post("/admin/orgs/acme/tokens", url.Values{"email": {"bob@acme.test"}, "days": {"7"}}, 200)
	if !strings.Contains(page, `<pre class="token" id="secret">ferry_`) {
		t.Fatalf("new token not shown:\n%s", page)
	}
	post("/admin/orgs/acme/policy", url.Values{"min_password_len": {"14"}, "passkeys": {"allowed"}, "session_idle_minutes": {"20"}, "session_max_minutes": {"600"}, "mfa_required": {"1"}}, 303)
	post("/admin/orgs/acme/users/disable", url.Values{"email": {"ext@initech.test"}}, 303)
	post("/admin/orgs/acme/users/role", url.Values{"email": {"bob@acme.test"}, "role": {"admin"}}, 303)
	post("/admin/orgs/acme/users/role", url.Values{"email": {"bob@acme.test"}, "role": {"king"}}, 400)

	pages := map[string][]string{
		"/admin/orgs":                 {"acme"},
		"/admin/orgs/acme/users":      {"bob@acme.test", "ext@initech.test", "disabled", "Initech &lt;b&gt;", `<option value="admin" selected>admin</option>`},
		"/admin/orgs/acme/parties":    {"Initech &lt;b&gt;", "cfo@initech.test, ops@initech.test"},
		"/admin/orgs/acme/folders":    {"/customers/initech", "list,read,write", "list,read", `class="granted"`},
		"/admin/orgs/acme/tokens":     {"bob@acme.test", "<code>"},
		"/admin/orgs/acme/policy":     {`value="14"`, `value="20"`, `name="mfa_required" value="1" checked`},
		"/admin/":                     {"<svg", "Bytes in and out per day", "Failed sign-ins", `class="in"`},
		"/admin/audit":                {"user.create", "grant.set", "policy.set", "user.role", "alert.admin", "Latest signed checkpoint"},
		"/admin/audit?verify=1":       {"Verified:", "records"},
		"/admin/audit?action=party.*": {"party.create"},
	}
	for p, wants := range pages {
		res, page := b.get(A, p)
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: %d\n%s", p, res.StatusCode, page)
		}
		for _, w := range wants {
			if !strings.Contains(page, w) {
				t.Errorf("GET %s lacks %q", p, w)
			}
		}
		if strings.Contains(page, "Initech <b>") || strings.Contains(page, "style=") || strings.Contains(page, "<script") {
			t.Errorf("GET %s: unescaped name, style attribute or script", p)
		}
	}

	// A package's folder is the system's: it exists, and it gets no row
	// (nor a place in the grant form) on the folders page.
	carol := s.User("acme", "carol@acme.test", "user")
	body := ferrytest.Expect(t, s.Do("POST", "/api/v1/packages", carol, strings.NewReader(`{"to":["x@example.test"],"subject":"s"}`), "Content-Type", "application/json"), 201)
	if !strings.Contains(body, `"/.ferry-packages/`) {
		t.Fatalf("package draft: %s", body)
	}
	if _, page = b.get(A, "/admin/orgs/acme/folders"); strings.Contains(page, ".ferry-packages") || !strings.Contains(page, "/customers/initech") {
		t.Fatalf("the folders page shows package folders (or lost the others):\n%s", page)
	}

	// The export links carry the filter.
	_, page = b.get(A, "/admin/audit?action=grant.set&actor=root%40acme.test")
	if !strings.Contains(page, `href="/admin/audit/export?format=csv&amp;action=grant.set&amp;actor=root%40acme.test"`) {
		t.Fatalf("export link does not carry the filter:\n%s", page)
	}
	// Audit filters: action, actor, party, path, time.
	_, page = b.get(A, "/admin/audit?action=user.create")
	if strings.Contains(page, "<td>grant.set") || !strings.Contains(page, "bob@acme.test") {
		t.Fatalf("action filter:\n%s", page)
	}
	_, page = b.get(A, "/admin/audit?"+url.Values{"party": {"Initech <b>"}, "action": {"user.*"}}.Encode())
	if !strings.Contains(page, "1 matching events") || !strings.Contains(page, "email ext@initech.test") {
		t.Fatalf("party filter: want the external user's creation\n%s", page)
	}
	// Who was given access to a party's data: the grants on its folders
	// carry the party.
	_, page = b.get(A, "/admin/audit?"+url.Values{"party": {"Initech <b>"}, "action": {"grant.*"}}.Encode())
	if !strings.Contains(page, "2 matching events") || !strings.Contains(page, "user bob@acme.test perms list,read,write") {
		t.Fatalf("party filter: want the two grants on Initech's folder\n%s", page)
	}
	_, page = b.get(A, "/admin/audit?path=/customers/initech&action=folder.create")
	if !strings.Contains(page, "1 matching events") {
		t.Fatalf("path filter:\n%s", page)
	}
	_, page = b.get(A, "/admin/audit?since=2000-01-01&until=2000-01-02")
	if !strings.Contains(page, "0 matching events") {
		t.Fatalf("time filter:\n%s", page)
	}
	_, page = b.get(A, "/admin/audit?actor=nobody@acme.test")
	if !strings.Contains(page, "0 matching events") {
		t.Fatalf("actor filter:\n%s", page)
	}
	if res, _ := b.get(A, "/admin/audit?since=yesterday"); res.StatusCode != 400 {
		t.Fatalf("bad time: %d", res.StatusCode)
	}

	// Exports: CSV and JSON of the same filter, as downloads.
	res, body := b.get(A, "/admin/audit/export?format=csv&action=grant*")
	// Columns: seq time action outcome actor actor_id org org_id party …
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Disposition"), "attachment;") || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv export: %d %v", res.StatusCode, res.Header)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(rows) != 3 || rows[0][2] != "action" || rows[1][2] != "grant.set" || rows[2][4] != "root@acme.test" || rows[1][6] != "acme" || !strings.Contains(rows[2][18], "ext@initech.test") {
		t.Fatalf("csv export: %v\n%s", err, body)
	}
	res, body = b.get(A, "/admin/audit/export?format=json&actor=root@acme.test&action=user.*")
	var evs []map[string]any
	if err := json.Unmarshal([]byte(body), &evs); err != nil || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("json export: %v\n%s", err, body)
	}
	var creates, disables int
	for _, ev := range evs {
		switch ev["action"] {
		case "user.create":
			creates++
		case "user.disable":
			disables++
		}
	}
	if creates != 3 || disables != 1 { // two users and one refusal
		t.Fatalf("json export: %d user.create, %d user.disable\n%s", creates, disables, body)
	}
	_, body = b.get(A, "/admin/audit/export?format=json&since=2000-01-01&until=2000-01-02")
	if strings.TrimSpace(body) != "[]" {
		t.Fatalf("empty json export: %q", body)
	}
	// The exports themselves are audited.
	if n := len(auditEvents(t, s, "audit.export")); n != 3 {
		t.Fatalf("%d audit.export events, want 3", n)
	}
}
