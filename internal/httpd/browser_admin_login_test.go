package httpd_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"ferry.dev/ferry/internal/ferrytest"
)

// Passkeys and single sign-on on the admin listener (admin_login_extra.go).

// virtualAuthenticator gives the tab Chromium's virtual authenticator: a
// platform authenticator with resident keys and user verification that
// always succeeds.
func virtualAuthenticator(t *testing.T, ctx context.Context) {
	t.Helper()
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	if _, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportInternal,
		HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
	}}); err != nil {
		t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
}

// registerPasskey signs in on the public listener and adds a passkey
// (relying party: localhost, which the admin listener shares).
func registerPasskey(t *testing.T, ctx context.Context, base, email, pw string) {
	t.Helper()
	run(t, ctx, "password sign-in", signInWithPassword(base, email, pw), signedInHome)
	run(t, ctx, "register a passkey",
		chromedp.Navigate(base+"/account"),
		chromedp.WaitVisible(chromedp.CSS(`#passkey-add`)),
		chromedp.SendKeys(chromedp.CSS(`#passkey-add input[name=name]`), "virtual key"),
		chromedp.Click(chromedp.CSS(`#passkey-add button`)),
		chromedp.WaitVisible(chromedp.Search(`//section[@id="passkeys"]//td[contains(., "virtual key")]`)),
	)
	run(t, ctx, "sign out", signOut)
}

var adminDashboard = chromedp.WaitVisible(chromedp.Search(`//h1[contains(., "Dashboard")]`))

