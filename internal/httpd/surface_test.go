package httpd_test

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"ferry.dev/ferry/internal/ferrytest"
	"ferry.dev/ferry/internal/httpd"
)

// reviewedOpen is the reviewed list of routes that answer a request that
// carries no credentials at all (no token, no cookie) with anything but a
// refusal: sign-in, discovery, health and static files. A route added to
// the tables is sent such a request by TestUnauthenticatedSurface; if it
// answers, the test fails until the route is reviewed and listed here.
var reviewedOpen = map[string][]string{
	"public": {
		"GET /healthz",                 // readiness
		"GET /api/v1/openapi.yaml",     // the API's description
		"OPTIONS /api/v1/uploads/{$}",  // tus discovery
		"OPTIONS /api/v1/uploads/{id}", // tus discovery
		"POST /api/v1/auth/token",      // sign-in for API clients (rate-limited; 400 on an empty body)
		"GET /login",                   // the sign-in page
		"POST /login/passkey/begin",    // passwordless sign-in (400 without a ceremony)
		"POST /login/passkey/finish",   // passwordless sign-in (400 without a ceremony)
		"GET /login/sso",               // single sign-on start (400 without an org or email)
		"GET /static/{file}",           // stylesheet and scripts
		// The package guest pages /p/{token}… (guest.go) are open by design
		// to whoever holds a valid link, and to no one else: without one
		// they refuse (404, then 429), so they are not listed here.
	},
	"admin": { // the admin listener is loopback-only by default
		"GET /healthz",             // readiness
		"GET /metrics",             // Prometheus, by design without a token (docs/OPERATIONS.md)
		"GET /setup",               // first-administrator setup: needs the single-use code
		"POST /setup",              // first-administrator setup: needs the single-use code (400 without)
		"GET /{$}",                 // a redirect into /admin/
		"GET /admin/login",         // the admin sign-in page
		"GET /admin/static/{file}", // stylesheet
		// Passkey and single-sign-on sign-in of administrators
		// (admin_login_extra.go), as on the public listener; only
		// administrators get a session.
		"GET /admin/static/passkey.js",     // the passkey ceremony script
		"POST /admin/login/passkey/begin",  // passwordless sign-in (400 without a usable host name)
		"POST /admin/login/passkey/finish", // passwordless sign-in (400 without a ceremony)
		"GET /admin/login/sso",             // single sign-on start (400 without an org or email)
	},
}

// refused reports whether a response to a credential-less request is a
// refusal: 401, 403, 404, 405, 410, 412, 429, or a redirect to a sign-in
// page.
func refused(res *http.Response) bool {
	switch res.StatusCode {
	case 401, 403, 404, 405, 410, 412, 429:
		return true
	case 302, 303:
		loc := res.Header.Get("Location")
		return strings.HasPrefix(loc, "/login") || strings.HasPrefix(loc, "/admin/login")
	}
	return false
}

var wildcard = regexp.MustCompile(`\{[a-z]+(\.\.\.)?\}`)

// TestUnauthenticatedSurface enumerates every route of both listeners and
// sends each a request without credentials (from Ferry's own origin, so
// that only authentication can refuse it): the set of routes that do not
// refuse must equal the reviewed list. (MOVEit's 2023 chain began with an
// anonymous request reaching state it should not.)
func TestUnauthenticatedSurface(t *testing.T) {
	s := ferrytest.Start(t)
	s.User("acme", "admin@acme.test", "admin")
	pub, adm := httpd.RoutePatterns()
	c := &http.Client{Transport: s.Client.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, plane := range []struct {
		name     string
		base     string
		patterns []string
	}{{"public", s.PublicURL, pub}, {"admin", s.AdminURL, adm}} {
		var open []string
		for _, pat := range plane.patterns {
			method, path, _ := strings.Cut(pat, " ")
			path = strings.TrimSuffix(path, "{$}")
			path = wildcard.ReplaceAllStringFunc(path, func(w string) string {
				switch w {
				case "{id}":
					return "0123456789abcdef0123456789abcdef"
				case "{org}":
					return "acme"
				case "{file}":
					return "ferry.css"
				}
				return "x"
			})
			req, err := http.NewRequest(method, plane.base+path, strings.NewReader(""))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Origin", plane.base)
			req.Header.Set("Tus-Resumable", "1.0.0")
			res, err := c.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			res.Body.Close()
			if !refused(res) {
				open = append(open, pat)
				t.Logf("%s listener: %s answers %d without credentials", plane.name, pat, res.StatusCode)
			}
		}
		want := reviewedOpen[plane.name]
		for _, p := range open {
			if !slices.Contains(want, p) {
				t.Errorf("%s listener: %q answers without credentials and is not in the reviewed list: review it, then list it in reviewedOpen", plane.name, p)
			}
		}
		for _, p := range want {
			if !slices.Contains(open, p) {
				t.Errorf("%s listener: the reviewed list names %q, which now refuses (or no longer exists): take it off the list", plane.name, p)
			}
		}
	}
}
