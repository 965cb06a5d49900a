package sftpd_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/pkg/sftp"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/ferry"
)

// code returns the SFTP status code of a client error (0 for nil).
func code(err error) uint32 {
	var se *sftp.StatusError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &se):
		return se.Code
	case errors.Is(err, os.ErrNotExist):
		return 2
	case errors.Is(err, os.ErrPermission):
		return 3
	case errors.Is(err, io.EOF):
		return 1
	}
	return 99
}

const (
	fxEOF         = 1
	fxNoSuchFile  = 2
	fxPermission  = 3
	fxFailure     = 4
	fxUnsupported = 8
)

func mustPut(t testing.TB, e *env, path, content string) {
	t.Helper()
	if _, err := e.tr.Put(context.Background(), e.admin, path, strings.NewReader(content)); err != nil {
		t.Fatal(err)
	}
}

func content(t *testing.T, e *env, path string) string {
	t.Helper()
	ctx := context.Background()
	dl, err := e.tr.Open(ctx, e.admin, path)
	if err != nil {
		return "<" + ferry.KindOf(err).String() + ">"
	}
	rc, err := dl.Read(ctx, 0, dl.File.Size)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

// TestUploadReordersWrites: writes sent out of order (after a first one at
// offset 0) are put back in order in memory; the file appears only at close.
func TestUploadReordersWrites(t *testing.T) {
	e := newEnv(t)
	c, _ := e.pipeSession(t, e.admin)
	data := bytes.Repeat([]byte("0123456789abcdef"), 3*65536/16+100)
	f, err := c.OpenFile("/ooo.bin", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int{0, 131072, 65536, 196608} {
		end := min(off+65536, len(data))
		if _, err := f.WriteAt(data[off:end], int64(off)); err != nil {
			t.Fatalf("write at %d: %v", off, err)
		}
	}
	if got := content(t, e, "/ooo.bin"); got != "<not_exist>" {
		t.Fatalf("file visible before close: %q", got[:min(len(got), 20)])
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := content(t, e, "/ooo.bin"); got != string(data) {
		t.Fatalf("content differs (%d bytes, want %d)", len(got), len(data))
	}
}

// TestUploadFailuresKeepTheOldVersion: a gap at close, a resume attempt
// with nothing to resume, an append, or a write far ahead fail with a clear
// status, and the previous version stays.
func TestUploadFailuresKeepTheOldVersion(t *testing.T) {
	e := newEnv(t)
	c, _ := e.pipeSession(t, e.admin)
	mustPut(t, e, "/f.txt", "old version")

	t.Run("nothing to resume", func(t *testing.T) {
		f, err := c.OpenFile("/f.txt", os.O_WRONLY|os.O_CREATE)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt([]byte(" and more"), 11)
		if err := f.Close(); code(err) != fxUnsupported || !strings.Contains(err.Error(), "nothing to resume at offset 11") {
			t.Fatalf("close after a resume attempt: %v", err)
		}
	})
	t.Run("append with nothing to resume", func(t *testing.T) {
		f, err := c.OpenFile("/f.txt", os.O_WRONLY|os.O_APPEND)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt([]byte(" and more"), 11)
		if err := f.Close(); code(err) != fxUnsupported {
			t.Fatalf("close after an append: %v", err)
		}
	})
	t.Run("open without truncate, no writes", func(t *testing.T) {
		f, err := c.OpenFile("/f.txt", os.O_WRONLY|os.O_CREATE)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("gap at close", func(t *testing.T) {
		f, err := c.OpenFile("/f.txt", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt([]byte("x"), 0)
		f.WriteAt([]byte("z"), 2)
		if err := f.Close(); code(err) != fxFailure || !strings.Contains(err.Error(), "without gaps") {
			t.Fatalf("close with a gap: %v", err)
		}
	})
	t.Run("far ahead", func(t *testing.T) {
		f, err := c.OpenFile("/f.txt", os.O_WRONLY|os.O_TRUNC)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt([]byte("a"), 0)
		if _, err := f.WriteAt([]byte("x"), 1<<30); code(err) != fxFailure || !strings.Contains(err.Error(), "too far ahead") {
			t.Fatalf("write 1 GiB ahead: %v", err)
		}
		if err := f.Close(); code(err) != fxFailure {
			t.Fatalf("close: %v", err)
		}
	})
	t.Run("overlap", func(t *testing.T) {
		f, err := c.OpenFile("/f.txt", os.O_WRONLY|os.O_TRUNC)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt([]byte("abc"), 0)
		if _, err := f.WriteAt([]byte("b"), 1); code(err) != fxFailure {
			t.Fatalf("overlapping write: %v", err)
		}
		f.Close()
	})
	t.Run("read on a write handle", func(t *testing.T) {
		f, err := c.OpenFile("/f.txt", os.O_WRONLY|os.O_TRUNC)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.ReadAt(make([]byte, 10), 0); code(err) != fxPermission {
			t.Fatalf("read on a write handle: %v", err)
		}
		f.WriteAt([]byte("?"), 0)
		f.WriteAt([]byte("?"), 5) // leave a gap so that nothing is committed
		f.Close()
	})
	if got := content(t, e, "/f.txt"); got != "old version" {
		t.Fatalf("after failed uploads the file holds %q", got)
	}
	// The last failure left an unfinished upload of 1 byte, which stat
	// shows; the sessions that had nothing to resume left none.
	if ups, err := e.tr.Uploads(context.Background(), e.admin, "/f.txt"); err != nil || len(ups) != 1 || ups[0].Received != 1 {
		t.Fatalf("unfinished uploads: %v", err)
	}
	// The session survived all of that.
	if _, err := c.Stat("/f.txt"); err != nil {
		t.Fatal(err)
	}
}

// TestStatusCodes maps Ferry's errors to SFTP statuses and keeps paths inside
// the organisation.
func TestStatusCodes(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	for _, p := range []string{"/in", "/out", "/secret"} {
		if _, err := e.tr.CreateFolder(ctx, e.admin, p, ""); err != nil {
			t.Fatal(err)
		}
	}
	mustPut(t, e, "/in/a.txt", "a")
	mustPut(t, e, "/out/b.txt", "b")
	mustPut(t, e, "/secret/s.txt", "s")
	u := e.user(t, "u@acme.test", "correct horse battery", ferry.RoleUser)
	in, _ := e.d.FolderByPath(ctx, e.org.ID, "/in")
	out, _ := e.d.FolderByPath(ctx, e.org.ID, "/out")
	e.d.SetGrant(ctx, ferry.Grant{FolderID: in.ID, UserID: u.ID, Perms: ferry.PermList | ferry.PermRead | ferry.PermWrite | ferry.PermDelete})
	e.d.SetGrant(ctx, ferry.Grant{FolderID: out.ID, UserID: u.ID, Perms: ferry.PermList | ferry.PermRead})
	p := &ferry.Principal{UserID: u.ID, Email: u.Email, OrgID: e.org.ID, Role: ferry.RoleUser, Remote: "test", Protocol: "sftp"}
	c, _ := e.pipeSession(t, p)

	// The root shows only what the user may see.
	infos, err := c.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, fi := range infos {
		names = append(names, fi.Name())
	}
	if strings.Join(names, ",") != "in,out" {
		t.Fatalf("root lists %v", names)
	}
	create := func(path string) error {
		f, err := c.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			return err
		}
		f.Write([]byte("x"))
		return f.Close()
	}
	for _, tc := range []struct {
		name string
		err  error
		want uint32
	}{
		{"write without grant", create("/out/new.txt"), fxPermission},
		{"write to an invisible folder", create("/secret/new.txt"), fxNoSuchFile},
		{"write escaping the root", create("/../../secret/x.txt"), fxNoSuchFile},
		{"read an invisible file", func() error { _, err := c.Open("/secret/s.txt"); return err }(), fxNoSuchFile},
		{"list an invisible folder", func() error { _, err := c.ReadDir("/secret"); return err }(), fxNoSuchFile},
		{"stat a missing file", func() error { _, err := c.Stat("/in/nope"); return err }(), fxNoSuchFile},
		{"delete without grant", c.Remove("/out/b.txt"), fxPermission},
		{"mkdir that exists", c.Mkdir("/in"), fxPermission}, // needs write on "/"
		{"rename onto an existing file", c.Rename("/in/a.txt", "/out/b.txt"), fxPermission},
		{"NUL in a name", create("/in/a\x00b"), fxFailure},
		{"overlong name", create("/in/" + strings.Repeat("n", 300)), fxFailure},
		{"rmdir a file", c.RemoveDirectory("/in/a.txt"), fxFailure},
		{"symlink", c.Symlink("/in/a.txt", "/in/l"), fxUnsupported},
		{"setstat", c.Chmod("/in/a.txt", 0o600), 0},
		{"write granted", create("/in/new.txt"), 0},
		{"posix-rename", c.PosixRename("/in/new.txt", "/in/renamed.txt"), 0},
		{"mkdir granted", c.Mkdir("/in/sub"), 0},
		{"posix-rename onto a file without delete there", c.PosixRename("/in/renamed.txt", "/out/b.txt"), fxPermission},
		{"posix-rename onto a folder", c.PosixRename("/in/renamed.txt", "/in/sub"), fxFailure},
		{"posix-rename onto an existing file", c.PosixRename("/in/renamed.txt", "/in/a.txt"), 0},
	} {
		if got := code(tc.err); got != tc.want {
			t.Errorf("%s: status %d (%v), want %d", tc.name, got, tc.err, tc.want)
		}
	}
	for in, want := range map[string]string{"/..": "/", "../../in/../out": "/out", ".": "/", "in/./a.txt": "/in/a.txt"} {
		if got, err := c.RealPath(in); err != nil || got != want {
			t.Errorf("realpath %q = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := c.RealPath("/in/a\x00b"); code(err) != fxFailure {
		t.Errorf("realpath with NUL: %v", err)
	}
	vfs, err := c.StatVFS("/")
	if err != nil || vfs.FreeSpace() < 1<<50 {
		t.Errorf("statvfs: %+v, %v", vfs, err)
	}
	// Nothing was written outside /in, and the denials were audited.
	if got := content(t, e, "/secret/s.txt"); got != "s" {
		t.Fatalf("secret file: %q", got)
	}
	denied := 0
	audit.Query(ctx, e.d, audit.Filter{Actor: "u@acme.test"}, func(ev *ferry.Event) error {
		if ev.Outcome == ferry.OutcomeDenied {
			denied++
		}
		if ev.Protocol != "sftp" {
			t.Errorf("event without protocol sftp: %+v", ev)
		}
		return nil
	})
	if denied < 5 {
		t.Fatalf("%d denials audited", denied)
	}
}

// TestDownloadAuditsRanges: a download is one audited read, a resumed one a
// read from its offset.
func TestDownloadAuditsRanges(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	data := bytes.Repeat([]byte("ferry!"), 200000)
	mustPut(t, e, "/d.bin", string(data))
	c, _ := e.pipeSession(t, e.admin, sftp.UseConcurrentReads(true))
	f, err := c.Open("/d.bin")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := f.WriteTo(&buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("download: %v, %d bytes", err, buf.Len())
	}
	f.Close()
	f, _ = c.Open("/d.bin")
	f.Seek(1000000, io.SeekStart)
	rest, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(rest, data[1000000:]) {
		t.Fatalf("resumed download: %v", err)
	}
	f.Close()
	var reads []string
	audit.Query(ctx, e.d, audit.Filter{Action: "file.read"}, func(ev *ferry.Event) error {
		reads = append(reads, strings.Join([]string{string(ev.Outcome), itoa(ev.Offset), itoa(ev.Bytes)}, " "))
		return nil
	})
	if want := "ok 0 1200000,ok 1000000 200000"; strings.Join(reads, ",") != want {
		t.Fatalf("reads audited: %v, want %s", reads, want)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// pending returns the admin's unfinished upload to path, or nil.
func pending(t *testing.T, e *env, path string) *ferry.Upload {
	t.Helper()
	ups, err := e.tr.Uploads(context.Background(), e.admin, path)
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) > 1 {
		t.Fatalf("%d unfinished uploads to %s", len(ups), path)
	}
	if len(ups) == 0 {
		return nil
	}
	return ups[0]
}

// TestUploadResume: a session that drops mid-upload leaves the bytes that
// arrived in order as an unfinished upload, which stat shows as the file's
// size while the old version stays whole; an open without truncate (or with
// append) continues it from there, and the close completes it. An open with
// truncate starts again; rm abandons it.
func TestUploadResume(t *testing.T) {
	for _, flags := range []int{os.O_WRONLY | os.O_CREATE, os.O_WRONLY | os.O_APPEND} {
		e := newEnv(t)
		mustPut(t, e, "/r.bin", "old version")
		data := bytes.Repeat([]byte("resumable "), 100000)
		half := 300000
		c, done := e.pipeSession(t, e.admin)
		f, err := c.OpenFile("/r.bin", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(data[:half], 0); err != nil {
			t.Fatal(err)
		}
		c.Close() // the connection drops with the handle open
		<-done
		u := pending(t, e, "/r.bin")
		if u == nil || u.Received != int64(half) {
			t.Fatalf("unfinished upload %+v", u)
		}
		if got := content(t, e, "/r.bin"); got != "old version" {
			t.Fatalf("after the drop the file holds %d bytes", len(got))
		}
		c, _ = e.pipeSession(t, e.admin)
		if fi, err := c.Stat("/r.bin"); err != nil || fi.Size() != int64(half) {
			t.Fatalf("stat: %v, %v", fi, err)
		}
		f, err = c.OpenFile("/r.bin", flags)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(data[half:], int64(half)); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if got := content(t, e, "/r.bin"); got != string(data) {
			t.Fatalf("resumed upload: %d bytes, want %d", len(got), len(data))
		}
		if u := pending(t, e, "/r.bin"); u != nil {
			t.Fatalf("upload left after completion: %+v", u)
		}
		if fi, err := c.Stat("/r.bin"); err != nil || fi.Size() != int64(len(data)) {
			t.Fatalf("stat: %v, %v", fi, err)
		}
		var offsets []string
		audit.Query(context.Background(), e.d, audit.Filter{Action: "upload.write"}, func(ev *ferry.Event) error {
			offsets = append(offsets, itoa(ev.Offset)+"+"+itoa(ev.Bytes))
			return nil
		})
		if want := "0+300000,300000+700000"; strings.Join(offsets, ",") != want {
			t.Fatalf("writes audited: %v, want %s", offsets, want)
		}
	}

	t.Run("truncate starts again, rm abandons", func(t *testing.T) {
		e := newEnv(t)
		c, done := e.pipeSession(t, e.admin)
		f, _ := c.OpenFile("/n.bin", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		f.WriteAt([]byte("first attempt"), 0)
		c.Close()
		<-done
		c, done = e.pipeSession(t, e.admin)
		if fi, err := c.Stat("/n.bin"); err != nil || fi.Size() != 13 {
			t.Fatalf("stat of an unfinished upload: %v, %v", fi, err)
		}
		f, err := c.OpenFile("/n.bin", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			t.Fatal(err)
		}
		if u := pending(t, e, "/n.bin"); u == nil || u.Received != 0 {
			t.Fatalf("after an open with truncate: %+v", u)
		}
		f.WriteAt([]byte("second"), 0)
		c.Close()
		<-done
		c, _ = e.pipeSession(t, e.admin)
		if err := c.Remove("/n.bin"); err != nil {
			t.Fatal(err)
		}
		if u := pending(t, e, "/n.bin"); u != nil {
			t.Fatalf("rm left %+v", u)
		}
		if _, err := c.Stat("/n.bin"); code(err) != fxNoSuchFile {
			t.Fatalf("stat after rm: %v", err)
		}
	})
}
