package httpd_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"ferry.dev/ferry/internal/ferrytest"
)

// browser is a cookie-keeping client that does not follow redirects, so
// tests see them.
type browser struct {
	t   *testing.T
	s   *ferrytest.Server
	c   *http.Client
	jar *cookiejar.Jar
}

func newBrowser(t *testing.T, s *ferrytest.Server) *browser {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: s.Client.Transport, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &browser{t: t, s: s, c: c, jar: jar}
}

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	res, err := b.c.Get(b.s.PublicURL + path)
	if err != nil {
		b.t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(body)
}

// post submits a form from Ferry's own origin (as a browser would say in
// Origin), unless origin is given.
func (b *browser) post(path string, form url.Values, origin ...string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.s.PublicURL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	o := b.s.PublicURL
	if len(origin) > 0 {
		o = origin[0]
	}
	req.Header.Set("Origin", o)
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(body)
}

// postFile submits a multipart form with one file (field "file") and the
// CSRF token csrf ("" for none, as a cross-site form would), from Ferry's
// own origin.
func (b *browser) postFile(path, csrf, name string, content []byte) (*http.Response, string) {
	b.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if csrf != "" {
		mw.WriteField("csrf", csrf)
	}
	fw, _ := mw.CreateFormFile("file", name)
	fw.Write(content)
	mw.Close()
	req, _ := http.NewRequest("POST", b.s.PublicURL+path, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Origin", b.s.PublicURL)
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(body)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in page:\n%s", page)
	}
	return m[1]
}

func withPassword(t *testing.T, s *ferrytest.Server, org, email, role, pw string) {
	t.Helper()
	if _, _, err := s.Run("", "admin", "org", "create", org); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	if _, errOut, err := s.Run(pw+"\n", "admin", "user", "create", "--org", org, "--email", email, "--role", role, "--password-stdin"); err != nil {
		t.Fatalf("user create: %v %s", err, errOut)
	}
}

// TestWebLogin signs in with a password and checks the session cookie, the
// CSRF and origin checks, the account page, token creation and sign-out.
func TestWebLogin(t *testing.T) {
	s := ferrytest.Start(t)
	withPassword(t, s, "acme", "alice@acme.test", "user", "correct horse battery")
	s.Admin("folder", "create", "--org", "acme", "/in")
	s.Admin("grant", "--org", "acme", "--user", "alice@acme.test", "/in", "list,read,write")
	b := newBrowser(t, s)

	// Not signed in: to the login page.
	res, _ := b.get("/account")
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/login") {
		t.Fatalf("anonymous /account: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	res, page := b.get("/login")
	if res.StatusCode != 200 || !strings.Contains(page, `name="password"`) {
		t.Fatalf("login page: %d", res.StatusCode)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("page CSP %q", csp)
	}

	// Wrong password and unknown user: the same answer.
	_, wrong := b.post("/login", url.Values{"email": {"alice@acme.test"}, "password": {"wrong password!!"}})
	_, unknown := b.post("/login", url.Values{"email": {"nobody@acme.test"}, "password": {"wrong password!!"}})
	if !strings.Contains(wrong, "wrong email or password") || !strings.Contains(unknown, "wrong email or password") {
		t.Fatalf("failed logins differ or lack the message:\n%s\n---\n%s", wrong, unknown)
	}
	// A login form posted from another site is refused.
	res, _ = b.post("/login", url.Values{"email": {"alice@acme.test"}, "password": {"correct horse battery"}}, "https://evil.example")
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site login: %d", res.StatusCode)
	}

	res, _ = b.post("/login?next=/account", url.Values{"email": {"alice@acme.test"}, "password": {"correct horse battery"}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/account" {
		t.Fatalf("login: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	var cookie string
	for _, sc := range res.Header.Values("Set-Cookie") {
		if strings.HasPrefix(sc, "__Host-ferry_session=") {
			cookie = sc
		}
	}
	for _, attr := range []string{"Path=/", "Secure", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(cookie, attr) {
			t.Fatalf("session cookie %q lacks %s", cookie, attr)
		}
	}
	if strings.Contains(cookie, "Domain=") {
		t.Fatalf("session cookie has a Domain: %q", cookie)
	}
	res, page = b.get("/account")
	if res.StatusCode != 200 || !strings.Contains(page, "alice@acme.test") || !strings.Contains(page, "this session") {
		t.Fatalf("account page: %d\n%s", res.StatusCode, page)
	}
	csrf := csrfOf(t, page)

	// A POST without the CSRF token, or with another, is refused.
	res, _ = b.post("/account/tokens", url.Values{"name": {"ci"}, "scope": {"read"}, "days": {"30"}})
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("token create without CSRF: %d", res.StatusCode)
	}
	res, _ = b.post("/account/tokens", url.Values{"csrf": {csrf + "x"}, "name": {"ci"}, "scope": {"read"}, "days": {"30"}})
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("token create with a wrong CSRF token: %d", res.StatusCode)
	}
	// With it: a read-only token, shown once, that reads but cannot write.
	res, page = b.post("/account/tokens", url.Values{"csrf": {csrf}, "name": {"ci"}, "scope": {"read"}, "days": {"30"}})
	tok := regexp.MustCompile(`ferry_[0-9a-f]{16}_[A-Za-z0-9_-]{43}`).FindString(page)
	if res.StatusCode != 200 || tok == "" {
		t.Fatalf("token create: %d\n%s", res.StatusCode, page)
	}
	ferrytest.Expect(t, s.Do("GET", "/api/v1/folders/in", tok, nil), http.StatusOK)
	expectErr(t, s.Do("PUT", "/api/v1/files/in/x.txt", tok, strings.NewReader("x")), http.StatusForbidden, "permission")
	if _, page = b.get("/account"); strings.Contains(page, tok) {
		t.Fatal("the token is shown again")
	}

	// A forged or truncated cookie is not a session.
	u, _ := url.Parse(s.PublicURL)
	real := b.jar.Cookies(u)
	b.jar.SetCookies(u, []*http.Cookie{{Name: "__Host-ferry_session", Value: real[0].Value[:20], Path: "/"}})
	if res, _ := b.get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("truncated cookie: %d", res.StatusCode)
	}
	b.jar.SetCookies(u, real)

	// Sign out: the cookie stops working, even if replayed.
	_, page = b.get("/account")
	res, _ = b.post("/logout", url.Values{"csrf": {csrfOf(t, page)}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", res.StatusCode)
	}
	b.jar.SetCookies(u, real)
	if res, _ := b.get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("replayed cookie after logout: %d", res.StatusCode)
	}
}

