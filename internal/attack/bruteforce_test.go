package attack_test

import (
	"net/url"
	"strings"
	"testing"
)

// TestBruteForceEndToEnd (the credential stuffing that follows every
// breach): unknown and known accounts get the same answer, on the sign-in
// form and the token endpoint; password guessing from one address ends in
// 429 with Retry-After, the lockout is audited (alert.lockout), and even the
// right password is refused while locked. The detailed rules are tested in
// internal/auth (limit_test.go), internal/httpd and internal/sftpd.
func TestBruteForceEndToEnd(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	s := w.s
	form := func(email, password string) (int, string) {
		v := url.Values{"email": {email}, "password": {password}}
		res, b := do(t, s.HTTP(), "POST", s.URL()+"/login", "", v.Encode(), "Content-Type", "application/x-www-form-urlencoded", "Origin", s.URL())
		return res.StatusCode, strings.ReplaceAll(b, email, "EMAIL")
	}
	api := func(email, password string) (int, string) {
		res, b := do(t, s.HTTP(), "POST", s.URL()+"/api/v1/auth/token", "", `{"email":"`+email+`","password":"`+password+`"}`, "Content-Type", "application/json")
		return res.StatusCode, strings.ReplaceAll(b, email, "EMAIL")
	}
	// Enumeration: the same status and body for a known and an unknown
	// account (the email itself aside, which the form echoes).
	for name, try := range map[string]func(string, string) (int, string){"form": form, "token endpoint": api} {
		ks, kb := try("alice@acme.test", "wrong password 1")
		us, ub := try("nobody@acme.test", "wrong password 1")
		if ks != us || kb != ub || ks == 200 || ks == 303 {
			t.Errorf("%s: known account %d %.200q, unknown %d %.200q", name, ks, kb, us, ub)
		}
	}
	// Guessing: locked out within a few dozen tries.
	locked := 0
	for i := 0; i < 40 && locked == 0; i++ {
		st, _ := form("alice@acme.test", "guess "+string(rune('a'+i%26))+" 123456")
		if st == 429 {
			locked = i + 1
		}
	}
	if locked == 0 {
		t.Fatal("40 wrong passwords and no 429")
	}
	if st, _ := form("alice@acme.test", alicePassword); st != 429 {
		t.Errorf("the right password while locked out: %d, want 429", st)
	}
	res, _ := do(t, s.HTTP(), "POST", s.URL()+"/api/v1/auth/token", "", `{"email":"alice@acme.test","password":"`+alicePassword+`"}`, "Content-Type", "application/json")
	if res.StatusCode != 429 || res.Header.Get("Retry-After") == "" {
		t.Errorf("token endpoint while locked out: %d Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	var lockouts, denied int
	for _, e := range auditLog(t, s) {
		switch {
		case e.Action == "alert.lockout":
			lockouts++
		case e.Action == "auth.login" && e.Outcome == "denied":
			denied++
		}
	}
	if lockouts == 0 || denied < 5 {
		t.Fatalf("audit: %d alert.lockout and %d denied logins after %d guesses", lockouts, denied, locked)
	}
	t.Logf("locked out after %d guesses; %d lockout alerts, %d denied logins audited", locked, lockouts, denied)
}
