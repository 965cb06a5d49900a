package transfer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/keys"
)

// cutReader returns its data and then fails, like a dropped connection.
type cutReader struct {
	r   io.Reader
	err error
}

func (c *cutReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		return n, c.err
	}
	return n, err
}

func sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func (e *env) readAll(t *testing.T, p *ferry.Principal, path string) []byte {
	t.Helper()
	ctx := context.Background()
	d, err := e.tr.Open(ctx, p, path)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := d.Read(ctx, 0, d.File.Size)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestResumableUpload writes one file in several sessions, one of them cut
// off mid-segment, with offset conflicts and a bad chunk checksum on the way,
// and reads back exactly the content.
func TestResumableUpload(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := newEnv(t, d)
		content := make([]byte, 3*keys.SegmentSize+12345)
		for i := range content {
			content[i] = byte(i*7 + i/251)
		}
		copy(content, "customer record 4711 ")
		u, err := e.tr.CreateUpload(ctx, e.admin, "/big.bin", int64(len(content)), sum(content))
		if err != nil {
			t.Fatal(err)
		}
		// Session 1: 70000 bytes arrive, then the connection drops. They are
		// kept: the upload continues from 70000.
		cut := 70000
		u2, n, err := e.tr.WriteUpload(ctx, e.admin, u.ID, 0, &cutReader{bytes.NewReader(content[:cut]), io.ErrUnexpectedEOF}, nil)
		if n != int64(cut) || err == nil || u2.Received != int64(cut) {
			t.Fatalf("cut-off session: n=%d err=%v received=%d", n, err, u2.Received)
		}
		// A client that thinks it is elsewhere gets Conflict and the offset.
		u3, _, err := e.tr.WriteUpload(ctx, e.admin, u.ID, 0, bytes.NewReader(content), nil)
		if ferry.KindOf(err) != ferry.Conflict || u3.Received != int64(cut) {
			t.Fatalf("wrong offset: %v (at %d)", err, u3.Received)
		}
		// A chunk whose checksum does not match is discarded whole.
		bad := sum([]byte("something else"))
		_, n, err = e.tr.WriteUpload(ctx, e.admin, u.ID, int64(cut), bytes.NewReader(content[cut:cut+1000]), bad)
		if ferry.KindOf(err) != ferry.Checksum || n != 0 {
			t.Fatalf("bad checksum: n=%d %v", n, err)
		}
		// A chunk cut off while a checksum was declared is discarded too.
		_, n, err = e.tr.WriteUpload(ctx, e.admin, u.ID, int64(cut), &cutReader{bytes.NewReader(content[cut : cut+500]), io.ErrUnexpectedEOF}, sum(content[cut:cut+1000]))
		if err == nil || n != 0 {
			t.Fatalf("cut chunk with checksum: n=%d %v", n, err)
		}
		// Session 2, with a good checksum: up to 200000.
		mid := 200000
		u4, n, err := e.tr.WriteUpload(ctx, e.admin, u.ID, int64(cut), bytes.NewReader(content[cut:mid]), sum(content[cut:mid]))
		if err != nil || n != int64(mid-cut) || u4.Parts != 2 {
			t.Fatalf("session 2: n=%d %v parts=%d", n, err, u4.Parts)
		}
		// The file does not exist yet, and completing early is refused.
		if _, err := e.tr.Open(ctx, e.admin, "/big.bin"); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("incomplete upload visible: %v", err)
		}
		if _, err := e.tr.CompleteUpload(ctx, e.admin, u.ID); ferry.KindOf(err) != ferry.Conflict {
			t.Fatalf("early completion: %v", err)
		}
		// Sending more than the declared length stores nothing.
		over := append(append([]byte{}, content[mid:]...), 'x')
		if _, n, err := e.tr.WriteUpload(ctx, e.admin, u.ID, int64(mid), bytes.NewReader(over), nil); ferry.KindOf(err) != ferry.TooLarge || n != 0 {
			t.Fatalf("overlong chunk: n=%d %v", n, err)
		}
		// No plaintext anywhere on disk.
		e.noPlaintext(t, []byte("customer record 4711"))
		// Session 3: the rest; then complete.
		if _, _, err := e.tr.WriteUpload(ctx, e.admin, u.ID, int64(mid), bytes.NewReader(content[mid:]), nil); err != nil {
			t.Fatal(err)
		}
		f, err := e.tr.CompleteUpload(ctx, e.admin, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if f.Parts != 3 || !bytes.Equal(f.SHA256, sum(content)) {
			t.Fatalf("file: parts %d sha %x", f.Parts, f.SHA256)
		}
		if got := e.readAll(t, e.admin, "/big.bin"); !bytes.Equal(got, content) {
			t.Fatal("content read back differs")
		}
		// Ranged reads across part boundaries.
		dl, _ := e.tr.Open(ctx, e.admin, "/big.bin")
		for _, rg := range [][2]int64{{69990, 20}, {int64(cut), 1}, {199999, 2}, {0, int64(len(content))}, {int64(len(content)) - 1, 1}} {
			rc, err := dl.Read(ctx, rg[0], rg[1])
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(b, content[rg[0]:rg[0]+rg[1]]) {
				t.Fatalf("range %v differs", rg)
			}
		}
		if _, err := e.tr.Upload(ctx, e.admin, u.ID); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("completed upload still there: %v", err)
		}
		e.noPlaintext(t, []byte("customer record 4711"))
		// Deleting the file deletes every part.
		if err := e.tr.Delete(ctx, e.admin, "/big.bin"); err != nil {
			t.Fatal(err)
		}
		if n := e.countBlobs(t); n != 0 {
			t.Fatalf("%d blobs left after deleting the file", n)
		}
	})
}

