package auth_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
)

// inviteEnv is an auth service on d with a clock the test moves.
func inviteEnv(t *testing.T, d *db.DB) (*auth.Service, *ferry.User, *atomic.Int64) {
	t.Helper()
	ctx := context.Background()
	var clock atomic.Int64
	clock.Store(time.Now().UnixMicro())
	now := func() time.Time { return time.UnixMicro(clock.Load()) }
	dir := t.TempDir()
	signer, _, err := audit.LoadOrCreateKey(filepath.Join(dir, "keys"), "test", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	alog, err := audit.Open(ctx, d, signer, filepath.Join(dir, "checkpoint"), now, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alog.Close() })
	org := &ferry.Org{ID: ferry.NewID(nil), Name: "acme", RetentionDays: 30, Created: now()}
	if err := d.CreateOrg(ctx, org, ferry.NewID(nil)); err != nil {
		t.Fatal(err)
	}
	u := &ferry.User{ID: ferry.NewID(nil), OrgID: org.ID, Email: "nina@acme.test", Role: ferry.RoleUser, Created: now()}
	if err := d.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	return auth.New(d, alog, now, rand.Reader, logger), u, &clock
}

const goodPassword = "correct horse battery staple"

// TestInviteLinks: a link works once, until it expires or is replaced; every
// unusable link gets the same error; a refused password leaves it usable.
func TestInviteLinks(t *testing.T) {
	ctx := context.Background()
	d := dbtest.SQLite(t)
	au, u, clock := inviteEnv(t, d)
	c := auth.Client{Remote: "127.0.0.1:1", UserAgent: "test"}

	first, exp, err := au.CreateInvite(ctx, u.ID, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 43 || exp.Sub(time.UnixMicro(clock.Load())) != auth.InviteTTL {
		t.Fatalf("token %q expires %v", first, exp)
	}
	second, _, err := au.CreateInvite(ctx, u.ID, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := au.Invite(ctx, second); err != nil || got.ID != u.ID {
		t.Fatalf("Invite(second) = %v, %v", got, err)
	}
	uniform := func(what, token string) {
		t.Helper()
		_, err := au.Invite(ctx, token)
		if ferry.KindOf(err) != ferry.NotExist || !strings.Contains(ferry.Message(err), "not valid") {
			t.Errorf("%s: Invite err = %v", what, err)
		}
		_, _, err2 := au.AcceptInvite(ctx, token, goodPassword, c)
		if ferry.Message(err2) != ferry.Message(err) {
			t.Errorf("%s: AcceptInvite answers %q, Invite %q", what, ferry.Message(err2), ferry.Message(err))
		}
	}
	uniform("replaced link", first)
	uniform("made-up link", strings.Repeat("A", 43))
	uniform("malformed link", "../../etc/passwd")
	uniform("empty link", "")

	// A password the policy refuses: the link still works.
	if _, _, err := au.AcceptInvite(ctx, second, "short", c); ferry.KindOf(err) != ferry.Invalid {
		t.Fatalf("weak password: %v", err)
	}
	secret, sess, err := au.AcceptInvite(ctx, second, goodPassword, c)
	if err != nil || secret == "" || sess.UserID != u.ID || sess.Stage != ferry.SessionFull {
		t.Fatalf("accept: %v %+v", err, sess)
	}
	uniform("used link", second)
	// The chosen password signs in; the stored hash is argon2id.
	if _, _, err := au.Login(ctx, "nina@acme.test", goodPassword, c); err != nil {
		t.Fatalf("login with the chosen password: %v", err)
	}

	// Expiry.
	third, _, err := au.CreateInvite(ctx, u.ID, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(int64(time.Hour/time.Microsecond) + 1)
	uniform("expired link", third)

	// A disabled user's link does not work.
	fourth, _, err := au.CreateInvite(ctx, u.ID, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetUserDisabled(ctx, u.ID, true); err != nil {
		t.Fatal(err)
	}
	uniform("disabled user's link", fourth)
}

// TestInviteAcceptRace: many requests racing with one link; exactly one
// sets a password and signs in (SQLite and PostgreSQL).
func TestInviteAcceptRace(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		au, u, _ := inviteEnv(t, d)
		token, _, err := au.CreateInvite(ctx, u.ID, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		var ok, refused atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pw := goodPassword + string(rune('a'+i))
				_, _, err := au.AcceptInvite(ctx, token, pw, auth.Client{Remote: "127.0.0.1:1"})
				switch {
				case err == nil:
					ok.Add(1)
				case ferry.KindOf(err) == ferry.NotExist:
					refused.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 || refused.Load() != 3 {
			t.Fatalf("%d accepted, %d refused; want 1 and 3", ok.Load(), refused.Load())
		}
	})
}