// TestBrowserAdminPasskey: an administrator signs in to the admin UI with a
// passkey alone, and gives a passkey as the second factor after the
// password; the sessions are admin-plane sessions (the public listener does
// not accept them). Another adds, uses and removes a passkey on the admin
// listener itself (its own host name in production). A user who is not an administrator is refused with the
// same passkey flow, and audited.
func TestBrowserAdminPasskey(t *testing.T) {
	s := ferrytest.Start(t)
	const pw = "violet tugboat ledger quarry"
	withPassword(t, s, "acme", "ada@acme.test", "admin", pw)
	withPassword(t, s, "acme", "bob@acme.test", "user", "correct horse battery")
	withPassword(t, s, "acme", "olga@acme.test", "admin", "amber walrus kettle drift")
	pub, adm := localhostURL(s), adminLocalhostURL(s)

	t.Run("administrator", func(t *testing.T) {
		ctx := newChromium(t)
		virtualAuthenticator(t, ctx)
		registerPasskey(t, ctx, pub, "ada@acme.test", pw)
		run(t, ctx, "admin sign-in with a passkey",
			chromedp.Navigate(adm+"/admin/login"),
			chromedp.WaitVisible(chromedp.CSS(`#passkey-login`)),
			chromedp.Click(chromedp.CSS(`#passkey-login`)),
			adminDashboard,
		)
		run(t, ctx, "an admin page", chromedp.Navigate(adm+"/admin/orgs/acme/users"), chromedp.WaitVisible(chromedp.CSS(`#users`)))
		// The admin session does not open the public listener's pages.
		run(t, ctx, "public listener", chromedp.Navigate(pub+"/account"), chromedp.WaitVisible(chromedp.CSS(`#login-form`)))
		run(t, ctx, "sign out",
			chromedp.Navigate(adm+"/admin/"),
			chromedp.Click(chromedp.CSS(`header form[action="/admin/logout"] button`)),
			chromedp.WaitVisible(chromedp.CSS(`#login-form`)),
		)
		// With a passkey enrolled, the password asks for a second factor,
		// and the passkey gives it.
		run(t, ctx, "password, then the passkey as second factor",
			chromedp.SendKeys(chromedp.CSS(`#login-form input[name=email]`), "ada@acme.test"),
			chromedp.SendKeys(chromedp.CSS(`#login-form input[name=password]`), pw),
			chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)),
			chromedp.WaitVisible(chromedp.CSS(`#passkey-mfa`)),
			chromedp.Click(chromedp.CSS(`#passkey-mfa`)),
			adminDashboard,
		)
	})
	t.Run("passkey added on the admin listener", func(t *testing.T) {
		ctx := newChromium(t)
		virtualAuthenticator(t, ctx)
		run(t, ctx, "password sign-in", adminSignInSteps(adm, "olga@acme.test", "amber walrus kettle drift"))
		run(t, ctx, "add a passkey",
			chromedp.Navigate(adm+"/admin/account"),
			chromedp.WaitVisible(chromedp.CSS(`#passkey-add`)),
			chromedp.SendKeys(chromedp.CSS(`#passkey-add input[name=name]`), "admin key"),
			chromedp.Click(chromedp.CSS(`#passkey-add button`)),
			chromedp.WaitVisible(chromedp.Search(`//section[@id="passkeys"]//td[.="admin key"]`)),
		)
		run(t, ctx, "sign out",
			chromedp.Click(chromedp.CSS(`header form[action="/admin/logout"] button`)),
			chromedp.WaitVisible(chromedp.CSS(`#login-form`)),
		)
		run(t, ctx, "sign in with it",
			chromedp.Click(chromedp.CSS(`#passkey-login`)),
			adminDashboard,
		)
		run(t, ctx, "remove it",
			chromedp.Navigate(adm+"/admin/account"),
			chromedp.Click(chromedp.CSS(`button[aria-label="Remove the passkey admin key"]`)),
			chromedp.WaitVisible(chromedp.Search(`//td[contains(., "You have no passkey yet")]`)),
		)
	})
	t.Run("not an administrator", func(t *testing.T) {
		ctx := newChromium(t)
		virtualAuthenticator(t, ctx)
		registerPasskey(t, ctx, pub, "bob@acme.test", "correct horse battery")
		run(t, ctx, "admin sign-in with a user's passkey",
			chromedp.Navigate(adm+"/admin/login"),
			chromedp.WaitVisible(chromedp.CSS(`#passkey-login`)),
			chromedp.Click(chromedp.CSS(`#passkey-login`)),
			chromedp.WaitVisible(chromedp.Search(`//p[@data-passkey-error][contains(., "not accepted")]`)),
		)
		run(t, ctx, "no admin session", chromedp.Navigate(adm+"/admin/orgs"), chromedp.WaitVisible(chromedp.CSS(`#login-form`)))
	})

	logins := auditEvents(t, s, "auth.login")
	var adaOK, bobDenied bool
	for _, ev := range logins {
		d, _ := ev["detail"].(string)
		if ev["actor"] == "ada@acme.test" && ev["outcome"] == "ok" && ev["protocol"] == "admin" && strings.HasPrefix(d, "passkey ") {
			adaOK = true
		}
		if ev["actor"] == "bob@acme.test" && ev["outcome"] == "denied" && ev["protocol"] == "admin" && strings.Contains(d, "not an administrator") {
			bobDenied = true
		}
	}
	if !adaOK || !bobDenied {
		t.Fatalf("admin passkey logins not audited as such (ada ok %v, bob denied %v):\n%v", adaOK, bobDenied, logins)
	}
}

// adminSSOStart opens /admin/login/sso?query on the admin listener and
// returns the provider's authorization URL that the page moves on to.
func adminSSOStart(t *testing.T, b *twoPlanes, query string) string {
	t.Helper()
	res, page := b.get(b.s.AdminURL, "/admin/login/sso?"+query)
	authURL, ok := strings.CutPrefix(res.Header.Get("Refresh"), "0; url=")
	if res.StatusCode != 200 || !ok || !strings.Contains(page, "sso-continue") {
		t.Fatalf("/admin/login/sso?%s: %d %q\n%s", query, res.StatusCode, res.Header.Get("Refresh"), page)
	}
	if b.cookie(b.s.AdminURL, "__Host-ferry_admin_sso") == "" {
		t.Fatalf("no admin single-sign-on binding cookie: %q", res.Header.Values("Set-Cookie"))
	}
	return authURL
}

