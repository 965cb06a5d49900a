package transfer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/blob/local"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/keys"
	"ferry.dev/ferry/internal/transfer"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type env struct {
	d     *db.DB
	tr    *transfer.Service
	keks  *keys.FileKEK
	blobs string
	clk   *clock
	admin *ferry.Principal
	org   *ferry.Org
	alog  *audit.Log
	cfg   transfer.Config // what tr was made with
}

func newEnv(t *testing.T, d *db.DB) *env {
	ctx := context.Background()
	dir := t.TempDir()
	clk := &clock{t: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)}
	keks, err := keys.NewFileKEK(filepath.Join(dir, "keys"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, _, err := audit.LoadOrCreateKey(filepath.Join(dir, "keys"), "test", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	alog, err := audit.Open(ctx, d, signer, filepath.Join(dir, "checkpoint"), clk.now, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alog.Close() })
	blobs, err := local.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	org := &ferry.Org{ID: ferry.NewID(nil), Name: "acme", RetentionDays: 30, Created: clk.now()}
	if err := keks.Ensure(ctx, org.ID); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateOrg(ctx, org, ferry.NewID(nil)); err != nil {
		t.Fatal(err)
	}
	cfg := transfer.Config{DB: d, Blobs: blobs, KEKs: keks, Audit: alog, Now: clk.now, Rand: rand.Reader, Logger: logger}
	tr := transfer.New(cfg)
	return &env{d: d, tr: tr, keks: keks, blobs: filepath.Join(dir, "blobs"), clk: clk, org: org, alog: alog, cfg: cfg,
		admin: &ferry.Principal{Operator: true, OrgID: org.ID, Remote: "test"}}
}

func (e *env) blobFile(t *testing.T, f *ferry.File) string {
	return filepath.Join(e.blobs, f.BlobID[:2], f.BlobID)
}

// TestCryptoShred shows that after a delete the blob's bytes, even if an
// attacker kept a copy, can no longer be decrypted: the wrapped data key is
// gone from the database, and no other key opens it.
func TestCryptoShred(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := newEnv(t, d)
		secret := bytes.Repeat([]byte("customer record 4711\n"), 5000)
		f, err := e.tr.Put(ctx, e.admin, "/a.txt", bytes.NewReader(secret))
		if err != nil {
			t.Fatal(err)
		}
		other, err := e.tr.Put(ctx, e.admin, "/b.txt", bytes.NewReader([]byte("other")))
		if err != nil {
			t.Fatal(err)
		}
		stolen, err := os.ReadFile(e.blobFile(t, f))
		if err != nil {
			t.Fatal(err)
		}
		keyID := func(f *ferry.File) [16]byte {
			var id [16]byte
			b, _ := hex.DecodeString(f.BlobID)
			copy(id[:], b)
			return id
		}
		open := func(wrapped []byte, kekID, fileID string) ([]byte, error) {
			dek, err := e.keks.Unwrap(ctx, e.org.ID, kekID, wrapped, []byte(fileID))
			if err != nil {
				return nil, err
			}
			r, err := keys.NewReader(bytes.NewReader(stolen), int64(len(stolen)), dek, keyID(f))
			if err != nil {
				return nil, err
			}
			return io.ReadAll(r)
		}
		// Before the delete, the KEK plus the row's wrapped key decrypt it.
		row, err := d.FileByID(ctx, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := open(row.WrappedKey, row.KEKID, row.ID); err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("decrypt before delete: %v", err)
		}
		if err := e.tr.Delete(ctx, e.admin, "/a.txt"); err != nil {
			t.Fatal(err)
		}
		if _, err := d.FileByID(ctx, f.ID); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("file row (and wrapped key) survived the delete: %v", err)
		}
		if _, err := os.Stat(e.blobFile(t, f)); !os.IsNotExist(err) {
			t.Fatalf("blob survived the delete: %v", err)
		}
		// The only remaining wrapped key belongs to another file: it does not
		// open the stolen blob, under either file id.
		orow, _ := d.FileByID(ctx, other.ID)
		for _, id := range []string{orow.ID, f.ID} {
			if _, err := open(orow.WrappedKey, orow.KEKID, id); err == nil {
				t.Fatalf("stolen blob decrypted with another file's key (aad %s)", id)
			}
		}
		dek, _ := e.keks.Unwrap(ctx, e.org.ID, orow.KEKID, orow.WrappedKey, []byte(orow.ID))
		if _, err := keys.NewReader(bytes.NewReader(stolen), int64(len(stolen)), dek, keyID(f)); ferry.KindOf(err) != ferry.Integrity {
			t.Fatalf("stolen blob with another data key: %v, want integrity error", err)
		}
	})
}

