package auth_test

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/guard"
)

// TestFrozenUserSignIn: a user frozen by the guard who signs in with the
// right password (or through a passkey or SSO, which end in StartSession)
// gets no session, is told why, and the refusal is audited; after the
// unfreeze the same sign-in works.
func TestFrozenUserSignIn(t *testing.T) {
	e := newMFAEnv(t)
	ctx := context.Background()
	g, err := guard.New(ctx, guard.Config{DB: e.d, Audit: e.alog, Now: e.clk.now, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	e.au.SetGuard(g)
	c := auth.Client{Remote: "192.0.2.7", UserAgent: "test"}
	if err := g.Freeze(ctx, e.p, "admin", "test freeze", nil); err != nil {
		t.Fatal(err)
	}
	sec, sess, err := e.au.Login(ctx, "alice@acme.test", testPassword, c)
	if ferry.KindOf(err) != ferry.Permission || !strings.Contains(err.Error(), "frozen by the guard") || sec != "" || sess != nil {
		t.Fatalf("password sign-in while frozen: %v %v", sess, err)
	}
	if ev := e.lastEvent(t, "auth.login"); ev.Outcome != ferry.OutcomeDenied || !strings.Contains(ev.Detail, "frozen by the guard") {
		t.Fatalf("audit %+v", ev)
	}
	// A wrong password still gets the ordinary refusal: the freeze is not
	// revealed to someone who does not know the password.
	if _, _, err := e.au.Login(ctx, "alice@acme.test", "not the password", c); err == nil || strings.Contains(err.Error(), "frozen") {
		t.Fatalf("wrong password while frozen: %v", err)
	}
	if _, _, err := e.au.StartSession(ctx, e.user.ID, "passkey", c); ferry.KindOf(err) != ferry.Permission || !strings.Contains(err.Error(), "frozen by the guard") {
		t.Fatalf("passkey/SSO sign-in while frozen: %v", err)
	}
	if err := g.Unfreeze(ctx, guard.UserSubject(e.user.ID)); err != nil {
		t.Fatal(err)
	}
	if _, sess, err := e.au.Login(ctx, "alice@acme.test", testPassword, c); err != nil || sess == nil {
		t.Fatalf("after the unfreeze: %v", err)
	}
}

// TestSFTPFrozenAndNewAddress: over SFTP, a frozen user's right password
// or key is refused and audited as such, and an accepted SFTP login from an
// address range never seen for the user raises alert.newaddr, as on the web.
func TestSFTPFrozenAndNewAddress(t *testing.T) {
	e := newMFAEnv(t)
	ctx := context.Background()
	g, err := guard.New(ctx, guard.Config{DB: e.d, Audit: e.alog, Now: e.clk.now, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	e.au.SetGuard(g)
	if err := g.Freeze(ctx, e.p, "admin", "test freeze", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.au.SSHPassword(ctx, "alice@acme.test", testPassword, "192.0.2.7:1"); err != auth.ErrSSHDenied {
		t.Fatalf("SFTP password while frozen: %v", err)
	}
	if ev := e.lastEvent(t, "auth.ssh"); ev.Outcome != ferry.OutcomeDenied || !strings.Contains(ev.Detail, "frozen by the guard") {
		t.Fatalf("audit %+v", ev)
	}
	if err := g.Unfreeze(ctx, guard.UserSubject(e.user.ID)); err != nil {
		t.Fatal(err)
	}
	for _, remote := range []string{"192.0.2.7:1", "192.0.2.99:2"} { // the first ever, then the same /24
		if _, err := e.au.SSHPassword(ctx, "alice@acme.test", testPassword, remote); err != nil {
			t.Fatalf("SFTP password after the unfreeze: %v", err)
		}
	}
	for _, ev := range e.events(t) {
		if ev.Action == "alert.newaddr" {
			t.Fatalf("alert for a first or familiar address: %+v", ev)
		}
	}
	// SSHPassword accepts the login itself (SSHAccepted); a key login is
	// accepted by the SSH layer once the signature is verified.
	if _, err := e.au.SSHPassword(ctx, "alice@acme.test", testPassword, "203.0.113.9:3"); err != nil {
		t.Fatal(err)
	}
	if ev := e.lastEvent(t, "alert.newaddr"); ev.Protocol != "sftp" || ev.ActorID != e.user.ID {
		t.Fatalf("alert %+v", ev)
	}
}
