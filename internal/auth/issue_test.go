package auth_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
)

func TestIssueToken(t *testing.T) {
	e := newMFAEnv(t)
	ctx := context.Background()
	c := auth.Client{Remote: "192.0.2.7"}
	req := auth.TokenRequest{Email: "Alice@acme.test", Password: testPassword, Name: "ci", Scope: ferry.ScopeRead, TTL: time.Hour}
	tok, tk, err := e.au.IssueToken(ctx, req, c)
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.au.Token(ctx, tok, "192.0.2.7")
	if err != nil || p.UserID != e.user.ID || p.Scope != ferry.ScopeRead || tk.Name != "ci" {
		t.Fatalf("issued token: %v %+v", err, p)
	}
	// Wrong password and unknown user: the same error.
	bad := req
	bad.Password = "not the password"
	if _, _, err := e.au.IssueToken(ctx, bad, c); err != auth.ErrLoginFailed {
		t.Fatalf("wrong password: %v", err)
	}
	bad = req
	bad.Email = "nobody@acme.test"
	if _, _, err := e.au.IssueToken(ctx, bad, c); err != auth.ErrLoginFailed {
		t.Fatalf("unknown user: %v", err)
	}
	// The organisation requires MFA: no code, then a wrong one, then none
	// enrolled yet are all refused.
	pol := ferry.DefaultPolicy(e.org.ID)
	pol.MFARequired = true
	if err := e.d.SetPolicy(ctx, pol); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.au.IssueToken(ctx, req, c); err != auth.ErrSecondFactorRequired {
		t.Fatalf("no code: %v", err)
	}
	withCode := req
	withCode.TOTP = "123456"
	if _, _, err := e.au.IssueToken(ctx, withCode, c); err != auth.ErrSecondFactor {
		t.Fatalf("no authenticator enrolled: %v", err)
	}
	secret, _ := e.enrol(t)
	e.clk.add(30 * time.Second)
	withCode.TOTP = code(t, secret, e.clk.now())
	if _, _, err := e.au.IssueToken(ctx, withCode, c); err != nil {
		t.Fatalf("right code: %v", err)
	}
	if ev := e.lastEvent(t, "auth.login"); ev.Outcome != ferry.OutcomeOK || ev.Detail != "token endpoint: password+totp" {
		t.Fatalf("login event %+v", ev)
	}
	// Replayed code: refused.
	if _, _, err := e.au.IssueToken(ctx, withCode, c); err != auth.ErrSecondFactor {
		t.Fatalf("replayed code: %v", err)
	}
	// Allowed ranges apply to issuing and to using tokens.
	pol.AllowedCIDRs, _ = auth.ParseCIDRs("10.0.0.0/8")
	pol.MFARequired = false
	e.d.SetPolicy(ctx, pol)
	e.d.DeleteTOTP(ctx, e.user.ID)
	if _, _, err := e.au.IssueToken(ctx, req, c); ferry.KindOf(err) != ferry.Permission {
		t.Fatalf("outside the ranges: %v", err)
	}
	if _, err := e.au.Token(ctx, tok, "192.0.2.7"); ferry.KindOf(err) != ferry.Permission || !strings.Contains(err.Error(), "address") {
		t.Fatalf("token outside the ranges: %v", err)
	}
	if _, err := e.au.Token(ctx, tok, "10.1.2.3"); err != nil {
		t.Fatalf("token inside the ranges: %v", err)
	}
	// Validation.
	for _, r := range []auth.TokenRequest{{Email: "a", Scope: 0, TTL: time.Hour}, {Email: "a", Scope: ferry.ScopeRead, TTL: 0}, {Email: "a", Scope: ferry.ScopeRead, TTL: time.Hour, Name: strings.Repeat("n", 101)}} {
		if _, _, err := e.au.IssueToken(ctx, r, c); ferry.KindOf(err) != ferry.Invalid {
			t.Errorf("%+v: %v", r, err)
		}
	}
}

func TestChangePasswordAndSessionBound(t *testing.T) {
	e := newMFAEnv(t)
	ctx := context.Background()
	c := auth.Client{Remote: "192.0.2.7", UserAgent: "test"}
	sec1, s1, err := e.au.Login(ctx, "alice@acme.test", testPassword, c)
	if err != nil {
		t.Fatal(err)
	}
	sec2, s2, err := e.au.Login(ctx, "alice@acme.test", testPassword, c)
	if err != nil {
		t.Fatal(err)
	}
	p := *e.p
	p.SessionID = s1.ID
	if err := e.au.ChangePassword(ctx, &p, "wrong", "a brand new passphrase"); ferry.KindOf(err) != ferry.Unauthenticated {
		t.Fatalf("wrong current password: %v", err)
	}
	if err := e.au.ChangePassword(ctx, &p, testPassword, "Password12345!"); ferry.KindOf(err) != ferry.Invalid {
		t.Fatalf("weak new password: %v", err)
	}
	if err := e.au.ChangePassword(ctx, &p, testPassword, "a brand new passphrase"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.au.Session(ctx, sec1, "192.0.2.7"); err != nil {
		t.Fatalf("the changing session ended: %v", err)
	}
	if _, _, err := e.au.Session(ctx, sec2, "192.0.2.7"); err == nil {
		t.Fatalf("the other session %s survived the change", s2.ID)
	}
	if _, _, err := e.au.Login(ctx, "alice@acme.test", "a brand new passphrase", c); err != nil {
		t.Fatalf("new password: %v", err)
	}
	if ev := e.lastEvent(t, "password.change"); ev.Outcome != ferry.OutcomeOK || ev.Detail != "other sessions ended: 1" {
		t.Fatalf("event %+v", ev)
	}
	// Tightening the policy bounds the session already open.
	e.clk.add(20 * time.Minute)
	if _, _, err := e.au.Session(ctx, sec1, "192.0.2.7"); err != nil {
		t.Fatalf("session within the default idle timeout: %v", err)
	}
	pol := ferry.DefaultPolicy(e.org.ID)
	pol.SessionMax = 15 * time.Minute
	e.d.SetPolicy(ctx, pol)
	if _, _, err := e.au.Session(ctx, sec1, "192.0.2.7"); err == nil {
		t.Fatal("a 15-minute maximum did not end a 20-minute-old session")
	}
}

func TestAlertLockout(t *testing.T) {
	e := newMFAEnv(t)
	lim := auth.NewLimiter(auth.LimiterConfig{OnLock: e.au.AlertLockout}, e.clk.now)
	a := auth.Attempt{Account: "alice@acme.test", Remote: "192.0.2.9:4000", Protocol: "https"}
	for range auth.DefaultLimiterConfig.AccountAddr.Burst {
		lim.Failure(a)
	}
	ev := e.lastEvent(t, "alert.lockout")
	if ev.ActorID != e.user.ID || ev.Remote != a.Remote || ev.Protocol != "https" || !strings.Contains(ev.Detail, "from address 192.0.2.9 locked for 1m0s") {
		t.Fatalf("alert %+v", ev)
	}
}
