package transfer_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/mail"
)

// TestWatchBatching: a watcher gets one mail for the first new file, the
// files arriving within the window together in the next, none for their own
// uploads, and none once they may no longer see the folder.
func TestWatchBatching(t *testing.T) {
	ctx := context.Background()
	d := dbtest.SQLite(t)
	e := newEnv(t, d)
	ob, err := mail.New(mail.Config{DB: d, Now: e.clk.now, PublicURL: "https://ferry.example", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e.tr.SetMail(ob)
	e.tr.SetWatchBatch(10 * time.Minute)
	if _, err := e.tr.CreateFolder(ctx, e.admin, "/team", ""); err != nil {
		t.Fatal(err)
	}
	fo, _ := d.FolderByPath(ctx, e.org.ID, "/team")
	user := func(email string, perms ferry.Perm) *ferry.Principal {
		u := &ferry.User{ID: ferry.NewID(nil), OrgID: e.org.ID, Email: email, Role: ferry.RoleUser}
		if err := d.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		d.SetGrant(ctx, ferry.Grant{FolderID: fo.ID, UserID: u.ID, Perms: perms})
		return &ferry.Principal{UserID: u.ID, Email: email, OrgID: e.org.ID, Role: ferry.RoleUser, Remote: "test"}
	}
	alice := user("alice@acme.test", ferry.PermList|ferry.PermRead|ferry.PermWrite)
	bob := user("bob@acme.test", ferry.PermWrite)
	if _, err := e.tr.Watch(ctx, bob, "/team"); ferry.KindOf(err) != ferry.Permission {
		t.Fatalf("watching without list or read: %v", err)
	}
	w, err := e.tr.Watch(ctx, alice, "/team")
	if err != nil {
		t.Fatal(err)
	}
	put := func(p *ferry.Principal, name string) {
		t.Helper()
		if _, err := e.tr.Put(ctx, p, "/team/"+name, bytes.NewReader([]byte(name))); err != nil {
			t.Fatal(err)
		}
	}
	mails := func() []string {
		t.Helper()
		rows, err := d.RecentMail(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range rows {
			if m.Kind == "watch_new_file" {
				full, _ := d.Mail(ctx, m.ID)
				out = append(out, strings.Join(full.Recipients, ",")+": "+full.Subject+"\n"+full.Text)
			}
		}
		return out
	}
	put(alice, "own.txt")
	if m := mails(); len(m) != 0 {
		t.Fatalf("mail for the watcher's own upload: %v", m)
	}
	put(bob, "first.txt")
	m := mails()
	if len(m) != 1 || !strings.Contains(m[0], "alice@acme.test: New files in /team") || !strings.Contains(m[0], "first.txt") ||
		!strings.Contains(m[0], "https://ferry.example/files/team") {
		t.Fatalf("first mail: %v", m)
	}
	put(bob, "second.txt")
	e.clk.add(5 * time.Minute)
	put(bob, "third.txt")
	if m := mails(); len(m) != 1 {
		t.Fatalf("%d mails within the window", len(m))
	}
	e.clk.add(6 * time.Minute)
	if err := e.tr.FlushWatches(ctx); err != nil {
		t.Fatal(err)
	}
	m = mails()
	if len(m) != 2 || !strings.Contains(m[0], "second.txt") || !strings.Contains(m[0], "third.txt") || strings.Contains(m[0], "first.txt") {
		t.Fatalf("batched mail: %v", m)
	}
	// Permission withdrawn: the next file is not announced.
	d.SetGrant(ctx, ferry.Grant{FolderID: fo.ID, UserID: alice.UserID, Perms: ferry.PermWrite})
	e.clk.add(11 * time.Minute)
	put(bob, "fourth.txt")
	if m := mails(); len(m) != 2 {
		t.Fatalf("mail after the permission went: %d", len(m))
	}
	if err := e.tr.Unwatch(ctx, bob, w.ID); ferry.KindOf(err) != ferry.NotExist {
		t.Fatalf("unwatch by another: %v", err)
	}
	if err := e.tr.Unwatch(ctx, alice, w.ID); err != nil {
		t.Fatal(err)
	}
}