// TestRoleChangeEndsSessions: raising a user to administrator ends their
// sessions (no session carries a privilege it was not created with) and
// raises an alert.
func TestRoleChangeEndsSessions(t *testing.T) {
	s := ferrytest.Start(t)
	withPassword(t, s, "acme", "carol@acme.test", "user", "correct horse battery")
	b := newBrowser(t, s)
	res, _ := b.post("/login", url.Values{"email": {"carol@acme.test"}, "password": {"correct horse battery"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", res.StatusCode)
	}
	if res, _ := b.get("/account"); res.StatusCode != 200 {
		t.Fatalf("account before the role change: %d", res.StatusCode)
	}
	if out := s.Admin("user", "role", "carol@acme.test", "--role", "admin"); !strings.Contains(out, "now admin") {
		t.Fatalf("role change: %q", out)
	}
	if res, _ := b.get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("the old session survived the role change: %d", res.StatusCode)
	}
	out, _, err := s.Run("", "audit", "log", "--action", "alert.*")
	if err != nil || !strings.Contains(out, "user raised to administrator: carol@acme.test") {
		t.Fatalf("no alert: %v\n%s", err, out)
	}
	out, _, _ = s.Run("", "audit", "log", "--action", "user.role")
	if !strings.Contains(out, "user → admin") {
		t.Fatalf("role change not audited with old and new role:\n%s", out)
	}
	if _, _, err := s.Run("", "admin", "user", "role", "carol@acme.test", "--role", "king"); err == nil {
		t.Fatal("an unknown role was accepted")
	}
}

// TestWebSSHKeys: a user adds an SSH key on the account page, logs in over
// SFTP with it, removes it, and can no longer; another user cannot remove
// it.
func TestWebSSHKeys(t *testing.T) {
	s := ferrytest.Start(t)
	withPassword(t, s, "acme", "carol@acme.test", "user", "correct horse battery")
	withPassword(t, s, "acme", "dave@acme.test", "user", "correct horse battery")
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, _ := ssh.NewPublicKey(pub)
	signer, _ := ssh.NewSignerFromKey(priv)
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " carol@laptop"
	sftpLogin := func() error {
		c, err := ssh.Dial("tcp", s.SFTPAddr, &ssh.ClientConfig{User: "carol@acme.test", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := sftpLogin(); err == nil {
		t.Fatal("an unregistered key logged in")
	}

	b := newBrowser(t, s)
	b.post("/login", url.Values{"email": {"carol@acme.test"}, "password": {"correct horse battery"}})
	_, page := b.get("/account")
	csrf := csrfOf(t, page)
	if res, page := b.post("/account/sshkeys", url.Values{"csrf": {csrf}, "key": {"not a key"}}); res.StatusCode != http.StatusBadRequest || !strings.Contains(page, "SSH public key") {
		t.Fatalf("a malformed key: %d", res.StatusCode)
	}
	if res, _ := b.post("/account/sshkeys", url.Values{"csrf": {csrf}, "key": {line}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("add key: %d", res.StatusCode)
	}
	_, page = b.get("/account")
	// html/template writes a "+" of the base64 fingerprint as &#43;.
	if !strings.Contains(page, "carol@laptop") || !strings.Contains(page, strings.ReplaceAll(ssh.FingerprintSHA256(sshPub), "+", "&#43;")) {
		t.Fatalf("the key is not listed:\n%s", page)
	}
	if err := sftpLogin(); err != nil {
		t.Fatalf("SFTP login with the added key: %v", err)
	}
	id := regexp.MustCompile(`/account/sshkeys/([0-9a-f]+)/delete`).FindStringSubmatch(page)
	if id == nil {
		t.Fatal("no remove form")
	}
	// Dave cannot remove Carol's key.
	bd := newBrowser(t, s)
	bd.post("/login", url.Values{"email": {"dave@acme.test"}, "password": {"correct horse battery"}})
	_, dpage := bd.get("/account")
	if res, _ := bd.post("/account/sshkeys/"+id[1]+"/delete", url.Values{"csrf": {csrfOf(t, dpage)}}); res.StatusCode != http.StatusNotFound {
		t.Fatalf("another user's remove: %d", res.StatusCode)
	}
	if res, _ := b.post("/account/sshkeys/"+id[1]+"/delete", url.Values{"csrf": {csrf}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("remove: %d", res.StatusCode)
	}
	if err := sftpLogin(); err == nil {
		t.Fatal("a removed key still logs in")
	}
	if log := auditLog(t, s, "sshkey.*"); !strings.Contains(log, "sshkey.add") || !strings.Contains(log, "sshkey.remove") {
		t.Fatalf("key changes not audited:\n%s", log)
	}
}