// TestRetentionSweep expires files after the organisation's retention
// period, except those on hold.
func TestRetentionSweep(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := newEnv(t, d)
		f, err := e.tr.Put(ctx, e.admin, "/old.txt", bytes.NewReader([]byte("x")))
		if err != nil {
			t.Fatal(err)
		}
		if want := e.clk.now().AddDate(0, 0, 30); !f.Expires.Equal(want) {
			t.Fatalf("expires %v, want %v", f.Expires, want)
		}
		if _, err := e.tr.Put(ctx, e.admin, "/held.txt", bytes.NewReader([]byte("y"))); err != nil {
			t.Fatal(err)
		}
		if err := e.tr.SetHold(ctx, e.admin, "/held.txt", true); err != nil {
			t.Fatal(err)
		}
		e.clk.add(29 * 24 * time.Hour)
		if n, err := e.tr.Sweep(ctx); err != nil || n != 0 {
			t.Fatalf("early sweep removed %d (%v)", n, err)
		}
		e.clk.add(2 * 24 * time.Hour)
		if n, err := e.tr.Sweep(ctx); err != nil || n != 1 {
			t.Fatalf("sweep removed %d (%v), want 1", n, err)
		}
		if _, err := e.tr.Open(ctx, e.admin, "/old.txt"); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("expired file still readable: %v", err)
		}
		if _, err := os.Stat(e.blobFile(t, f)); !os.IsNotExist(err) {
			t.Fatal("expired blob not removed")
		}
		if _, err := e.tr.Open(ctx, e.admin, "/held.txt"); err != nil {
			t.Fatalf("held file expired: %v", err)
		}
		var expired int
		audit.Query(ctx, d, audit.Filter{Action: "file.expire"}, func(ev *ferry.Event) error {
			if ev.Actor == "system" && ev.Path == "/old.txt" {
				expired++
			}
			return nil
		})
		if expired != 1 {
			t.Fatalf("expiry audited %d times", expired)
		}
	})
}

