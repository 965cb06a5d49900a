package httpd_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"ferry.dev/ferry/internal/ferrytest"
)

// TestBrowserSSO signs in through OpenID Connect in headless Chromium:
// Ferry's login page → the identity provider (zitadel's example OP, a real
// implementation, on loopback) → its login form → back to Ferry, signed in
// as a user provisioned from the verified email.
func TestBrowserSSO(t *testing.T) {
	ctx := newChromium(t)
	s := ferrytest.Start(t, ferrytest.WithArgs("--outbound-allow", "127.0.0.1/32")) // the OP listens on loopback
	withPassword(t, s, "acme", "admin@acme.test", "admin", "correct horse battery")
	base := localhostURL(s)
	op := startOP(t, []opUser{{"erin@acme.test", true}}, map[string]string{"ferry-acme": base + "/login/sso/callback"})
	if out, errOut, err := s.Run("secret-ferry-acme\n", "admin", "sso", "set", "--org", "acme", "--issuer", op.Issuer, "--client-id", "ferry-acme",
		"--client-secret-stdin", "--domains", "acme.test", "--provision", "user"); err != nil {
		t.Fatalf("sso set: %v %s %s", err, out, errOut)
	}
	run(t, ctx, "single sign-on",
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.CSS(`#sso-form`)),
		chromedp.SendKeys(chromedp.CSS(`#sso-form input[name=email]`), "erin@acme.test"),
		chromedp.Click(chromedp.CSS(`#sso-form button[type=submit]`)),
		// The provider's own login form.
		chromedp.WaitVisible(chromedp.CSS(`input#username`)),
		chromedp.SendKeys(chromedp.CSS(`input#username`), "erin@acme.test"),
		chromedp.SendKeys(chromedp.CSS(`input#password`), opPassword),
		chromedp.Click(chromedp.CSS(`form[action="/login/username"] button[type=submit]`)),
		// Back at Ferry, signed in.
		signedInHome,
	)
	if got := text(t, ctx, "h1"); !strings.Contains(got, "erin@acme.test") {
		t.Fatalf("signed in as %q", got)
	}
	if log := auditLog(t, s, "auth.login"); !strings.Contains(log, "erin@acme.test") || !strings.Contains(log, "oidc") {
		t.Fatalf("the SSO login is not audited:\n%s", log)
	}
}