func (e *env) noPlaintext(t *testing.T, needle []byte) {
	t.Helper()
	filepath.Walk(filepath.Dir(e.blobs), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, needle) {
				t.Fatalf("plaintext found in %s", p)
			}
		}
		return nil
	})
}

func (e *env) countBlobs(t *testing.T) int {
	n := 0
	filepath.Walk(e.blobs, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && !strings.HasPrefix(fi.Name(), ".") && len(fi.Name()) == 32 {
			n++
		}
		return nil
	})
	return n
}

// TestUploadRules covers ownership, permission at creation and completion,
// the whole-file checksum, expiry and the sweeper.
func TestUploadRules(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := newEnv(t, d)
		alice := e.user(t, "alice@acme.test", ferry.RoleUser)
		bob := e.user(t, "bob@acme.test", ferry.RoleUser)
		e.grant(t, "/in", alice, ferry.PermWrite|ferry.PermList|ferry.PermRead)

		if _, err := e.tr.CreateUpload(ctx, bob, "/in/x", 10, nil); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("upload to an invisible folder: %v", err)
		}
		if _, err := e.tr.CreateUpload(ctx, alice, "/in/x", 10, []byte("short")); ferry.KindOf(err) != ferry.Invalid {
			t.Fatalf("bad expected hash: %v", err)
		}
		u, err := e.tr.CreateUpload(ctx, alice, "/in/x", 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Bob cannot see, continue, complete or cancel Alice's upload.
		if _, err := e.tr.Upload(ctx, bob, u.ID); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("other user's upload: %v", err)
		}
		if _, _, err := e.tr.WriteUpload(ctx, bob, u.ID, 0, strings.NewReader("0123456789"), nil); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("other user's write: %v", err)
		}
		if err := e.tr.CancelUpload(ctx, bob, u.ID); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("other user's cancel: %v", err)
		}
		if ups, _ := e.tr.Uploads(ctx, bob, ""); len(ups) != 0 {
			t.Fatalf("bob lists %d uploads", len(ups))
		}
		if ups, _ := e.tr.Uploads(ctx, alice, "/in/x"); len(ups) != 1 || ups[0].ID != u.ID {
			t.Fatalf("alice lists %v", ups)
		}
		if _, _, err := e.tr.WriteUpload(ctx, alice, u.ID, 0, strings.NewReader("0123456789"), nil); err != nil {
			t.Fatal(err)
		}
		// Alice loses write permission before completing: refused, and so
		// is any further byte of another upload.
		v, err := e.tr.CreateUpload(ctx, alice, "/in/v", 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.grant(t, "/in", alice, ferry.PermList|ferry.PermRead)
		if _, err := e.tr.CompleteUpload(ctx, alice, u.ID); ferry.KindOf(err) != ferry.Permission {
			t.Fatalf("completion without write permission: %v", err)
		}
		if _, n, err := e.tr.WriteUpload(ctx, alice, v.ID, 0, strings.NewReader("x"), nil); ferry.KindOf(err) != ferry.Permission || n != 0 {
			t.Fatalf("write without write permission: %d %v", n, err)
		}
		e.grant(t, "/in", alice, ferry.PermWrite|ferry.PermList|ferry.PermRead)
		if _, err := e.tr.CompleteUpload(ctx, alice, u.ID); err != nil {
			t.Fatal(err)
		}

		// A declared SHA-256 that the content does not match: discarded.
		w, _ := e.tr.CreateUpload(ctx, alice, "/in/y", 3, sum([]byte("abc")))
		e.tr.WriteUpload(ctx, alice, w.ID, 0, strings.NewReader("abd"), nil)
		if _, err := e.tr.CompleteUpload(ctx, alice, w.ID); ferry.KindOf(err) != ferry.Checksum {
			t.Fatalf("whole-file checksum mismatch: %v", err)
		}
		if _, err := e.tr.Upload(ctx, alice, w.ID); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("mismatched upload kept: %v", err)
		}

		// An empty upload makes an empty file.
		z, _ := e.tr.CreateUpload(ctx, alice, "/in/empty", 0, nil)
		if f, err := e.tr.CompleteUpload(ctx, alice, z.ID); err != nil || f.Size != 0 {
			t.Fatalf("empty upload: %v", err)
		}
		if got := e.readAll(t, alice, "/in/empty"); len(got) != 0 {
			t.Fatal("empty file has content")
		}

		// Abandoned: expired after the TTL, then shredded by the sweeper.
		a, _ := e.tr.CreateUpload(ctx, alice, "/in/abandoned", 100, nil)
		e.tr.WriteUpload(ctx, alice, a.ID, 0, strings.NewReader("half of it"), nil)
		blobsBefore := e.countBlobs(t)
		e.clk.add(25 * time.Hour)
		if _, err := e.tr.Upload(ctx, alice, a.ID); ferry.KindOf(err) != ferry.Expired {
			t.Fatalf("abandoned upload: %v, want expired", err)
		}
		if _, _, err := e.tr.WriteUpload(ctx, alice, a.ID, 10, strings.NewReader("x"), nil); ferry.KindOf(err) != ferry.Expired {
			t.Fatalf("write to expired upload: %v", err)
		}
		if _, err := e.tr.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if got := e.countBlobs(t); got != blobsBefore-1 {
			t.Fatalf("blobs %d → %d after sweeping an abandoned upload", blobsBefore, got)
		}
		var expired int
		audit.Query(ctx, d, audit.Filter{Action: "upload.expire"}, func(ev *ferry.Event) error {
			if ev.Path == "/in/abandoned" && ev.Bytes == 10 {
				expired++
			}
			return nil
		})
		if expired != 1 {
			t.Fatalf("expiry audited %d times", expired)
		}
		if _, err := e.tr.Upload(ctx, alice, a.ID); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("swept upload: %v", err)
		}
	})
}