// TestAdminSSO signs in to the admin listener through the test OpenID
// provider: an organisation administrator gets an admin-plane session; a
// user who is not one, and an unknown user, are refused (nobody is
// provisioned here); an answer meant for the admin listener is refused on
// the public one and in another browser.
func TestAdminSSO(t *testing.T) {
	s := ferrytest.Start(t, ferrytest.WithArgs("--outbound-allow", "127.0.0.1/32")) // the OP listens on loopback
	withPassword(t, s, "acme", "ada@acme.test", "admin", "violet tugboat ledger quarry")
	withPassword(t, s, "acme", "bob@acme.test", "user", "correct horse battery")
	op := startOP(t, []opUser{{"ada@acme.test", true}, {"bob@acme.test", true}, {"newbie@acme.test", true}},
		map[string]string{"ferry-acme": s.AdminURL + "/admin/login/sso/callback"})
	if out, errOut, err := s.Run("secret-ferry-acme\n", "admin", "sso", "set", "--org", "acme", "--issuer", op.Issuer, "--client-id", "ferry-acme",
		"--client-secret-stdin", "--domains", "acme.test", "--provision", "user"); err != nil {
		t.Fatalf("sso set: %v %s %s", err, out, errOut)
	}

	b := newTwoPlanes(t, s)
	if _, page := b.get(s.AdminURL, "/admin/login"); !strings.Contains(page, `action="/admin/login/sso"`) || !strings.Contains(page, `id="passkey-login"`) {
		t.Fatalf("admin login page offers no SSO or passkey:\n%s", page)
	}
	if res, page := b.get(s.AdminURL, "/admin/login/sso?email=someone@nowhere.test"); res.StatusCode != http.StatusNotFound || !strings.Contains(page, "not set up") {
		t.Fatalf("unknown domain: %d\n%s", res.StatusCode, page)
	}

	back := op.signIn(t, adminSSOStart(t, b, "email=ada@acme.test"), "ada@acme.test")
	if !strings.HasPrefix(back.String(), s.AdminURL+"/admin/login/sso/callback?") {
		t.Fatalf("the provider sent the browser to %s", back)
	}
	// The answer, delivered to the public listener or in another browser,
	// signs nobody in.
	other := newTwoPlanes(t, s)
	if res, _ := other.get(s.AdminURL, back.RequestURI()); res.StatusCode != http.StatusUnauthorized || other.cookie(s.AdminURL, "__Host-ferry_admin") != "" {
		t.Fatalf("callback in another browser: %d", res.StatusCode)
	}
	back = op.signIn(t, adminSSOStart(t, b, "email=ada@acme.test"), "ada@acme.test")
	if res, _ := b.get(s.PublicURL, "/login/sso/callback?"+back.RawQuery); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("admin callback on the public listener: %d", res.StatusCode)
	}
	back = op.signIn(t, adminSSOStart(t, b, "email=ada@acme.test"), "ada@acme.test")
	res, page := b.get(s.AdminURL, back.RequestURI())
	if res.StatusCode != 200 || res.Header.Get("Refresh") != "0; url=/admin/" {
		t.Fatalf("callback: %d %q\n%s", res.StatusCode, res.Header.Get("Refresh"), page)
	}
	if res, page := b.get(s.AdminURL, "/admin/orgs/acme/users"); res.StatusCode != 200 || !strings.Contains(page, "Sign out ada@acme.test") {
		t.Fatalf("admin page after SSO: %d\n%s", res.StatusCode, page)
	}
	// An admin-plane session: the public listener does not take it.
	pb := &http.Client{Transport: s.Client.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", s.PublicURL+"/account", nil)
	req.AddCookie(&http.Cookie{Name: "__Host-ferry_session", Value: b.cookie(s.AdminURL, "__Host-ferry_admin")})
	if res, err := pb.Do(req); err != nil || res.StatusCode != http.StatusSeeOther {
		t.Fatalf("admin SSO session on the public listener: %v %v", res, err)
	}

	for _, who := range []string{"bob@acme.test", "newbie@acme.test"} {
		b := newTwoPlanes(t, s)
		back := op.signIn(t, adminSSOStart(t, b, "email="+url.QueryEscape(who)), who)
		if res, page := b.get(s.AdminURL, back.RequestURI()); res.StatusCode != http.StatusForbidden || !strings.Contains(page, map[string]string{
			"bob@acme.test": "Only organisation and server administrators", "newbie@acme.test": "There is no Ferry account"}[who]) {
			t.Fatalf("%s through admin SSO: %d\n%s", who, res.StatusCode, page)
		}
		if res, _ := b.get(s.AdminURL, "/admin/orgs"); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("%s has an admin session: %d", who, res.StatusCode)
		}
	}
	if _, page := b.get(s.AdminURL, "/admin/orgs/acme/users"); !strings.Contains(page, "bob@acme.test") || strings.Contains(page, "newbie@acme.test") {
		t.Fatalf("the admin listener provisioned a user:\n%s", page)
	}
	logins := auditLog(t, s, "auth.login")
	if !strings.Contains(logins, `"actor":"ada@acme.test"`) || !strings.Contains(logins, `"protocol":"admin"`) || !strings.Contains(logins, "not an administrator") {
		t.Fatalf("admin SSO logins not audited:\n%s", logins)
	}
}

