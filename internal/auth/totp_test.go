package auth_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/keys"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// mfaEnv is an auth service with KEKs, a settable clock, an org and a user
// with a password.
type mfaEnv struct {
	au   *auth.Service
	d    *db.DB
	clk  *clock
	org  *ferry.Org
	user *ferry.User
	p    *ferry.Principal
	keks *keys.FileKEK
	alog *audit.Log
}

const testPassword = "correct horse battery"

func newMFAEnv(t *testing.T) *mfaEnv {
	t.Helper()
	ctx := context.Background()
	d := dbtest.SQLite(t)
	dir := t.TempDir()
	signer, _, err := audit.LoadOrCreateKey(filepath.Join(dir, "keys"), "test", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	// Mid-step, so that a test's own steps do not straddle a boundary.
	clk := &clock{t: time.Unix(1_800_000_015, 0)}
	alog, err := audit.Open(ctx, d, signer, filepath.Join(dir, "checkpoint"), clk.now, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alog.Close() })
	keks, err := keys.NewFileKEK(filepath.Join(dir, "kek"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keks.Close() })
	au := auth.New(d, alog, clk.now, rand.Reader, logger)
	au.SetKEKs(keks)
	org := &ferry.Org{ID: ferry.NewID(nil), Name: "acme", RetentionDays: 30, Created: clk.now()}
	if err := d.CreateOrg(ctx, org, ferry.NewID(nil)); err != nil {
		t.Fatal(err)
	}
	hash, err := auth.HashPassword(testPassword, auth.PasswordParams{Time: 1, Memory: 8 * 1024, Threads: 1}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u := &ferry.User{ID: ferry.NewID(nil), OrgID: org.ID, Email: "alice@acme.test", Role: ferry.RoleUser, PasswordHash: hash, Created: clk.now()}
	if err := d.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	p := &ferry.Principal{UserID: u.ID, Email: u.Email, OrgID: org.ID, Role: u.Role, Remote: "192.0.2.7:1234", Protocol: "https"}
	return &mfaEnv{au: au, d: d, clk: clk, org: org, user: u, p: p, keks: keks, alog: alog}
}

// events returns the audit records so far.
func (e *mfaEnv) events(t *testing.T) []ferry.Event {
	t.Helper()
	var out []ferry.Event
	err := e.d.AuditScan(context.Background(), 0, math.MaxInt64, func(r *db.AuditRow) error {
		var ev ferry.Event
		if err := json.Unmarshal(r.Data, &ev); err != nil {
			return err
		}
		out = append(out, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// lastEvent returns the last audit record with the action.
func (e *mfaEnv) lastEvent(t *testing.T, action string) ferry.Event {
	t.Helper()
	evs := e.events(t)
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Action == action {
			return evs[i]
		}
	}
	t.Fatalf("no %s audit record in %+v", action, evs)
	return ferry.Event{}
}

func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrol sets up TOTP for the env's user and returns the secret and
// recovery codes.
func (e *mfaEnv) enrol(t *testing.T) (string, []string) {
	t.Helper()
	ctx := context.Background()
	en, err := e.au.BeginTOTP(ctx, e.p)
	if err != nil {
		t.Fatal(err)
	}
	codes, err := e.au.ConfirmTOTP(ctx, e.p, code(t, en.Secret, e.clk.now()))
	if err != nil {
		t.Fatal(err)
	}
	return en.Secret, codes
}

func TestTOTPEnrol(t *testing.T) {
	ctx := context.Background()
	e := newMFAEnv(t)
	en, err := e.au.BeginTOTP(ctx, e.p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(en.QR, "data:image/png;base64,") || !strings.HasPrefix(en.URL, "otpauth://totp/Ferry:alice@acme.test?") || len(en.Secret) != 52 {
		t.Fatalf("enrolment %+v", en)
	}
	// The secret is stored wrapped, never in clear.
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(en.Secret)
	if err != nil {
		t.Fatal(err)
	}
	row, err := e.d.TOTPOf(ctx, e.user.ID)
	if err != nil || row.Confirmed || bytes.Contains(row.Wrapped, raw) || !strings.HasPrefix(row.KEKID, "file:") {
		t.Fatalf("stored TOTP %+v %v", row, err)
	}
	// Not a second factor until confirmed: a password login is complete.
	if _, s, err := e.au.Login(ctx, e.user.Email, testPassword, auth.Client{Remote: "192.0.2.7:1"}); err != nil || s.Stage != ferry.SessionFull {
		t.Fatalf("login before confirmation: %+v %v", s, err)
	}
	if err := e.au.VerifyTOTP(ctx, e.user.ID, code(t, en.Secret, e.clk.now()), "192.0.2.7:1"); err != auth.ErrSecondFactor {
		t.Fatalf("VerifyTOTP with a pending authenticator: %v", err)
	}
	// The pending enrolment can be shown again, with the same secret.
	if again, err := e.au.PendingTOTP(ctx, e.p); err != nil || again.Secret != en.Secret {
		t.Fatalf("PendingTOTP = %+v %v", again, err)
	}
	// A wrong code does not confirm it.
	if _, err := e.au.ConfirmTOTP(ctx, e.p, "000000"); ferry.KindOf(err) != ferry.Unauthenticated {
		t.Fatalf("confirm with a wrong code: %v", err)
	}
	if ev := e.lastEvent(t, "auth.mfa.enrol"); ev.Outcome != ferry.OutcomeDenied {
		t.Fatalf("denied enrolment audited as %+v", ev)
	}
	codes, err := e.au.ConfirmTOTP(ctx, e.p, code(t, en.Secret, e.clk.now()))
	if err != nil || len(codes) != 10 {
		t.Fatalf("confirm: %v %v", codes, err)
	}
	if ev := e.lastEvent(t, "auth.mfa.enrol"); ev.Outcome != ferry.OutcomeOK || ev.ActorID != e.user.ID {
		t.Fatalf("enrolment audited as %+v", ev)
	}
	// The code used to confirm cannot be used again.
	if err := e.au.VerifyTOTP(ctx, e.user.ID, code(t, en.Secret, e.clk.now()), "192.0.2.7:1"); err != auth.ErrSecondFactor {
		t.Fatalf("confirmation code reused: %v", err)
	}
	// Now a password login stops at the second factor.
	if _, s, err := e.au.Login(ctx, e.user.Email, testPassword, auth.Client{Remote: "192.0.2.7:1"}); err != nil || s.Stage != ferry.SessionMFA {
		t.Fatalf("login after enrolment: %+v %v", s, err)
	}
	// A second enrolment needs the first removed.
	if _, err := e.au.BeginTOTP(ctx, e.p); ferry.KindOf(err) != ferry.Exist {
		t.Fatalf("second BeginTOTP: %v", err)
	}
	if f, err := e.au.Factors(ctx, e.user.ID); err != nil || !f.TOTP || f.RecoveryLeft != 10 {
		t.Fatalf("Factors = %+v %v", f, err)
	}
}

func TestVerifyTOTPRejections(t *testing.T) {
	ctx := context.Background()
	e := newMFAEnv(t)
	secret, recovery := e.enrol(t)
	remote := "198.51.100.9:2222"
	deniedWith := func(detail string) {
		t.Helper()
		ev := e.lastEvent(t, "auth.login")
		if ev.Outcome != ferry.OutcomeDenied || ev.Detail != detail || ev.ActorID != e.user.ID || ev.Remote != remote {
			t.Fatalf("audit record %+v, want denied %q", ev, detail)
		}
	}

	e.clk.add(30 * time.Second)
	now := e.clk.now()
	good := code(t, secret, now)
	wrong := "123456"
	if wrong == good {
		wrong = "654321"
	}
	for _, c := range []struct{ name, code, detail string }{
		{"wrong", wrong, "totp: wrong code"},
		{"empty", "", "totp: wrong code"},
		{"letters", "abcdef", "totp: wrong code"},
		{"expired", code(t, secret, now.Add(-3*time.Minute)), "totp: expired code"},
		{"too far ahead", code(t, secret, now.Add(3*time.Minute)), "totp: wrong code"},
		{"unknown recovery code", "aaaa-bbbb-cccc-dddd", "recovery: unknown or already used recovery code"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.code == good {
				t.Skip("collides with the current code")
			}
			if err := e.au.VerifyTOTP(ctx, e.user.ID, c.code, remote); err != auth.ErrSecondFactor {
				t.Fatalf("VerifyTOTP(%q) = %v", c.code, err)
			}
			deniedWith(c.detail)
		})
	}

	// The current code works once.
	if err := e.au.VerifyTOTP(ctx, e.user.ID, good, remote); err != nil {
		t.Fatal(err)
	}
	if ev := e.lastEvent(t, "auth.mfa"); ev.Outcome != ferry.OutcomeOK || ev.Detail != "totp" {
		t.Fatalf("success audited as %+v", ev)
	}
	if err := e.au.VerifyTOTP(ctx, e.user.ID, good, remote); err != auth.ErrSecondFactor {
		t.Fatalf("replayed code: %v", err)
	}
	deniedWith("totp: code already used")
	// So does the previous step's code, still inside the window.
	if prev := code(t, secret, now.Add(-30*time.Second)); prev != good {
		if err := e.au.VerifyTOTP(ctx, e.user.ID, prev, remote); err != auth.ErrSecondFactor {
			t.Fatalf("earlier step after a later one: %v", err)
		}
		deniedWith("totp: code already used")
	}
	// The next step's code works (clock skew), once.
	next := code(t, secret, now.Add(30*time.Second))
	if err := e.au.VerifyTOTP(ctx, e.user.ID, next, remote); err != nil {
		t.Fatalf("next step: %v", err)
	}
	e.clk.add(30 * time.Second)
	if err := e.au.VerifyTOTP(ctx, e.user.ID, next, remote); err != auth.ErrSecondFactor {
		t.Fatalf("next-step code replayed in its own step: %v", err)
	}

	// A recovery code works once, in any spelling.
	rc := recovery[3]
	if err := e.au.VerifyTOTP(ctx, e.user.ID, " "+strings.ToUpper(strings.ReplaceAll(rc, "-", ""))+" ", remote); err != nil {
		t.Fatalf("recovery code: %v", err)
	}
	if ev := e.lastEvent(t, "auth.mfa"); ev.Detail != "recovery code; 9 left" {
		t.Fatalf("recovery audited as %+v", ev)
	}
	if err := e.au.VerifyTOTP(ctx, e.user.ID, rc, remote); err != auth.ErrSecondFactor {
		t.Fatalf("used recovery code: %v", err)
	}
	deniedWith("recovery: unknown or already used recovery code")
	// Another user's recovery code is not this user's.
	other := newMFAEnv(t)
	_, otherCodes := other.enrol(t)
	if err := e.au.VerifyTOTP(ctx, e.user.ID, otherCodes[0], remote); err != auth.ErrSecondFactor {
		t.Fatalf("another user's recovery code: %v", err)
	}
	// Unknown users and users without TOTP get the same error.
	if err := e.au.VerifyTOTP(ctx, ferry.NewID(nil), good, remote); err != auth.ErrSecondFactor {
		t.Fatalf("unknown user: %v", err)
	}
}

func TestRemoveTOTP(t *testing.T) {
	ctx := context.Background()
	e := newMFAEnv(t)
	secret, _ := e.enrol(t)
	if err := e.au.RemoveTOTP(ctx, e.p, "", "wrong password!!"); ferry.KindOf(err) != ferry.Unauthenticated {
		t.Fatalf("remove with a wrong password: %v", err)
	}
	if err := e.au.RemoveTOTP(ctx, e.p, "000000", ""); ferry.KindOf(err) != ferry.Unauthenticated {
		t.Fatalf("remove with a wrong code: %v", err)
	}
	if ev := e.lastEvent(t, "auth.mfa.remove"); ev.Outcome != ferry.OutcomeDenied {
		t.Fatalf("denied removal audited as %+v", ev)
	}
	e.clk.add(30 * time.Second)
	if err := e.au.RemoveTOTP(ctx, e.p, code(t, secret, e.clk.now()), ""); err != nil {
		t.Fatalf("remove with a code: %v", err)
	}
	if ev := e.lastEvent(t, "auth.mfa.remove"); ev.Outcome != ferry.OutcomeOK {
		t.Fatalf("removal audited as %+v", ev)
	}
	if f, _ := e.au.Factors(ctx, e.user.ID); f.TOTP {
		t.Fatal("TOTP still enrolled")
	}
	// Enrol again, remove with the password.
	e.enrol(t)
	if err := e.au.RemoveTOTP(ctx, e.p, "", testPassword); err != nil {
		t.Fatalf("remove with the password: %v", err)
	}
	if _, s, err := e.au.Login(ctx, e.user.Email, testPassword, auth.Client{Remote: "192.0.2.7:1"}); err != nil || s.Stage != ferry.SessionFull {
		t.Fatalf("login after removal: %+v %v", s, err)
	}
}
