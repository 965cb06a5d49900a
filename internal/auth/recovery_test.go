package auth_test

import (
	"context"
	"strings"
	"testing"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
)

// Recovery codes come with the first second factor of any kind and go
// with the last one.

// addKey registers a new soft key for the env's user as the account page
// does (recovery codes made if the user has none) and returns it with the
// codes it brought.
func (e *mfaEnv) addKey(t *testing.T, name string) (*softKey, []string) {
	t.Helper()
	ctx := context.Background()
	k := newSoftKey(t)
	opts, cid, err := e.au.BeginPasskeyRegistration(ctx, e.p, "sess-a", testRP)
	if err != nil {
		t.Fatal(err)
	}
	_, codes, err := e.au.FinishPasskeyRegistration(ctx, e.p, "sess-a", testRP, cid, name, k.register(t, opts, testRP.Origin), true)
	if err != nil {
		t.Fatal(err)
	}
	return k, codes
}

func (e *mfaEnv) recoveryLeft(t *testing.T) int {
	t.Helper()
	f, err := e.au.Factors(context.Background(), e.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	return f.RecoveryLeft
}

func TestRecoveryCodesWithFirstPasskey(t *testing.T) {
	ctx := context.Background()
	e := newMFAEnv(t)
	if _, err := e.au.NewRecoveryCodes(ctx, e.p); ferry.KindOf(err) != ferry.NotExist {
		t.Fatalf("new recovery codes without a second factor: %v", err)
	}
	_, codes := e.addKey(t, "first")
	if len(codes) != 10 || e.recoveryLeft(t) != 10 {
		t.Fatalf("first passkey brought %d codes, %d stored", len(codes), e.recoveryLeft(t))
	}
	if ev := e.lastEvent(t, "auth.passkey.add"); ev.Outcome != ferry.OutcomeOK || !strings.HasSuffix(ev.Detail, "; 10 recovery codes") {
		t.Fatalf("first passkey audited as %+v", ev)
	}
	// A second passkey, and a TOTP authenticator beside them, keep the codes.
	if _, more := e.addKey(t, "second"); more != nil || e.recoveryLeft(t) != 10 {
		t.Fatalf("second passkey brought %v, %d stored", more, e.recoveryLeft(t))
	}
	if ev := e.lastEvent(t, "auth.passkey.add"); strings.Contains(ev.Detail, "recovery") {
		t.Fatalf("second passkey audited as %+v", ev)
	}
	if _, more := e.enrol(t); more != nil {
		t.Fatalf("TOTP beside a passkey brought codes %v", more)
	}
	if ev := e.lastEvent(t, "auth.mfa.enrol"); ev.Outcome != ferry.OutcomeOK || ev.Detail != "totp; recovery codes kept" {
		t.Fatalf("TOTP beside a passkey audited as %+v", ev)
	}
	if err := e.au.VerifyTOTP(ctx, e.user.ID, codes[0], "192.0.2.7:1"); err != nil {
		t.Fatalf("a code of the first passkey after TOTP enrolment: %v", err)
	}
	// A passkey registered where codes cannot be shown makes none.
	e2 := newMFAEnv(t)
	e2.registerKey(t, "admin")
	if n := e2.recoveryLeft(t); n != 0 {
		t.Fatalf("registration without recovery made %d codes", n)
	}
	// "New recovery codes" is for a passkey-only user too.
	fresh, err := e2.au.NewRecoveryCodes(ctx, e2.p)
	if err != nil || len(fresh) != 10 || e2.recoveryLeft(t) != 10 {
		t.Fatalf("NewRecoveryCodes for a passkey-only user = %v %v", fresh, err)
	}
	if ev := e2.lastEvent(t, "auth.mfa.recovery"); ev.Outcome != ferry.OutcomeOK {
		t.Fatalf("new codes audited as %+v", ev)
	}
}

func TestRecoveryCodesKeptWhileAFactorRemains(t *testing.T) {
	ctx := context.Background()
	e := newMFAEnv(t)
	_, codes := e.enrol(t)
	if len(codes) != 10 {
		t.Fatalf("TOTP enrolment brought %d codes", len(codes))
	}
	if _, more := e.addKey(t, "key"); more != nil {
		t.Fatalf("a passkey beside TOTP brought codes %v", more)
	}
	// Removing TOTP with a passkey left keeps the codes.
	if err := e.au.RemoveTOTP(ctx, e.p, "", testPassword); err != nil {
		t.Fatal(err)
	}
	if ev := e.lastEvent(t, "auth.mfa.remove"); ev.Outcome != ferry.OutcomeOK || !strings.Contains(ev.Detail, "recovery codes kept") {
		t.Fatalf("removal beside a passkey audited as %+v", ev)
	}
	if n := e.recoveryLeft(t); n != 10 {
		t.Fatalf("%d recovery codes left after removing TOTP beside a passkey", n)
	}
	// TOTP again, then the passkey removed: TOTP remains, so do the codes.
	e.clk.add(60e9)
	if _, more := e.enrol(t); more != nil {
		t.Fatalf("TOTP beside a passkey with codes brought %v", more)
	}
	list, err := e.au.Passkeys(ctx, e.p)
	if err != nil || len(list) != 1 {
		t.Fatalf("Passkeys = %v %v", list, err)
	}
	if err := e.au.RemovePasskey(ctx, e.p, list[0].ID); err != nil {
		t.Fatal(err)
	}
	if ev := e.lastEvent(t, "auth.passkey.remove"); ev.Detail != "passkey "+list[0].ID {
		t.Fatalf("passkey removal beside TOTP audited as %+v", ev)
	}
	if n := e.recoveryLeft(t); n != 10 {
		t.Fatalf("%d recovery codes left after removing a passkey beside TOTP", n)
	}
	if err := e.au.VerifyTOTP(ctx, e.user.ID, codes[1], "192.0.2.7:1"); err != nil {
		t.Fatalf("a code of the first enrolment: %v", err)
	}
	// The last factor removed: the codes go.
	if err := e.au.RemoveTOTP(ctx, e.p, "", testPassword); err != nil {
		t.Fatal(err)
	}
	if ev := e.lastEvent(t, "auth.mfa.remove"); ev.Detail != "totp and recovery codes" {
		t.Fatalf("last-factor removal audited as %+v", ev)
	}
	if n, err := e.d.RecoveryCodesLeft(ctx, e.user.ID); err != nil || n != 0 {
		t.Fatalf("RecoveryCodesLeft after the last factor = %d %v", n, err)
	}
	if err := e.au.VerifyTOTP(ctx, e.user.ID, codes[2], "192.0.2.7:1"); err != auth.ErrSecondFactor {
		t.Fatalf("a code after the last factor went: %v", err)
	}
}

func TestRecoveryCodesGoWithLastPasskey(t *testing.T) {
	ctx := context.Background()
	e := newMFAEnv(t)
	_, codes := e.addKey(t, "one")
	e.addKey(t, "two")
	list, err := e.au.Passkeys(ctx, e.p)
	if err != nil || len(list) != 2 {
		t.Fatalf("Passkeys = %v %v", list, err)
	}
	if err := e.au.RemovePasskey(ctx, e.p, list[0].ID); err != nil {
		t.Fatal(err)
	}
	if n := e.recoveryLeft(t); n != 10 {
		t.Fatalf("%d recovery codes left with one passkey remaining", n)
	}
	if err := e.au.RemovePasskey(ctx, e.p, list[1].ID); err != nil {
		t.Fatal(err)
	}
	if ev := e.lastEvent(t, "auth.passkey.remove"); ev.Detail != "passkey "+list[1].ID+" and recovery codes" {
		t.Fatalf("last passkey removal audited as %+v", ev)
	}
	if n, err := e.d.RecoveryCodesLeft(ctx, e.user.ID); err != nil || n != 0 {
		t.Fatalf("RecoveryCodesLeft after the last passkey = %d %v", n, err)
	}
	if err := e.au.VerifyTOTP(ctx, e.user.ID, codes[0], "192.0.2.7:1"); err != auth.ErrSecondFactor {
		t.Fatalf("a code after the last passkey went: %v", err)
	}
	// A new first factor brings new codes.
	if _, again := e.addKey(t, "three"); len(again) != 10 {
		t.Fatalf("a first passkey again brought %d codes", len(again))
	}
}

func TestRecoveryCodePasskeyOnlyMFA(t *testing.T) {
	ctx := context.Background()
	e := newMFAEnv(t)
	_, codes := e.addKey(t, "key")
	_, sess, err := e.au.Login(ctx, e.user.Email, testPassword, auth.Client{Remote: "192.0.2.7:1"})
	if err != nil || sess.Stage != ferry.SessionMFA {
		t.Fatalf("password login with a passkey: %+v %v", sess, err)
	}
	// Not a TOTP code: the user has no authenticator app.
	if _, err := e.au.VerifySecondFactor(ctx, e.user.ID, "123456", "192.0.2.7:1", "https"); err != auth.ErrSecondFactor {
		t.Fatalf("a TOTP code from a passkey-only user: %v", err)
	}
	if ev := e.lastEvent(t, "auth.login"); ev.Outcome != ferry.OutcomeDenied || ev.Detail != "totp: no authenticator enrolled" {
		t.Fatalf("TOTP code audited as %+v", ev)
	}
	method, err := e.au.VerifySecondFactor(ctx, e.user.ID, strings.ToUpper(codes[3]), "192.0.2.7:1", "https")
	if err != nil || method != "recovery" {
		t.Fatalf("a recovery code from a passkey-only user = %q %v", method, err)
	}
	if ev := e.lastEvent(t, "auth.mfa"); ev.Outcome != ferry.OutcomeOK || ev.Detail != "recovery code; 9 left" {
		t.Fatalf("recovery code audited as %+v", ev)
	}
	_, full, err := e.au.CompleteMFA(ctx, sess, method, auth.Client{Remote: "192.0.2.7:1"})
	if err != nil || full.Stage != ferry.SessionFull || full.Methods != "password+recovery" {
		t.Fatalf("CompleteMFA = %+v %v", full, err)
	}
	// Once only.
	if _, err := e.au.VerifySecondFactor(ctx, e.user.ID, codes[3], "192.0.2.7:1", "https"); err != auth.ErrSecondFactor {
		t.Fatalf("a used recovery code: %v", err)
	}
	if ev := e.lastEvent(t, "auth.login"); ev.Detail != "recovery: unknown or already used recovery code" {
		t.Fatalf("used code audited as %+v", ev)
	}
	// The same rule for SFTP and the token endpoint (VerifyTOTP).
	if err := e.au.VerifyTOTP(ctx, e.user.ID, codes[4], "192.0.2.7:1"); err != nil {
		t.Fatalf("VerifyTOTP with a recovery code of a passkey-only user: %v", err)
	}
	// With passkeys off, a passkey is no second factor, nor are its codes.
	pol, err := e.d.Policy(ctx, e.org.ID)
	if err != nil {
		t.Fatal(err)
	}
	pol.Passkeys = ferry.PasskeysOff
	if err := e.d.SetPolicy(ctx, pol); err != nil {
		t.Fatal(err)
	}
	if err := e.au.VerifyTOTP(ctx, e.user.ID, codes[5], "192.0.2.7:1"); err != auth.ErrSecondFactor {
		t.Fatalf("a recovery code with passkeys off: %v", err)
	}
	if ev := e.lastEvent(t, "auth.login"); ev.Detail != "recovery: no second factor enrolled" {
		t.Fatalf("code with passkeys off audited as %+v", ev)
	}
	// ... so SFTP asks for no code either, as the web asks for none.
	if due, err := e.au.SecondFactorDue(ctx, e.user.ID); err != nil || due {
		t.Fatalf("SFTP second factor due with passkeys off: %v %v", due, err)
	}
	if _, sess, err := e.au.Login(ctx, e.user.Email, testPassword, auth.Client{Remote: "192.0.2.7:1"}); err != nil || sess.Stage != ferry.SessionFull {
		t.Fatalf("web sign-in with passkeys off: %+v %v", sess, err)
	}
	pol.Passkeys = ferry.PasskeysAllowed
	if err := e.d.SetPolicy(ctx, pol); err != nil {
		t.Fatal(err)
	}
	if due, err := e.au.SecondFactorDue(ctx, e.user.ID); err != nil || !due {
		t.Fatalf("SFTP second factor due with passkeys allowed: %v %v", due, err)
	}
}
