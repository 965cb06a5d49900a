package attack_test

import (
	"bufio"
	"crypto/tls"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferrytest"
)

// raw sends bytes on a fresh TLS connection to the public listener and
// returns everything the server answers until it closes or goes quiet.
func raw(t *testing.T, s target, req string) string {
	t.Helper()
	u, _ := url.Parse(s.URL())
	cfg := s.HTTP().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	c, err := tls.Dial("tcp", u.Host, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(bufio.NewReader(c))
	return string(b)
}

// TestHeaderSmuggling (MOVEit step 1: a header the front end and the
// application read differently, making an anonymous request a privileged
// one): duplicate and conflicting headers, obs-folded and oversized
// headers, Content-Length/Transfer-Encoding desync on raw TLS, X-* headers
// naming internal routes, methods, hosts, addresses or identities, and
// another session's cookie next to a bearer token change nothing and grant
// nothing: no smuggled request runs, files are unchanged, the audit log
// names the real address and identity.
func TestHeaderSmuggling(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	s := w.s
	host, _ := url.Parse(s.URL())
	salaries := "/api/v1/files" + salaryPath

	// Raw HTTP/1.1 desync and malformed framing.
	// The smuggled request carries no credentials: behind a front end it
	// would borrow the next user's; here it shows whether the server's
	// framing lets a second request out of one body at all.
	smuggled := "GET /api/v1/openapi.yaml HTTP/1.1\r\nHost: " + host.Host + "\r\n\r\n"
	for name, req := range map[string]string{
		"CL.TE": "POST /api/v1/folders/finance/x HTTP/1.1\r\nHost: " + host.Host + "\r\nAuthorization: Bearer " + w.carol +
			"\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
		"TE.CL": "POST /api/v1/folders/finance/x HTTP/1.1\r\nHost: " + host.Host + "\r\nAuthorization: Bearer " + w.carol +
			"\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n" + "8f\r\n" + smuggled + "\r\n0\r\n\r\n",
		"TE obfuscated": "POST /api/v1/folders/finance/x HTTP/1.1\r\nHost: " + host.Host + "\r\nAuthorization: Bearer " + w.carol +
			"\r\nTransfer-Encoding: xchunked\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled,
		"two Content-Lengths": "POST /api/v1/folders/finance/x HTTP/1.1\r\nHost: " + host.Host + "\r\nAuthorization: Bearer " + w.carol +
			"\r\nContent-Length: 0\r\nContent-Length: " + itoa(int64(len(smuggled))) + "\r\n\r\n" + smuggled,
		"obs-fold":             "GET /api/v1/me HTTP/1.1\r\nHost: " + host.Host + "\r\nAuthorization: Bearer " + w.carol + "\r\nX-Ferry-User: carol\r\n admin@acme.test\r\n\r\n",
		"folded Authorization": "GET " + salaries + " HTTP/1.1\r\nHost: " + host.Host + "\r\nAuthorization: Bearer " + w.carol + "\r\nX-Note: x\r\n Authorization: Bearer " + w.admin + "\r\n\r\n",
		"oversized headers":    "GET /api/v1/me HTTP/1.1\r\nHost: " + host.Host + "\r\nX-Big: " + strings.Repeat("A", 2<<20) + "\r\n\r\n",
		"NUL in header":        "GET " + salaries + " HTTP/1.1\r\nHost: " + host.Host + "\r\nAuthorization: Bearer " + w.carol + "\x00" + w.admin + "\r\n\r\n",
		"absolute URI":         "GET https://evil.example" + salaries + " HTTP/1.1\r\nHost: " + host.Host + "\r\nAuthorization: Bearer " + w.carol + "\r\n\r\n",
	} {
		out := raw(t, s, req)
		if strings.Contains(out, salaryBody) {
			t.Errorf("%s: the salaries were served:\n%.500s", name, out)
		}
		if n := strings.Count(out, "HTTP/1.1 "); n > 1 {
			t.Errorf("%s: %d answers on one connection: a second request was smuggled out of the first's body\n%.600s", name, n, out)
		}
		// No answer (the connection closed), a 4xx or 501 (an unknown
		// transfer coding); obs-fold on a
		// harmless request may be joined and answered.
		// A request framed by Transfer-Encoding alone may be answered
		// (RFC 9112 6.3: TE overrides CL) provided the connection then
		// closes, which the single answer above shows.
		teFramed := strings.HasPrefix(name, "CL.TE") || strings.HasPrefix(name, "TE.")
		if teFramed && strings.HasPrefix(out, "HTTP/1.1 2") && !strings.Contains(out, "\r\nConnection: close\r\n") {
			t.Errorf("%s: answered without closing the connection:\n%.300s", name, out)
		}
		if out != "" && !strings.HasPrefix(out, "HTTP/1.1 4") && !strings.HasPrefix(out, "HTTP/1.1 501") && name != "obs-fold" && !teFramed {
			t.Errorf("%s: want a 4xx or no answer, got:\n%.300s", name, out)
		}
	}

	// Duplicate Authorization headers: never the stronger identity.
	req, _ := http.NewRequest("GET", s.URL()+salaries, nil)
	req.Header.Add("Authorization", "Bearer "+w.carol)
	req.Header.Add("Authorization", "Bearer "+w.admin)
	res, err := s.HTTP().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := ferrytest.Body(t, res); res.StatusCode == 200 || strings.Contains(b, salaryBody) {
		t.Errorf("two Authorization headers: %d", res.StatusCode)
	}

	// X-* headers that name internal actions, identities, addresses, hosts.
	before := len(auditLog(t, s))
	internal := []string{
		"X-HTTP-Method-Override", "DELETE", "X-HTTP-Method", "DELETE", "X-Method-Override", "PUT",
		"X-Original-URL", salaries, "X-Rewrite-URL", salaries, "X-Forwarded-Prefix", "/admin",
		"X-Forwarded-For", "10.9.8.7", "X-Real-IP", "10.9.8.7", "Forwarded", "for=10.9.8.7;host=admin.internal;proto=https",
		"X-Forwarded-Host", "127.0.0.1:9443", "X-Forwarded-Proto", "http", "X-Client-IP", "10.9.8.7", "True-Client-IP", "10.9.8.7",
		"X-Ferry-User", "admin@acme.test", "X-Ferry-Admin", "true", "X-Ferry-Role", "admin", "X-Ferry-Org", "other",
		"X-Remote-User", "admin@acme.test", "X-Auth-User", "admin@acme.test", "X-Siloinfo", "admin", "X-Siloinfo-Ver", "1",
	}
	for _, c := range []struct {
		method, path, tok string
		want              int
	}{
		{"GET", "/api/v1/files" + reportPath, w.alice, 200},   // a read stays a read: no DELETE
		{"GET", "/api/v1/me", w.carol, 200},                   // not rewritten to the salaries
		{"GET", salaries, w.carol, 404},                       // not the admin
		{"GET", "/api/v1/folders/hr", w.alice, 404},           // not the admin
		{"PUT", "/api/v1/files/hr/planted.txt", w.carol, 404}, // not the admin
		{"GET", "/admin/v1/policies?org=acme", w.admin, 404},  // no admin plane on the public listener
		{"POST", "/api/v1/folders/hr/planted", w.ext, 404},    // not an internal user
		{"DELETE", "/api/v1/files" + salaryPath, w.bob, 404},  // not acme
	} {
		res := s.Do(c.method, c.path, c.tok, strings.NewReader("x"), internal...)
		b := ferrytest.Body(t, res)
		if res.StatusCode != c.want && !(c.want == 404 && res.StatusCode == 403) {
			t.Errorf("%s %s with internal X- headers: %d, want %d: %.200s", c.method, c.path, res.StatusCode, c.want, b)
		}
		if c.path != salaries && strings.Contains(b, salaryBody) {
			t.Errorf("%s %s with X-Original-URL: answered the salaries", c.method, c.path)
		}
		if c.path == salaries && strings.Contains(b, salaryBody) {
			t.Errorf("%s %s as a non-admin: answered the salaries", c.method, c.path)
		}
	}
	if b := ferrytest.Expect(t, s.Do("GET", "/api/v1/files"+reportPath, w.alice, nil), 200); b != reportBody {
		t.Fatalf("the report changed: %q", b)
	}
	ferrytest.Expect(t, s.Do("GET", salaries, w.admin, nil), 200)
	for _, e := range auditLog(t, s)[before:] {
		if strings.Contains(e.Remote, "10.9.8.7") || strings.Contains(e.Detail, "10.9.8.7") {
			t.Errorf("the audit log took a client-supplied address: %+v", e)
		}
		if e.Actor == "admin@acme.test" && e.Outcome == "ok" && e.Action != "file.read" {
			t.Errorf("an action was recorded as the admin's: %+v", e)
		}
	}

	// Another session's cookie next to a bearer token: the token decides,
	// the cookie adds nothing.
	web := webLogin(t, s, "alice@acme.test", alicePassword)
	var cookie string
	for _, c := range web.Jar.Cookies(host) {
		if c.Name == auth.SessionCookie {
			cookie = c.Value
		}
	}
	res = s.Do("GET", "/api/v1/files"+reportPath, w.carol, nil, "Cookie", auth.SessionCookie+"="+cookie)
	if b := ferrytest.Body(t, res); res.StatusCode == 200 || strings.Contains(b, reportBody) {
		t.Errorf("carol's token with alice's session cookie read alice's file: %d", res.StatusCode)
	}
	res = s.Do("GET", "/api/v1/files"+reportPath, "", nil, "Cookie", auth.SessionCookie+"="+cookie)
	if b := ferrytest.Body(t, res); res.StatusCode != 401 || strings.Contains(b, reportBody) {
		t.Errorf("the API accepted a session cookie instead of a token: %d", res.StatusCode)
	}
	// Two session cookies (a forged one first) on a page.
	req, _ = http.NewRequest("GET", s.URL()+"/download"+salaryPath, nil)
	req.Header.Add("Cookie", auth.SessionCookie+"=forged; "+auth.SessionCookie+"="+cookie)
	res, err = s.HTTP().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := ferrytest.Body(t, res); strings.Contains(b, salaryBody) {
		t.Errorf("two session cookies: the salaries were served")
	}
}
