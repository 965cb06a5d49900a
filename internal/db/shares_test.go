package db_test

import (
	"bytes"
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
)

func shareFixture(t *testing.T, d *db.DB) (*ferry.Org, *ferry.User, *ferry.Folder, time.Time) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	org := &ferry.Org{ID: ferry.NewID(nil), Name: "acme", RetentionDays: 30, Created: now}
	root := ferry.NewID(nil)
	if err := d.CreateOrg(ctx, org, root); err != nil {
		t.Fatal(err)
	}
	u := &ferry.User{ID: ferry.NewID(nil), OrgID: org.ID, Email: "alice@acme.test", Role: ferry.RoleUser, Created: now}
	if err := d.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	fo := &ferry.Folder{ID: ferry.NewID(nil), OrgID: org.ID, ParentID: root, Name: "docs", Path: "/docs", Created: now}
	if err := d.CreateFolder(ctx, fo); err != nil {
		t.Fatal(err)
	}
	return org, u, fo, now
}

func TestShares(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		org, u, fo, now := shareFixture(t, d)
		sh := &ferry.Share{ID: ferry.NewID(nil), OrgID: org.ID, UserID: u.ID, Path: "/docs/a.txt", FolderID: fo.ID, Name: "a.txt",
			TokenHash: bytes.Repeat([]byte{1}, 32), PasswordHash: "$argon2id$x", MaxDownloads: 3,
			AllowedIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")},
			Created:    now, Expires: now.Add(time.Hour)}
		if err := d.CreateShare(ctx, sh); err != nil {
			t.Fatal(err)
		}
		dup := *sh
		dup.ID = ferry.NewID(nil)
		if err := d.CreateShare(ctx, &dup); ferry.KindOf(err) != ferry.Exist {
			t.Fatalf("same token twice: %v", err)
		}
		got, err := d.ShareByTokenHash(ctx, sh.TokenHash)
		if err != nil || got.ID != sh.ID || got.Email != u.Email || got.Folder || got.Name != "a.txt" || len(got.AllowedIPs) != 2 ||
			got.AllowedIPs[1].String() != "2001:db8::/32" || !got.Expires.Equal(sh.Expires) || got.PasswordHash != sh.PasswordHash || got.MaxDownloads != 3 {
			t.Fatalf("ShareByTokenHash = %+v %v", got, err)
		}
		if _, err := d.ShareByTokenHash(ctx, bytes.Repeat([]byte{2}, 32)); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("unknown token: %v", err)
		}

		// Downloads: concurrent counting never passes the limit.
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for i := 0; i < 10; i++ {
			wg.Go(func() {
				if err := d.CountShareDownload(ctx, sh.ID, now); err == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				} else if ferry.KindOf(err) != ferry.NotExist {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if ok != 3 {
			t.Fatalf("%d downloads counted, want 3", ok)
		}
		if got, _ := d.ShareByID(ctx, sh.ID); got.Downloads != 3 || !got.Exhausted() {
			t.Fatalf("after the limit: %+v", got)
		}

		// An unlimited link stops counting once expired or revoked.
		free := &ferry.Share{ID: ferry.NewID(nil), OrgID: org.ID, UserID: u.ID, Path: "/docs", FolderID: fo.ID, Folder: true, DropBox: true,
			TokenHash: bytes.Repeat([]byte{3}, 32), Created: now, Expires: now.Add(time.Hour)}
		if err := d.CreateShare(ctx, free); err != nil {
			t.Fatal(err)
		}
		if err := d.CountShareDownload(ctx, free.ID, now); err != nil {
			t.Fatal(err)
		}
		if err := d.CountShareDownload(ctx, free.ID, now.Add(2*time.Hour)); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("expired link counted: %v", err)
		}

		// Uses and notices.
		if err := d.RecordShareUse(ctx, ferry.NewID(nil), sh.ID, "download", "/docs/a.txt", "192.0.2.7", now); err != nil {
			t.Fatal(err)
		}
		if got, _ := d.ShareByID(ctx, sh.ID); got.Uses != 1 || !got.LastUsed.Equal(now) {
			t.Fatalf("uses: %+v", got)
		}
		if ok, err := d.ClaimShareNotice(ctx, sh.ID, now, now.Add(-time.Hour)); !ok || err != nil {
			t.Fatalf("first notice: %v %v", ok, err)
		}
		if ok, _ := d.ClaimShareNotice(ctx, sh.ID, now.Add(time.Minute), now.Add(-59*time.Minute)); ok {
			t.Fatal("second notice within the hour claimed")
		}
		if ok, _ := d.ClaimShareNotice(ctx, sh.ID, now.Add(61*time.Minute), now.Add(time.Minute)); !ok {
			t.Fatal("notice after the hour not claimed")
		}

		// Visits.
		vh := bytes.Repeat([]byte{9}, 32)
		if err := d.CreateShareVisit(ctx, vh, sh.ID, now, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if ok, err := d.ShareVisitValid(ctx, vh, sh.ID, now); !ok || err != nil {
			t.Fatalf("visit: %v %v", ok, err)
		}
		if ok, _ := d.ShareVisitValid(ctx, vh, free.ID, now); ok {
			t.Fatal("a visit of one link opened another")
		}
		if err := d.DeleteExpiredShareVisits(ctx, now.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if ok, _ := d.ShareVisitValid(ctx, vh, sh.ID, now); ok {
			t.Fatal("expired visit survived")
		}

		// Listings and revocation.
		if l, err := d.SharesOfUser(ctx, u.ID, now); err != nil || len(l) != 2 {
			t.Fatalf("SharesOfUser = %d %v", len(l), err)
		}
		if err := d.RevokeShare(ctx, sh.ID); err != nil {
			t.Fatal(err)
		}
		if err := d.RevokeShare(ctx, sh.ID); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("revoking twice: %v", err)
		}
		if l, _ := d.SharesOfOrg(ctx, org.ID, now); len(l) != 1 || l[0].ID != free.ID {
			t.Fatalf("SharesOfOrg after revoking: %v", l)
		}
		if l, _ := d.SharesOfOrg(ctx, org.ID, now.Add(2*time.Hour)); len(l) != 0 {
			t.Fatalf("expired links listed: %v", l)
		}
	})
}

