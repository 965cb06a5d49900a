package httpd_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"ferry.dev/ferry/internal/ferrytest"
)

// End-to-end tests in headless Chromium (Debian's chromium, installed by
// scripts/test.sh): password + TOTP sign-in, passkey registration and
// passwordless sign-in with Chromium's virtual authenticator.
//
// WebAuthn refuses IP addresses as relying-party ids, so the browser talks
// to the server as https://localhost:PORT (the test certificate names
// localhost); the host resolver pins localhost to 127.0.0.1, where the
// server listens. The server's self-signed certificate is accepted with
// --ignore-certificate-errors, in this throwaway profile only.

// chromiumPath finds Chromium. Under CI a missing browser fails the test;
// elsewhere it skips.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed: scripts/test.sh installs it (apt-get install chromium)")
	}
	t.Skip("chromium is not installed; scripts/test.sh installs it")
	return ""
}

// newChromium starts a headless Chromium with a fresh profile and returns
// a tab's context.
func newChromium(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("host-resolver-rules", "MAP localhost 127.0.0.1"),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	// The first action starts the browser; it must not run under a
	// timeout, which would stop the browser with it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// localhostURL is the server's public URL with localhost for 127.0.0.1.
func localhostURL(s *ferrytest.Server) string {
	return strings.Replace(s.PublicURL, "://127.0.0.1:", "://localhost:", 1)
}

// run runs the steps, each batch within two minutes (the machine may be
// loaded), and on failure reports
// where the browser was and what it showed.
func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		loc, _ := chromedp.Run(cctx, chromedp.Location())
		body, _ := chromedp.Run(cctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("%s: %v\nat %s:\n%s", what, err, loc, body)
	}
}

// text returns the text of the element the CSS selector names.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	s, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func signInWithPassword(base, email, pw string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.CSS(`#login-form`)),
		chromedp.SendKeys(chromedp.CSS(`#login-form input[name=email]`), email),
		chromedp.SendKeys(chromedp.CSS(`#login-form input[name=password]`), pw),
		chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)),
	)
}

var signedInHome = chromedp.WaitVisible(chromedp.Search(`//h1[contains(., "Welcome")]`))

var signOut = chromedp.Steps(
	chromedp.Click(chromedp.CSS(`header form[action="/logout"] button`)),
	chromedp.WaitVisible(chromedp.CSS(`#login-form`)),
)

func TestBrowserTOTP(t *testing.T) {
	ctx := newChromium(t)
	s := ferrytest.Start(t)
	withPassword(t, s, "acme", "carol@acme.test", "user", "correct horse battery")
	base := localhostURL(s)

	run(t, ctx, "password sign-in", signInWithPassword(base, "carol@acme.test", "correct horse battery"), signedInHome)
	run(t, ctx, "begin TOTP enrolment",
		chromedp.Navigate(base+"/account"),
		chromedp.Click(chromedp.CSS(`#totp-begin`)),
		chromedp.WaitVisible(chromedp.CSS(`#totp-qr`)),
	)
	secret := text(t, ctx, `#totp-secret`)
	var used int64
	run(t, ctx, "confirm TOTP",
		chromedp.SendKeys(chromedp.CSS(`form[action="/account/mfa/totp/confirm"] input[name=code]`), freshCode(t, secret, &used)),
		chromedp.Click(chromedp.CSS(`form[action="/account/mfa/totp/confirm"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`#recovery-codes`)),
	)
	codes := text(t, ctx, `#recovery-codes`)
	if n := len(recoveryRE.FindAllString(codes, -1)); n != 10 {
		t.Fatalf("%d recovery codes shown: %q", n, codes)
	}

	run(t, ctx, "sign out", signOut)
	run(t, ctx, "password, then the second-factor page", signInWithPassword(base, "carol@acme.test", "correct horse battery"),
		chromedp.WaitVisible(chromedp.CSS(`#mfa-form`)))
	run(t, ctx, "a wrong code",
		chromedp.SendKeys(chromedp.CSS(`#mfa-form input[name=code]`), "000000"),
		chromedp.Click(chromedp.CSS(`#mfa-form button`)),
		chromedp.WaitVisible(chromedp.Search(`//p[@role="alert"][contains(., "wrong or expired code")]`)),
	)
	run(t, ctx, "the right code",
		chromedp.SendKeys(chromedp.CSS(`#mfa-form input[name=code]`), freshCode(t, secret, &used)),
		chromedp.Click(chromedp.CSS(`#mfa-form button`)),
		signedInHome,
	)
}

func TestBrowserPasskey(t *testing.T) {
	ctx := newChromium(t)
	s := ferrytest.Start(t)
	withPassword(t, s, "acme", "dave@acme.test", "user", "correct horse battery")
	base := localhostURL(s)

	// Chromium's virtual authenticator: a platform authenticator with
	// resident keys and user verification that always succeeds.
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	if _, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportInternal,
		HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
	}}); err != nil {
		t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}

	run(t, ctx, "password sign-in", signInWithPassword(base, "dave@acme.test", "correct horse battery"), signedInHome)
	run(t, ctx, "register a passkey",
		chromedp.Navigate(base+"/account"),
		chromedp.WaitVisible(chromedp.CSS(`#passkey-add`)),
		chromedp.SendKeys(chromedp.CSS(`#passkey-add input[name=name]`), "virtual key"),
		chromedp.Click(chromedp.CSS(`#passkey-add button`)),
		chromedp.WaitVisible(chromedp.Search(`//section[@id="passkeys"]//td[contains(., "virtual key")]`)),
		chromedp.WaitVisible(chromedp.CSS(`#recovery-codes`)),
	)
	// The first second factor brings the recovery codes, shown once.
	codes := recoveryRE.FindAllString(text(t, ctx, `#recovery-codes`), -1)
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes shown after the first passkey: %q", len(codes), codes)
	}
	run(t, ctx, "sign out", signOut)

	// A recovery code stands in for the passkey.
	run(t, ctx, "password, then a recovery code",
		signInWithPassword(base, "dave@acme.test", "correct horse battery"),
		chromedp.WaitVisible(chromedp.CSS(`#mfa-form`)),
		chromedp.SendKeys(chromedp.CSS(`#mfa-form input[name=code]`), codes[0]),
		chromedp.Click(chromedp.CSS(`#mfa-form button`)),
		signedInHome,
	)
	run(t, ctx, "sign out", signOut)

	// A password sign-in now asks for the passkey as the second factor.
	run(t, ctx, "password, then the passkey as second factor",
		signInWithPassword(base, "dave@acme.test", "correct horse battery"),
		chromedp.WaitVisible(chromedp.CSS(`#passkey-mfa`)),
		chromedp.Click(chromedp.CSS(`#passkey-mfa`)),
		signedInHome,
	)
	run(t, ctx, "sign out", signOut)

	// Passwordless: the passkey alone.
	run(t, ctx, "sign in with a passkey",
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.CSS(`#passkey-login`)),
		chromedp.Click(chromedp.CSS(`#passkey-login`)),
		signedInHome,
	)
	run(t, ctx, "account page", chromedp.Navigate(base+"/account"), chromedp.WaitVisible(chromedp.CSS(`#passkeys`)))
	page := text(t, ctx, "body")
	if !strings.Contains(page, "passkey") {
		t.Fatalf("no passkey session listed:\n%s", page)
	}
}
