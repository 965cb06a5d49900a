package httpd_test

import (
	"bytes"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ferry.dev/ferry/internal/ferrytest"
)

// ssoStart opens /login/sso?query in the browser and returns the provider's
// authorization URL that Ferry's page moves on to.
func ssoStart(t *testing.T, b *browser, query string) string {
	t.Helper()
	res, page := b.get("/login/sso?" + query)
	refresh := res.Header.Get("Refresh")
	authURL, ok := strings.CutPrefix(refresh, "0; url=")
	if res.StatusCode != 200 || !ok || !strings.Contains(page, "sso-continue") {
		t.Fatalf("/login/sso?%s: %d Refresh %q\n%s", query, res.StatusCode, refresh, page)
	}
	var binding bool
	for _, sc := range res.Header.Values("Set-Cookie") {
		if strings.HasPrefix(sc, "__Host-ferry_sso=") && strings.Contains(sc, "Secure") && strings.Contains(sc, "HttpOnly") &&
			strings.Contains(sc, "SameSite=Lax") && strings.Contains(sc, "Path=/") {
			binding = true
		}
	}
	if !binding {
		t.Fatalf("no browser-binding cookie: %q", res.Header.Values("Set-Cookie"))
	}
	return authURL
}

// callback delivers the provider's redirect back to Ferry in browser b.
func callback(b *browser, back *url.URL) (*http.Response, string) {
	b.t.Helper()
	return b.get(back.RequestURI())
}

func auditLog(t *testing.T, s *ferrytest.Server, action string) string {
	t.Helper()
	out, errOut, err := s.Run("", "audit", "log", "--action", action, "--json")
	if err != nil {
		t.Fatalf("audit log: %v %s", err, errOut)
	}
	return out
}

