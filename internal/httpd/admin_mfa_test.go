package httpd_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"ferry.dev/ferry/internal/ferrytest"
)

// TestAdminSecondFactor: an administrator with an authenticator app gives
// a code on the admin listener too (the MFA-stage session opens no page),
// and a server administrator's "reset second factors" removes it and ends
// the user's sessions.
func TestAdminSecondFactor(t *testing.T) {
	s := ferrytest.Start(t)
	serverAdmin(t, s, "acme", "root@acme.test")
	const pw = "amber walrus kettle drift"
	withPassword(t, s, "acme", "olga@acme.test", "admin", pw)

	// Olga enrols an authenticator app on the public listener.
	pb := newBrowser(t, s)
	if res := pb.signIn("olga@acme.test", pw); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("public login: %d", res.StatusCode)
	}
	_, page := pb.get("/account")
	csrf := csrfOf(t, page)
	_, page = pb.post("/account/mfa/totp/begin", url.Values{"csrf": {csrf}})
	secret := secretRE.FindStringSubmatch(page)[1]
	var used int64
	pb.post("/account/mfa/totp/confirm", url.Values{"csrf": {csrf}, "code": {freshCode(t, secret, &used)}})

	b := newTwoPlanes(t, s)
	res, _ := b.post(s.AdminURL, "/admin/login", url.Values{"email": {"olga@acme.test"}, "password": {pw}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/admin/login/mfa" {
		t.Fatalf("admin password step: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if res, _ := b.get(s.AdminURL, "/admin/orgs"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/admin/login/mfa" {
		t.Fatalf("MFA-stage session on an admin page: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	_, page = b.get(s.AdminURL, "/admin/login/mfa")
	mcsrf := csrfOf(t, page)
	if res, page := b.post(s.AdminURL, "/admin/login/mfa", url.Values{"csrf": {mcsrf}, "code": {"000000"}}); res.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "wrong or expired code") {
		t.Fatalf("wrong code: %d\n%s", res.StatusCode, page)
	}
	res, _ = b.post(s.AdminURL, "/admin/login/mfa", url.Values{"csrf": {mcsrf}, "code": {freshCode(t, secret, &used)}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/admin/" {
		t.Fatalf("right code: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	_, page = b.get(s.AdminURL, "/admin/orgs/acme/users")
	if !strings.Contains(page, "olga@acme.test") || !strings.Contains(page, "Reset second factors") {
		t.Fatalf("users page after MFA:\n%s", page)
	}

	// The server administrator resets Olga's second factors.
	rb := newTwoPlanes(t, s)
	adminSignIn(t, rb, "root@acme.test", adminPW)
	_, page = rb.get(s.AdminURL, "/admin/orgs/acme/users")
	if res, _ := rb.post(s.AdminURL, "/admin/orgs/acme/users/mfa-reset", url.Values{"csrf": {csrfOf(t, page)}, "email": {"olga@acme.test"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("reset: %d", res.StatusCode)
	}
	// Her sessions ended, on both listeners; her password alone signs her in.
	if res, _ := b.get(s.AdminURL, "/admin/orgs"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/admin/login" {
		t.Fatalf("admin session after reset: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if res, _ := pb.get("/account"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("public session after reset: %d", res.StatusCode)
	}
	adminSignIn(t, newTwoPlanes(t, s), "olga@acme.test", pw)
	evs := auditEvents(t, s, "user.mfa.reset")
	if len(evs) != 1 || evs[0]["actor"] != "root@acme.test" || !strings.Contains(evs[0]["detail"].(string), "authenticator app true") {
		t.Fatalf("reset audit: %v", evs)
	}
}