// TestGrants checks inheritance, invisibility and denial auditing.
func TestGrants(t *testing.T) {
	ctx := context.Background()
	d := dbtest.SQLite(t)
	e := newEnv(t, d)
	for _, p := range []string{"/a/b/c", "/x"} {
		if _, err := e.tr.CreateFolder(ctx, e.admin, p, ""); err != nil {
			t.Fatal(err)
		}
	}
	u := &ferry.User{ID: ferry.NewID(nil), OrgID: e.org.ID, Email: "u@acme.test", Role: ferry.RoleUser}
	d.CreateUser(ctx, u)
	fa, _ := d.FolderByPath(ctx, e.org.ID, "/a")
	d.SetGrant(ctx, ferry.Grant{FolderID: fa.ID, UserID: u.ID, Perms: ferry.PermList | ferry.PermRead})
	p := &ferry.Principal{UserID: u.ID, Email: u.Email, OrgID: e.org.ID, Role: ferry.RoleUser, Remote: "test"}
	if _, err := e.tr.Put(ctx, e.admin, "/a/b/c/f.txt", bytes.NewReader([]byte("z"))); err != nil {
		t.Fatal(err)
	}
	if _, err := e.tr.Open(ctx, p, "/a/b/c/f.txt"); err != nil {
		t.Fatalf("inherited read: %v", err)
	}
	if _, err := e.tr.Put(ctx, p, "/a/b/c/g.txt", bytes.NewReader(nil)); ferry.KindOf(err) != ferry.Permission {
		t.Fatalf("write without grant: %v", err)
	}
	if _, err := e.tr.List(ctx, p, "/x"); ferry.KindOf(err) != ferry.NotExist {
		t.Fatalf("list of an invisible folder: %v", err)
	}
	if err := e.tr.Move(ctx, p, "/a/b/c/f.txt", "/x/f.txt"); ferry.KindOf(err) == ferry.Other || err == nil {
		t.Fatalf("move without permissions: %v", err)
	}
	if err := e.tr.Move(ctx, e.admin, "/a", "/a/b/a"); ferry.KindOf(err) != ferry.Invalid {
		t.Fatalf("move into itself: %v", err)
	}
	denied := 0
	audit.Query(ctx, d, audit.Filter{Actor: "u@acme.test"}, func(ev *ferry.Event) error {
		if ev.Outcome == ferry.OutcomeDenied {
			denied++
		}
		return nil
	})
	if denied < 3 {
		t.Fatalf("denials audited: %d, want ≥ 3", denied)
	}
}

// TestReplace renames a file onto another atomically, shredding the old one.
func TestReplace(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := newEnv(t, d)
		a, _ := e.tr.Put(ctx, e.admin, "/a.part", bytes.NewReader([]byte("new")))
		b, _ := e.tr.Put(ctx, e.admin, "/b.txt", bytes.NewReader([]byte("old")))
		if _, err := e.tr.CreateFolder(ctx, e.admin, "/dir", ""); err != nil {
			t.Fatal(err)
		}
		if err := e.tr.Replace(ctx, e.admin, "/a.part", "/dir"); ferry.KindOf(err) != ferry.Exist {
			t.Fatalf("replace onto a folder: %v", err)
		}
		if err := e.tr.Replace(ctx, e.admin, "/a.part", "/b.txt"); err != nil {
			t.Fatal(err)
		}
		dl, err := e.tr.Open(ctx, e.admin, "/b.txt")
		if err != nil || dl.File.ID != a.ID {
			t.Fatalf("after replace /b.txt is %+v, %v", dl, err)
		}
		if _, err := e.tr.Open(ctx, e.admin, "/a.part"); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("source still there: %v", err)
		}
		if _, err := d.FileByID(ctx, b.ID); ferry.KindOf(err) != ferry.NotExist {
			t.Fatal("replaced file's row (wrapped key) survived")
		}
		if _, err := os.Stat(e.blobFile(t, b)); !os.IsNotExist(err) {
			t.Fatal("replaced file's blob survived")
		}
		// Replacing needs delete permission on the target's folder.
		u := &ferry.User{ID: ferry.NewID(nil), OrgID: e.org.ID, Email: "w@acme.test", Role: ferry.RoleUser}
		d.CreateUser(ctx, u)
		root, _ := d.FolderByPath(ctx, e.org.ID, "/")
		d.SetGrant(ctx, ferry.Grant{FolderID: root.ID, UserID: u.ID, Perms: ferry.PermList | ferry.PermRead | ferry.PermWrite})
		p := &ferry.Principal{UserID: u.ID, Email: u.Email, OrgID: e.org.ID, Role: ferry.RoleUser}
		e.tr.Put(ctx, e.admin, "/c.part", bytes.NewReader([]byte("c")))
		if err := e.tr.Replace(ctx, p, "/c.part", "/b.txt"); ferry.KindOf(err) != ferry.Permission {
			t.Fatalf("replace without delete permission: %v", err)
		}
	})
}