func TestWatches(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		org, u, fo, now := shareFixture(t, d)
		w := &ferry.Watch{ID: ferry.NewID(nil), OrgID: org.ID, UserID: u.ID, FolderID: fo.ID, Created: now}
		if err := d.CreateWatch(ctx, w); err != nil {
			t.Fatal(err)
		}
		again := *w
		again.ID = ferry.NewID(nil)
		if err := d.CreateWatch(ctx, &again); ferry.KindOf(err) != ferry.Exist {
			t.Fatalf("watching twice: %v", err)
		}
		if l, err := d.WatchesOfFolder(ctx, fo.ID); err != nil || len(l) != 1 || l[0].Path != "/docs" {
			t.Fatalf("WatchesOfFolder = %v %v", l, err)
		}
		if got, err := d.WatchOf(ctx, u.ID, fo.ID); err != nil || got.ID != w.ID {
			t.Fatalf("WatchOf = %v %v", got, err)
		}
		// Nothing pending: nothing to take.
		if names, err := d.TakeWatchEvents(ctx, w.ID, now, now); err != nil || len(names) != 0 {
			t.Fatalf("empty take: %v %v", names, err)
		}
		for i, n := range []string{"a.txt", "b.txt"} {
			if err := d.AddWatchEvent(ctx, ferry.NewID(nil), w.ID, n, now.Add(time.Duration(i)*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		if due, err := d.WatchesDue(ctx, now); err != nil || len(due) != 1 {
			t.Fatalf("WatchesDue = %v %v", due, err)
		}
		names, err := d.TakeWatchEvents(ctx, w.ID, now, now.Add(-10*time.Minute))
		if err != nil || len(names) != 2 || names[0] != "a.txt" {
			t.Fatalf("take: %v %v", names, err)
		}
		// Within the window the next file waits.
		d.AddWatchEvent(ctx, ferry.NewID(nil), w.ID, "c.txt", now.Add(time.Minute))
		if names, _ := d.TakeWatchEvents(ctx, w.ID, now.Add(time.Minute), now.Add(-9*time.Minute)); len(names) != 0 {
			t.Fatalf("taken within the window: %v", names)
		}
		if due, _ := d.WatchesDue(ctx, now.Add(-time.Second)); len(due) != 0 {
			t.Fatalf("due within the window: %v", due)
		}
		if names, _ := d.TakeWatchEvents(ctx, w.ID, now.Add(11*time.Minute), now.Add(time.Minute)); len(names) != 1 || names[0] != "c.txt" {
			t.Fatalf("after the window: %v", names)
		}
		if err := d.DeleteWatch(ctx, w.ID); err != nil {
			t.Fatal(err)
		}
		if l, _ := d.WatchesOfUser(ctx, u.ID); len(l) != 0 {
			t.Fatalf("after delete: %v", l)
		}
	})
}
