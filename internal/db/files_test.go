package db_test

import (
	"context"
	"testing"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
)

func TestFoldersFilesGrants(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		org := &ferry.Org{ID: ferry.NewID(nil), Name: "acme", RetentionDays: 30, Created: now}
		rootID := ferry.NewID(nil)
		if err := d.CreateOrg(ctx, org, rootID); err != nil {
			t.Fatal(err)
		}
		mk := func(parent *ferry.Folder, name, path string) *ferry.Folder {
			t.Helper()
			f := &ferry.Folder{ID: ferry.NewID(nil), OrgID: org.ID, ParentID: parent.ID, Name: name, Path: path, Created: now}
			if err := d.CreateFolder(ctx, f); err != nil {
				t.Fatalf("CreateFolder %s: %v", path, err)
			}
			return f
		}
		root, err := d.FolderByPath(ctx, org.ID, "/")
		if err != nil || root.ID != rootID {
			t.Fatalf("root: %+v %v", root, err)
		}
		fin := mk(root, "finance", "/finance")
		y := mk(fin, "2026", "/finance/2026")
		mk(y, "q1", "/finance/2026/q1")
		if err := d.CreateFolder(ctx, &ferry.Folder{ID: ferry.NewID(nil), OrgID: org.ID, ParentID: root.ID, Name: "finance", Path: "/finance", Created: now}); ferry.KindOf(err) != ferry.Exist {
			t.Fatalf("duplicate folder: %v", err)
		}
		u := &ferry.User{ID: ferry.NewID(nil), OrgID: org.ID, Email: "u@acme.test", Role: ferry.RoleUser, Created: now}
		if err := d.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := d.SetGrant(ctx, ferry.Grant{FolderID: fin.ID, UserID: u.ID, Perms: ferry.PermList}); err != nil {
			t.Fatal(err)
		}
		if err := d.SetGrant(ctx, ferry.Grant{FolderID: fin.ID, UserID: u.ID, Perms: ferry.PermList | ferry.PermRead}); err != nil {
			t.Fatal(err)
		}
		gs, err := d.GrantsForUser(ctx, u.ID)
		if err != nil || len(gs) != 1 || gs[0].Path != "/finance" || gs[0].Perms != ferry.PermList|ferry.PermRead {
			t.Fatalf("grants = %+v, %v", gs, err)
		}

		file := func(name, blob string) *ferry.File {
			return &ferry.File{ID: ferry.NewID(nil), OrgID: org.ID, FolderID: y.ID, Name: name, Size: 3, SHA256: []byte{9}, BlobID: blob,
				WrappedKey: []byte{1}, KEKID: "k", UploaderID: u.ID, Created: now, Modified: now, Expires: now.Add(time.Hour)}
		}
		f1 := file("a.txt", "b1")
		if old, _, err := d.PutFile(ctx, f1, y.Path); err != nil || old != nil {
			t.Fatalf("PutFile: %v %v", old, err)
		}
		f2 := file("a.txt", "b2")
		old, blobs, err := d.PutFile(ctx, f2, y.Path)
		if err != nil || old == nil || old.BlobID != "b1" || len(blobs) != 1 || blobs[0] != "b1" {
			t.Fatalf("replace: %+v %v %v", old, blobs, err)
		}
		if _, _, err := d.PutFile(ctx, file("q1", "b3"), y.Path); ferry.KindOf(err) != ferry.Exist {
			t.Fatalf("file over folder: %v", err)
		}
		got, err := d.FileByName(ctx, y.ID, "a.txt")
		if err != nil || got.BlobID != "b2" || got.Path != "/finance/2026/a.txt" {
			t.Fatalf("FileByName = %+v %v", got, err)
		}
		// Move the year folder: paths below it follow.
		if err := d.MoveFolder(ctx, y, root.ID, "archive", "/archive"); err != nil {
			t.Fatal(err)
		}
		if _, err := d.FolderByPath(ctx, org.ID, "/archive/q1"); err != nil {
			t.Fatalf("descendant path not rewritten: %v", err)
		}
		if _, err := d.FolderByPath(ctx, org.ID, "/finance/2026"); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("old path still there: %v", err)
		}
		got, _ = d.FileByID(ctx, f2.ID)
		if got.Path != "/archive/a.txt" {
			t.Fatalf("file path after folder move = %q", got.Path)
		}
		if err := d.MoveFile(ctx, f2.ID, root.ID, "b.txt", now); err != nil {
			t.Fatal(err)
		}
		if err := d.DeleteFolder(ctx, fin.ID); err != nil {
			t.Fatalf("delete empty folder: %v", err)
		}
		if err := d.DeleteFolder(ctx, root.ID); ferry.KindOf(err) != ferry.Exist && ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("delete root: %v", err)
		}
		exp, err := d.ExpiredFiles(ctx, now.Add(2*time.Hour), 10)
		if err != nil || len(exp) != 1 {
			t.Fatalf("expired = %v %v", exp, err)
		}
		if err := d.SetHold(ctx, f2.ID, true); err != nil {
			t.Fatal(err)
		}
		if exp, _ := d.ExpiredFiles(ctx, now.Add(2*time.Hour), 10); len(exp) != 0 {
			t.Fatalf("held file listed as expired")
		}
		if blobs, err := d.DeleteFile(ctx, f2); err != nil || len(blobs) != 1 || blobs[0] != "b2" {
			t.Fatal(blobs, err)
		}
		if _, err := d.DeleteFile(ctx, f2); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("second delete: %v", err)
		}
		if _, err := d.FileByID(ctx, f2.ID); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("deleted file: %v", err)
		}
	})
}
