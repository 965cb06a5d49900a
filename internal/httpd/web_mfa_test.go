package httpd_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferrytest"
)

var (
	secretRE   = regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`)
	recoveryRE = regexp.MustCompile(`[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}`)
)

func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// freshCode waits, if needed, for a time step no code has been used in
// yet, and returns its code.
func freshCode(t *testing.T, secret string, used *int64) string {
	t.Helper()
	for time.Now().Unix()/30 <= *used {
		time.Sleep(200 * time.Millisecond)
	}
	*used = time.Now().Unix() / 30
	return totpCode(t, secret, time.Now())
}

func (b *browser) signIn(email, pw string) *http.Response {
	b.t.Helper()
	res, _ := b.post("/login", url.Values{"email": {email}, "password": {pw}})
	return res
}

// TestWebTOTP enrols an authenticator app on the account page, signs in
// with it and with a recovery code, and checks the refusals.
func TestWebTOTP(t *testing.T) {
	s := ferrytest.Start(t)
	withPassword(t, s, "acme", "alice@acme.test", "user", "correct horse battery")
	b := newBrowser(t, s)
	if res := b.signIn("alice@acme.test", "correct horse battery"); res.Header.Get("Location") != "/" {
		t.Fatalf("password login: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	_, page := b.get("/account")
	if !strings.Contains(page, "Set up an authenticator app") {
		t.Fatalf("account page has no TOTP block:\n%s", page)
	}
	csrf := csrfOf(t, page)
	_, page = b.post("/account/mfa/totp/begin", url.Values{"csrf": {csrf}})
	m := secretRE.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, `src="data:image/png;base64,`) {
		t.Fatalf("enrolment page:\n%s", page)
	}
	secret := m[1]
	var used int64
	res, page := b.post("/account/mfa/totp/confirm", url.Values{"csrf": {csrf}, "code": {"000000"}})
	if res.StatusCode != 200 || !strings.Contains(page, "not right") || secretRE.FindStringSubmatch(page)[1] != secret {
		t.Fatalf("wrong confirmation code: %d\n%s", res.StatusCode, page)
	}
	_, page = b.post("/account/mfa/totp/confirm", url.Values{"csrf": {csrf}, "code": {freshCode(t, secret, &used)}})
	codes := recoveryRE.FindAllString(page, -1)
	if len(codes) != 10 || !strings.Contains(page, "An authenticator app is set up") {
		t.Fatalf("confirmation page (%d codes):\n%s", len(codes), page)
	}
	if _, page = b.get("/account"); strings.Contains(page, codes[0]) {
		t.Fatal("recovery codes shown again")
	}

	// Sign in again: a password now leads to the second-factor page, where
	// nothing else works.
	b2 := newBrowser(t, s)
	res = b2.signIn("alice@acme.test", "correct horse battery")
	if res.Header.Get("Location") != "/login/mfa" {
		t.Fatalf("login with TOTP: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if res, _ := b2.get("/account"); res.Header.Get("Location") != "/login/mfa" {
		t.Fatalf("MFA-stage session reached /account: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if res := s.Do("GET", "/api/v1/folders/", "", nil); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API without a token: %d", res.StatusCode)
	}
	_, page = b2.get("/login/mfa")
	mfaCSRF := csrfOf(t, page)
	res, page = b2.post("/login/mfa", url.Values{"csrf": {mfaCSRF}, "code": {"000000"}})
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "wrong or expired code") {
		t.Fatalf("wrong code: %d\n%s", res.StatusCode, page)
	}
	code := freshCode(t, secret, &used)
	res, _ = b2.post("/login/mfa", url.Values{"csrf": {mfaCSRF}, "code": {code}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Fatalf("right code: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if res, page := b2.get("/account"); res.StatusCode != 200 || !strings.Contains(html.UnescapeString(page), "password+totp") {
		t.Fatalf("after the second factor: %d\n%s", res.StatusCode, page)
	}

	// The same code again, in another sign-in: refused.
	b3 := newBrowser(t, s)
	b3.signIn("alice@acme.test", "correct horse battery")
	_, page = b3.get("/login/mfa")
	mfaCSRF = csrfOf(t, page)
	if res, _ := b3.post("/login/mfa", url.Values{"csrf": {mfaCSRF}, "code": {code}}); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replayed code: %d", res.StatusCode)
	}
	// Without the CSRF token: refused before the code is looked at.
	if res, _ := b3.post("/login/mfa", url.Values{"code": {codes[0]}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("no CSRF: %d", res.StatusCode)
	}
	// A recovery code works, once.
	if res, _ := b3.post("/login/mfa", url.Values{"csrf": {mfaCSRF}, "code": {codes[0]}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("recovery code: %d", res.StatusCode)
	}
	b4 := newBrowser(t, s)
	b4.signIn("alice@acme.test", "correct horse battery")
	_, page = b4.get("/login/mfa")
	if res, _ := b4.post("/login/mfa", url.Values{"csrf": {csrfOf(t, page)}, "code": {codes[0]}}); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("used recovery code: %d", res.StatusCode)
	}

	// Removal needs a code or the password.
	_, page = b.get("/account")
	csrf = csrfOf(t, page)
	if _, page := b.post("/account/mfa/totp/remove", url.Values{"csrf": {csrf}, "password": {"not my password"}}); !strings.Contains(page, "wrong password") {
		t.Fatalf("removal with a wrong password:\n%s", page)
	}
	if res, _ := b.post("/account/mfa/totp/remove", url.Values{"csrf": {csrf}, "password": {"correct horse battery"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("removal: %d", res.StatusCode)
	}
	if res := newBrowser(t, s).signIn("alice@acme.test", "correct horse battery"); res.Header.Get("Location") != "/" {
		t.Fatalf("login after removal: %s", res.Header.Get("Location"))
	}
	// Passkeys need a host name: on an IP address the ceremony is refused
	// with a clear message.
	res, page = b.post("/account/passkeys/begin", url.Values{"csrf": {csrf}})
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(html.UnescapeString(page), "host name") {
		t.Fatalf("passkey on an IP address: %d %s", res.StatusCode, page)
	}
}

// TestWebMFARequired: a user of an organisation that requires MFA, with
// nothing enrolled, sets up TOTP at sign-in and then gets in.
func TestWebMFARequired(t *testing.T) {
	s := ferrytest.Start(t)
	withPassword(t, s, "acme", "bob@acme.test", "user", "correct horse battery")
	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(s.Data, "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := d.UserByEmail(ctx, "bob@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	pol, _ := d.Policy(ctx, u.OrgID)
	pol.MFARequired = true
	if err := d.SetPolicy(ctx, pol); err != nil {
		t.Fatal(err)
	}
	d.Close()

	b := newBrowser(t, s)
	if res := b.signIn("bob@acme.test", "correct horse battery"); res.Header.Get("Location") != "/login/mfa" {
		t.Fatalf("login: %s", res.Header.Get("Location"))
	}
	_, page := b.get("/login/mfa")
	if !strings.Contains(page, "requires a second factor") {
		t.Fatalf("MFA page:\n%s", page)
	}
	csrf := csrfOf(t, page)
	_, page = b.post("/login/mfa/totp/begin", url.Values{"csrf": {csrf}})
	m := secretRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("enrolment at login:\n%s", page)
	}
	var used int64
	res, page := b.post("/login/mfa/totp/confirm", url.Values{"csrf": {csrf}, "code": {freshCode(t, m[1], &used)}})
	if res.StatusCode != 200 || len(recoveryRE.FindAllString(page, -1)) != 10 {
		t.Fatalf("confirm at login: %d\n%s", res.StatusCode, page)
	}
	if res, _ := b.get("/account"); res.StatusCode != 200 {
		t.Fatalf("signed in after enrolment: %d", res.StatusCode)
	}
	// Now enrolled, a new MFA-stage session may not enrol another.
	b2 := newBrowser(t, s)
	b2.signIn("bob@acme.test", "correct horse battery")
	_, page = b2.get("/login/mfa")
	if res, _ := b2.post("/login/mfa/totp/begin", url.Values{"csrf": {csrfOf(t, page)}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("second enrolment at login: %d", res.StatusCode)
	}
}
