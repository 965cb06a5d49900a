package sftpd_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"ferry.dev/ferry/internal/ferry"
)

const pathSecret = "SFTP-PATH-FUZZ-SECRET"

// FuzzSFTPPaths (issue 9, path traversal over SFTP): whatever path a user
// with a grant on /in sends — "..", encoded dots, NUL, backslashes,
// doubled slashes, overlong names — Open, Stat, ReadDir, Rename, Mkdir and
// Remove never reach /secret: no read returns its content, no listing names
// its file, and it is still there, unchanged, afterwards. The seed corpus
// runs in every test run; go test -fuzz=FuzzSFTPPaths explores further.
func FuzzSFTPPaths(f *testing.F) {
	for _, s := range []string{
		"../secret/s.txt", "/in/../secret/s.txt", "/secret/s.txt", "secret/s.txt", "/in/./../secret",
		"/in/%2e%2e/secret/s.txt", "/in/..%2fsecret/s.txt", `/in\..\secret\s.txt`, "//secret//s.txt",
		"/in/\x00/../secret/s.txt", "/in/a.txt\x00/../../secret/s.txt", "/./secret/./s.txt", "/in/../../../../secret",
		"/" + strings.Repeat("a", 300), "/in/" + strings.Repeat("../", 64) + "secret/s.txt", "~/../secret", ".", "..", "/",
	} {
		f.Add(s)
	}
	ctx := context.Background()
	e := newEnv(f)
	for _, p := range []string{"/in", "/secret"} {
		if _, err := e.tr.CreateFolder(ctx, e.admin, p, ""); err != nil {
			f.Fatal(err)
		}
	}
	mustPut(f, e, "/in/a.txt", "a")
	mustPut(f, e, "/secret/s.txt", pathSecret)
	u := e.user(f, "u@acme.test", "correct horse battery", ferry.RoleUser)
	in, _ := e.d.FolderByPath(ctx, e.org.ID, "/in")
	e.d.SetGrant(ctx, ferry.Grant{FolderID: in.ID, UserID: u.ID, Perms: ferry.PermList | ferry.PermRead | ferry.PermWrite | ferry.PermDelete})
	p := &ferry.Principal{UserID: u.ID, Email: u.Email, OrgID: e.org.ID, Role: ferry.RoleUser, Remote: "test", Protocol: "sftp"}
	c, _ := e.pipeSession(f, p)

	f.Fuzz(func(t *testing.T, path string) {
		if r, err := c.Open(path); err == nil {
			b, _ := io.ReadAll(io.LimitReader(r, 1<<20))
			r.Close()
			if strings.Contains(string(b), pathSecret) {
				t.Fatalf("Open(%q) read /secret/s.txt", path)
			}
		}
		if infos, err := c.ReadDir(path); err == nil {
			for _, fi := range infos {
				if fi.Name() == "s.txt" {
					t.Fatalf("ReadDir(%q) listed /secret", path)
				}
			}
		}
		if fi, err := c.Stat(path); err == nil && fi.Name() == "s.txt" {
			t.Fatalf("Stat(%q) reached /secret/s.txt", path)
		}
		// Writes aimed at the path: a rename away from it, a folder made
		// there, a removal. None may touch /secret.
		c.Rename(path, "/in/moved-away")
		c.Mkdir(path)
		c.Remove(path)
		c.Rename("/in/moved-away", "/in/a.txt")

		d, err := e.tr.Open(ctx, e.admin, "/secret/s.txt")
		if err != nil {
			t.Fatalf("after %q: /secret/s.txt is gone: %v", path, err)
		}
		rc, err := d.Read(ctx, 0, d.File.Size)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != pathSecret {
			t.Fatalf("after %q: /secret/s.txt changed to %q", path, b)
		}
		if fs, _ := e.tr.List(ctx, e.admin, "/secret"); len(fs) != 1 {
			t.Fatalf("after %q: /secret holds %d entries", path, len(fs))
		}
	})
}