// TestSSO signs in through a real OpenID provider on loopback (zitadel's
// example OP), end to end with a cookie-keeping client that follows the
// OP's own login form, and checks every refusal.
func TestSSO(t *testing.T) {
	s := ferrytest.Start(t, ferrytest.WithArgs("--outbound-allow", "127.0.0.1/32")) // the OP listens on loopback
	withPassword(t, s, "acme", "alice@acme.test", "user", "correct horse battery")
	withPassword(t, s, "beta", "dave@beta.test", "user", "correct horse battery")
	withPassword(t, s, "beta", "mallory@acme.test", "user", "correct horse battery")
	redirect := s.PublicURL + "/login/sso/callback"
	op := startOP(t, []opUser{
		{"alice@acme.test", true}, {"bob@acme.test", true}, {"carol@acme.test", false}, {"mallory@acme.test", true},
		{"dave@beta.test", true}, {"frank@beta.test", true}, {"erin@elsewhere.test", true},
	}, map[string]string{"ferry-acme": redirect, "ferry-beta": redirect, "other-app": "http://127.0.0.1/other-app/callback"})

	// Configuration through the admin CLI; the secret never comes back.
	if out, errOut, err := s.Run("secret-ferry-acme\n", "admin", "sso", "set", "--org", "acme", "--issuer", op.Issuer, "--client-id", "ferry-acme",
		"--client-secret-stdin", "--domains", "acme.test", "--provision", "user"); err != nil {
		t.Fatalf("sso set: %v %s %s", err, out, errOut)
	}
	if out, errOut, err := s.Run("secret-ferry-beta\n", "admin", "sso", "set", "--org", "beta", "--issuer", op.Issuer, "--client-id", "ferry-beta",
		"--client-secret-stdin", "--domains", "beta.test"); err != nil {
		t.Fatalf("sso set beta: %v %s %s", err, out, errOut)
	}
	show := s.Admin("sso", "show", "--org", "acme")
	if !strings.Contains(show, op.Issuer) || !strings.Contains(show, "ferry-acme") || !strings.Contains(show, "acme.test") ||
		strings.Contains(show, "secret-ferry-acme") {
		t.Fatalf("sso show:\n%s", show)
	}
	// The client secret is nowhere in the database files in clear.
	dbFiles, _ := filepath.Glob(filepath.Join(s.Data, "ferry.db*"))
	for _, f := range dbFiles {
		if b, err := os.ReadFile(f); err != nil || bytes.Contains(b, []byte("secret-ferry-acme")) {
			t.Fatalf("%s: the client secret is stored in clear (%v)", f, err)
		}
	}
	if len(dbFiles) == 0 {
		t.Fatal("no database files")
	}
	if set := auditLog(t, s, "sso.set"); strings.Count(set, "\n") != 2 || strings.Contains(set, "secret-ferry") {
		t.Fatalf("sso.set audit records:\n%s", set)
	}
	// Claiming another organisation's domain, provisioning without domains
	// and an issuer that is not an OpenID provider are refused.
	for _, args := range [][]string{
		{"--org", "beta", "--issuer", op.Issuer, "--client-id", "x", "--domains", "acme.test"},
		{"--org", "beta", "--issuer", op.Issuer, "--client-id", "x", "--provision", "user"},
		{"--org", "beta", "--issuer", s.PublicURL, "--client-id", "x"},
		{"--org", "beta", "--issuer", "http://example.com", "--client-id", "x"},
	} {
		if _, _, err := s.Run("x\n", append([]string{"admin", "sso", "set", "--client-secret-stdin"}, args...)...); err == nil {
			t.Errorf("sso set %q accepted", args)
		}
	}

	t.Run("login page offers it", func(t *testing.T) {
		b := newBrowser(t, s)
		_, page := b.get("/login")
		if !strings.Contains(page, "Sign in with your company account") || !strings.Contains(page, `action="/login/sso"`) {
			t.Fatalf("login page:\n%s", page)
		}
		res, page := b.get("/login/sso?email=someone@nowhere.test")
		if res.StatusCode != http.StatusNotFound || !strings.Contains(page, "not set up") {
			t.Fatalf("unknown domain: %d\n%s", res.StatusCode, page)
		}
	})

	t.Run("provisions a new user", func(t *testing.T) {
		b := newBrowser(t, s)
		back := op.signIn(t, ssoStart(t, b, "email=bob@acme.test&next=/account"), "bob@acme.test")
		res, page := callback(b, back)
		if res.StatusCode != 200 || res.Header.Get("Refresh") != "0; url=/account" {
			t.Fatalf("callback: %d %q\n%s", res.StatusCode, res.Header.Get("Refresh"), page)
		}
		res, page = b.get("/account")
		if res.StatusCode != 200 || !strings.Contains(page, "bob@acme.test") {
			t.Fatalf("account after SSO: %d\n%s", res.StatusCode, page)
		}
		created := auditLog(t, s, "user.create")
		if !strings.Contains(created, `"actor":"sso"`) || !strings.Contains(created, "email bob@acme.test role user") {
			t.Fatalf("no user.create by sso:\n%s", created)
		}
		if logins := auditLog(t, s, "auth.login"); !strings.Contains(logins, `"actor":"bob@acme.test"`) || !strings.Contains(logins, `"detail":"oidc"`) {
			t.Fatalf("no oidc login record:\n%s", logins)
		}
		// The callback cannot be replayed, not even by the same browser.
		if res, _ := callback(b, back); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("replayed callback: %d", res.StatusCode)
		}
	})

	t.Run("existing user by organisation name", func(t *testing.T) {
		b := newBrowser(t, s)
		back := op.signIn(t, ssoStart(t, b, "org=acme"), "alice@acme.test")
		if res, page := callback(b, back); res.StatusCode != 200 || res.Header.Get("Refresh") != "0; url=/" {
			t.Fatalf("callback: %d\n%s", res.StatusCode, page)
		}
		if res, page := b.get("/account"); res.StatusCode != 200 || !strings.Contains(page, "alice@acme.test") {
			t.Fatalf("account: %d\n%s", res.StatusCode, page)
		}
	})

	// refused runs one login whose callback must be refused with status and
	// a page saying want, and audited as a denied login saying why.
	refused := func(t *testing.T, status int, want, why string, run func(b *browser) (*http.Response, string)) {
		t.Helper()
		b := newBrowser(t, s)
		res, page := run(b)
		if res.StatusCode != status || !strings.Contains(page, want) {
			t.Fatalf("want %d with %q, got %d\n%s", status, want, res.StatusCode, page)
		}
		for _, sc := range res.Header.Values("Set-Cookie") {
			if strings.HasPrefix(sc, "__Host-ferry_session=") && !strings.Contains(sc, "Max-Age=0") {
				t.Fatalf("a refused login set a session cookie: %q", sc)
			}
		}
		if res, _ := b.get("/account"); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("signed in after a refused login: %d", res.StatusCode)
		}
		if logins := auditLog(t, s, "auth.login"); !strings.Contains(logins, `"outcome":"denied"`) || !strings.Contains(logins, "oidc: "+why) {
			t.Fatalf("no denied login record with %q:\n%s", why, logins)
		}
	}

	t.Run("state mismatch", func(t *testing.T) {
		// The callback of a login started in another browser (login CSRF).
		refused(t, http.StatusUnauthorized, "Start again", "state mismatch (the login was started in another browser)", func(b *browser) (*http.Response, string) {
			other := newBrowser(t, s)
			back := op.signIn(t, ssoStart(t, other, "org=acme"), "alice@acme.test")
			return callback(b, back)
		})
		// A state Ferry never issued.
		refused(t, http.StatusUnauthorized, "Start again", "state mismatch (unknown or already used state)", func(b *browser) (*http.Response, string) {
			back := op.signIn(t, ssoStart(t, b, "org=acme"), "alice@acme.test")
			q := back.Query()
			q.Set("state", q.Get("state")+"x")
			back.RawQuery = q.Encode()
			return callback(b, back)
		})
	})

	t.Run("nonce mismatch", func(t *testing.T) {
		// A code the OP issued for another authorization request (here: one
		// with another nonce) injected into this login.
		refused(t, http.StatusUnauthorized, "nonce mismatch", "nonce mismatch", func(b *browser) (*http.Response, string) {
			u, _ := url.Parse(ssoStart(t, b, "org=acme"))
			q := u.Query()
			q.Set("nonce", "an-attackers-nonce")
			u.RawQuery = q.Encode()
			return callback(b, op.signIn(t, u.String(), "alice@acme.test"))
		})
	})

	t.Run("wrong audience", func(t *testing.T) {
		// A genuine ID token of the same OP for another client, substituted
		// in the token response.
		other := op.idTokenFor(t, "other-app", "http://127.0.0.1/other-app/callback", "alice@acme.test")
		op.swap.Store(&other)
		defer op.swap.Store(nil)
		refused(t, http.StatusUnauthorized, "wrong audience", "the ID token is for another client (wrong audience)", func(b *browser) (*http.Response, string) {
			return callback(b, op.signIn(t, ssoStart(t, b, "org=acme"), "alice@acme.test"))
		})
	})

	t.Run("expired token", func(t *testing.T) {
		op.setMode(opExpired)
		defer op.setMode(opNormal)
		refused(t, http.StatusUnauthorized, "expired", "the ID token expired", func(b *browser) (*http.Response, string) {
			return callback(b, op.signIn(t, ssoStart(t, b, "org=acme"), "alice@acme.test"))
		})
	})

	t.Run("unverified email", func(t *testing.T) {
		refused(t, http.StatusForbidden, "has not verified your email", "email carol@acme.test not verified", func(b *browser) (*http.Response, string) {
			return callback(b, op.signIn(t, ssoStart(t, b, "email=carol@acme.test"), "carol@acme.test"))
		})
	})

	t.Run("unknown user without provisioning", func(t *testing.T) {
		refused(t, http.StatusForbidden, "no Ferry account", "unknown user frank@beta.test and provisioning is off", func(b *browser) (*http.Response, string) {
			return callback(b, op.signIn(t, ssoStart(t, b, "org=beta"), "frank@beta.test"))
		})
	})

	t.Run("wrong organisation", func(t *testing.T) {
		// mallory@acme.test is a Ferry user of beta: acme's provider
		// vouching for her does not sign her in to beta.
		refused(t, http.StatusForbidden, "belongs to another organisation", "user mallory@acme.test belongs to another organisation", func(b *browser) (*http.Response, string) {
			return callback(b, op.signIn(t, ssoStart(t, b, "org=acme"), "mallory@acme.test"))
		})
		// A domain the organisation did not list.
		refused(t, http.StatusForbidden, "may not sign in", "email domain elsewhere.test not allowed", func(b *browser) (*http.Response, string) {
			return callback(b, op.signIn(t, ssoStart(t, b, "org=beta"), "erin@elsewhere.test"))
		})
	})

	t.Run("disabled user", func(t *testing.T) {
		s.Admin("user", "disable", "dave@beta.test")
		refused(t, http.StatusForbidden, "disabled", "user disabled", func(b *browser) (*http.Response, string) {
			return callback(b, op.signIn(t, ssoStart(t, b, "org=beta"), "dave@beta.test"))
		})
	})

	t.Run("provider error", func(t *testing.T) {
		refused(t, http.StatusUnauthorized, "did not sign you in", "provider refused: access_denied", func(b *browser) (*http.Response, string) {
			u, _ := url.Parse(ssoStart(t, b, "org=acme"))
			return b.get("/login/sso/callback?error=access_denied&state=" + url.QueryEscape(u.Query().Get("state")))
		})
	})

	if out, _, err := s.Run("", "audit", "verify"); err != nil {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
}