// TestSignInAgainAtSecondFactor: someone at the second-factor step who goes
// back to the sign-in page can sign in there again (as someone else, say):
// the form carries the CSRF token of the session the browser holds, which
// every POST with a session must. On both listeners.
func TestSignInAgainAtSecondFactor(t *testing.T) {
	s := ferrytest.Start(t)
	const pw = "amber walrus kettle drift"
	withPassword(t, s, "acme", "olga@acme.test", "admin", pw)
	withPassword(t, s, "acme", "ada@acme.test", "admin", "violet tugboat ledger quarry")
	enrolTOTP(t, s, "olga@acme.test", pw)
	b := newTwoPlanes(t, s)
	for _, base := range []string{s.PublicURL, s.AdminURL} {
		prefix := ""
		if base == s.AdminURL {
			prefix = "/admin"
		}
		if res, _ := b.post(base, prefix+"/login", url.Values{"email": {"olga@acme.test"}, "password": {pw}}); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != prefix+"/login/mfa" {
			t.Fatalf("%s: password step: %d %s", base, res.StatusCode, res.Header.Get("Location"))
		}
		_, page := b.get(base, prefix+"/login")
		res, _ := b.post(base, prefix+"/login", url.Values{"csrf": {csrfOf(t, page)}, "email": {"ada@acme.test"}, "password": {"violet tugboat ledger quarry"}})
		if want := prefix + "/"; res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != want {
			t.Fatalf("%s: signing in again from the second-factor step: %d %s", base, res.StatusCode, res.Header.Get("Location"))
		}
	}
}

// TestBrowserAdminSSO: in Chromium an organisation administrator signs in to
// the admin UI through the test OpenID provider's own login form and lands
// on the dashboard.
func TestBrowserAdminSSO(t *testing.T) {
	ctx := newChromium(t)
	s := ferrytest.Start(t, ferrytest.WithArgs("--outbound-allow", "127.0.0.1/32")) // the OP listens on loopback
	withPassword(t, s, "acme", "ada@acme.test", "admin", "violet tugboat ledger quarry")
	adm := adminLocalhostURL(s)
	op := startOP(t, []opUser{{"ada@acme.test", true}}, map[string]string{"ferry-acme": adm + "/admin/login/sso/callback"})
	if out, errOut, err := s.Run("secret-ferry-acme\n", "admin", "sso", "set", "--org", "acme", "--issuer", op.Issuer, "--client-id", "ferry-acme",
		"--client-secret-stdin", "--domains", "acme.test"); err != nil {
		t.Fatalf("sso set: %v %s %s", err, out, errOut)
	}
	run(t, ctx, "single sign-on to the admin UI",
		chromedp.Navigate(adm+"/admin/login"),
		chromedp.WaitVisible(chromedp.CSS(`#sso-form`)),
		chromedp.SendKeys(chromedp.CSS(`#sso-form input[name=email]`), "ada@acme.test"),
		chromedp.Click(chromedp.CSS(`#sso-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`input#username`)),
		chromedp.SendKeys(chromedp.CSS(`input#username`), "ada@acme.test"),
		chromedp.SendKeys(chromedp.CSS(`input#password`), opPassword),
		chromedp.Click(chromedp.CSS(`form[action="/login/username"] button[type=submit]`)),
		adminDashboard,
	)
	if got := text(t, ctx, "header"); !strings.Contains(got, "ada@acme.test") {
		t.Fatalf("signed in as %q", got)
	}
}
