package transfer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"strings"
	"testing"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/guard"
	"ferry.dev/ferry/internal/transfer"
)

// TestFrozenPrincipalDoesNothing: a user frozen by the guard is refused not
// only reads but listing, writing, deleting and starting or cancelling an
// upload, each refusal audited as denied; after the unfreeze all of it works.
// A read-only grant may not cancel its owner's upload either.
func TestFrozenPrincipalDoesNothing(t *testing.T) {
	ctx := context.Background()
	d := dbtest.SQLite(t)
	e := newEnv(t, d)
	g, err := guard.New(ctx, guard.Config{DB: d, Audit: e.alog, Now: e.clk.now, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	c := e.cfg
	c.Guard = g
	e.tr = transfer.New(c)
	if _, err := e.tr.CreateFolder(ctx, e.admin, "/in", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.tr.Put(ctx, e.admin, "/in/a.txt", bytes.NewReader([]byte("A"))); err != nil {
		t.Fatal(err)
	}
	u := &ferry.User{ID: ferry.NewID(nil), OrgID: e.org.ID, Email: "u@acme.test", Role: ferry.RoleUser}
	d.CreateUser(ctx, u)
	p := &ferry.Principal{UserID: u.ID, Email: u.Email, OrgID: e.org.ID, Role: ferry.RoleUser, Remote: "test"}
	fo, _ := d.FolderByPath(ctx, e.org.ID, "/in")
	grant := func(perms ferry.Perm) {
		if err := d.SetGrant(ctx, ferry.Grant{FolderID: fo.ID, UserID: u.ID, Perms: perms}); err != nil {
			t.Fatal(err)
		}
	}
	grant(ferry.PermList | ferry.PermRead | ferry.PermWrite | ferry.PermDelete)
	up, err := e.tr.CreateUpload(ctx, p, "/in/big.bin", 10, nil)
	if err != nil {
		t.Fatal(err)
	}

	if err := g.Freeze(ctx, p, "admin", "test", nil); err != nil {
		t.Fatal(err)
	}
	deniedFor := func() map[string]bool { // actor's denied records by path
		out := map[string]bool{}
		e.d.AuditScan(ctx, 0, 1<<40, func(r *db.AuditRow) error {
			if r.Actor == u.Email && strings.Contains(string(r.Data), `"outcome":"denied"`) {
				out[r.Action+" "+r.Path] = true
			}
			return nil
		})
		return out
	}
	for name, op := range map[string]func() error{
		"list":   func() error { _, err := e.tr.List(ctx, p, "/in"); return err },
		"put":    func() error { _, err := e.tr.Put(ctx, p, "/in/b.txt", strings.NewReader("B")); return err },
		"delete": func() error { return e.tr.Delete(ctx, p, "/in/a.txt") },
		"upload": func() error { _, err := e.tr.CreateUpload(ctx, p, "/in/c.bin", 1, nil); return err },
		"cancel": func() error { return e.tr.CancelUpload(ctx, p, up.ID) },
	} {
		if err := op(); ferry.KindOf(err) != ferry.Permission {
			t.Errorf("%s while frozen: %v", name, err)
		}
	}
	if got := deniedFor(); len(got) < 5 {
		t.Errorf("denied records for 5 refusals: %v", got)
	}
	if err := g.Unfreeze(ctx, guard.UserSubject(u.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.tr.List(ctx, p, "/in"); err != nil {
		t.Fatalf("list after the unfreeze: %v", err)
	}
	// Read-only: the upload can be neither written nor abandoned.
	grant(ferry.PermList | ferry.PermRead)
	if err := e.tr.CancelUpload(ctx, p, up.ID); ferry.KindOf(err) != ferry.Permission {
		t.Fatalf("cancel with a read-only grant: %v", err)
	}
	if ups, err := e.tr.Uploads(ctx, p, ""); err != nil || len(ups) != 1 {
		t.Fatalf("the upload after a refused cancel: %v %v", ups, err)
	}
}