func (e *env) user(t *testing.T, email string, role ferry.Role) *ferry.Principal {
	t.Helper()
	u := &ferry.User{ID: ferry.NewID(nil), OrgID: e.org.ID, Email: email, Role: role}
	if err := e.d.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return &ferry.Principal{UserID: u.ID, Email: u.Email, OrgID: e.org.ID, Role: role, Remote: "test"}
}

// folder returns the folder at path, creating it (and its parents) if needed.
func (e *env) folder(t *testing.T, path string) *ferry.Folder {
	t.Helper()
	ctx := context.Background()
	if f, err := e.d.FolderByPath(ctx, e.org.ID, path); err == nil {
		return f
	}
	f, err := e.tr.CreateFolder(ctx, e.admin, path, "")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (e *env) grant(t *testing.T, path string, p *ferry.Principal, perms ferry.Perm) {
	t.Helper()
	if err := e.d.SetGrant(context.Background(), ferry.Grant{FolderID: e.folder(t, path).ID, UserID: p.UserID, Perms: perms}); err != nil {
		t.Fatal(err)
	}
}

// TestDeferredSizeUpload: an upload of unknown length (SFTP) takes its size
// from what arrived, over several sessions.
func TestDeferredSizeUpload(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, dbtest.SQLite(t))
	u, err := e.tr.CreateUpload(ctx, e.admin, "/log.txt", -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.tr.WriteUpload(ctx, e.admin, u.ID, 0, &cutReader{strings.NewReader("first half, "), io.ErrUnexpectedEOF}, nil)
	if _, _, err := e.tr.WriteUpload(ctx, e.admin, u.ID, 12, strings.NewReader("second half"), nil); err != nil {
		t.Fatal(err)
	}
	f, err := e.tr.CompleteUpload(ctx, e.admin, u.ID)
	if err != nil || f.Size != 23 || f.Parts != 2 {
		t.Fatalf("complete: %+v %v", f, err)
	}
	if got := string(e.readAll(t, e.admin, "/log.txt")); got != "first half, second half" {
		t.Fatalf("content %q", got)
	}
}

// TestTokenScope: a read-scoped token reads what its user may read and
// writes nothing, even where the user may write.
func TestTokenScope(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, dbtest.SQLite(t))
	alice := e.user(t, "alice@acme.test", ferry.RoleUser)
	e.grant(t, "/in", alice, ferry.PermAll)
	if _, err := e.tr.Put(ctx, alice, "/in/a.txt", strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	ro := *alice
	ro.Scope, ro.TokenID = ferry.ScopeRead, "0123456789abcdef"
	if got := string(e.readAll(t, &ro, "/in/a.txt")); got != "hello" {
		t.Fatalf("read with a read token: %q", got)
	}
	if _, err := e.tr.Put(ctx, &ro, "/in/b.txt", strings.NewReader("x")); ferry.KindOf(err) != ferry.Permission || !strings.Contains(err.Error(), "scope") {
		t.Fatalf("write with a read token: %v", err)
	}
	if err := e.tr.Delete(ctx, &ro, "/in/a.txt"); ferry.KindOf(err) != ferry.Permission {
		t.Fatalf("delete with a read token: %v", err)
	}
	if _, err := e.tr.CreateUpload(ctx, &ro, "/in/c.txt", 1, nil); ferry.KindOf(err) != ferry.Permission {
		t.Fatalf("upload with a read token: %v", err)
	}
	wo := *alice
	wo.Scope = ferry.ScopeWrite
	if _, err := e.tr.Open(ctx, &wo, "/in/a.txt"); ferry.KindOf(err) != ferry.Permission {
		t.Fatalf("read with a write-only token: %v", err)
	}
}
