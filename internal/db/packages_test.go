package db_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
)

// TestPackages stores a package and exercises what must hold under
// concurrency on both engines: the download limit, single-use codes, the
// code's try limit, one send, one expiry notice.
func TestPackages(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		org := &ferry.Org{ID: ferry.NewID(nil), Name: "acme", RetentionDays: 30, Created: now}
		if err := d.CreateOrg(ctx, org, ferry.NewID(nil)); err != nil {
			t.Fatal(err)
		}
		u := &ferry.User{ID: ferry.NewID(nil), OrgID: org.ID, Email: "alice@acme.test", Role: ferry.RoleUser, Created: now}
		if err := d.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		root := &ferry.Folder{ID: ferry.NewID(nil), OrgID: org.ID, Name: ".ferry-packages", Path: "/.ferry-packages", Created: now}
		if err := d.CreateFolder(ctx, root); err != nil {
			t.Fatal(err)
		}
		p := &ferry.Package{ID: ferry.NewID(nil), OrgID: org.ID, SenderID: u.ID, Subject: "S", Status: ferry.PackageDraft, Expires: now.Add(time.Hour),
			MaxDownloads: 3, Notify: true, Created: now}
		fo := &ferry.Folder{ID: ferry.NewID(nil), OrgID: org.ID, ParentID: root.ID, Name: p.ID, Path: "/.ferry-packages/" + p.ID, Created: now}
		rf := &ferry.Folder{ID: ferry.NewID(nil), OrgID: org.ID, ParentID: fo.ID, Name: "reply", Path: fo.Path + "/reply", Created: now}
		p.FolderID, p.ReplyFolderID = fo.ID, rf.ID
		r := &ferry.PackageRecipient{ID: ferry.NewID(nil), PackageID: p.ID, Email: "bob@partner.test", TokenHash: []byte("draft-hash-0123456789abcdef01234"), Created: now}
		if err := d.CreatePackage(ctx, p, []*ferry.Folder{fo, rf}, []*ferry.PackageRecipient{r}); err != nil {
			t.Fatal(err)
		}
		got, err := d.PackageByID(ctx, p.ID)
		if err != nil || got.SenderEmail != "alice@acme.test" || !got.Notify || got.MaxDownloads != 3 || !got.Expires.Equal(p.Expires) {
			t.Fatalf("PackageByID: %+v, %v", got, err)
		}
		hash := []byte("sent-hash-0123456789abcdef0123456")
		if err := d.SendPackage(ctx, p.ID, now, p.Expires, map[string][]byte{r.ID: hash}); err != nil {
			t.Fatal(err)
		}
		if err := d.SendPackage(ctx, p.ID, now, p.Expires, nil); ferry.KindOf(err) != ferry.Conflict {
			t.Errorf("second send: %v", err)
		}
		if got, err := d.RecipientByTokenHash(ctx, hash); err != nil || got.ID != r.ID {
			t.Errorf("recipient by token: %v %v", got, err)
		}
		if recv, err := d.PackagesReceived(ctx, "", "bob@partner.test"); err != nil || len(recv) != 1 {
			t.Errorf("received: %v %v", recv, err)
		}
		if sent, err := d.PackagesBySender(ctx, u.ID); err != nil || len(sent) != 1 || sent[0].Status != ferry.PackageSent {
			t.Errorf("sent: %v %v", sent, err)
		}
		if err := d.MarkOpened(ctx, r.ID, now); err != nil {
			t.Fatal(err)
		}
		if err := d.MarkOpened(ctx, r.ID, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got, _ := d.RecipientByID(ctx, r.ID); !got.Opened.Equal(now) {
			t.Errorf("opened %v, want the first time %v", got.Opened, now)
		}
		rc := &ferry.PackageReceipt{ID: ferry.NewID(nil), PackageID: p.ID, RecipientID: r.ID, Email: r.Email, FileID: "file1", FileName: "a.txt", Bytes: 5, Remote: "192.0.2.1", Time: now}
		if err := d.AddReceipt(ctx, rc); err != nil {
			t.Fatal(err)
		}
		rp := &ferry.PackageReply{ID: ferry.NewID(nil), PackageID: p.ID, RecipientID: r.ID, Email: r.Email, FileID: "file2", Name: "b.txt", Size: 3, Created: now}
		if err := d.AddReply(ctx, rp); err != nil {
			t.Fatal(err)
		}
		if rs, err := d.ReceiptsOf(ctx, p.ID); err != nil || len(rs) != 1 || *rs[0] != *rc {
			t.Errorf("receipts: %+v %v", rs, err)
		}
		if rs, err := d.RepliesOf(ctx, p.ID); err != nil || len(rs) != 1 || *rs[0] != *rp {
			t.Errorf("replies: %+v %v", rs, err)
		}

		// Ten concurrent downloads with a limit of three: three succeed.
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				yes, err := d.CountDownload(ctx, r.ID, "file1", 3)
				if err != nil {
					t.Error(err)
				}
				if yes {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if ok != 3 {
			t.Errorf("%d downloads counted under a limit of 3", ok)
		}
		if n, _ := d.Downloads(ctx, r.ID); n["file1"] != 3 {
			t.Errorf("downloads: %v", n)
		}

		// Codes: a new one ends the old; tries use it up; a use is once.
		c1 := &db.GuestCode{ID: ferry.NewID(nil), RecipientID: r.ID, Hash: []byte("h1"), Expires: now.Add(10 * time.Minute), Created: now}
		if err := d.AddGuestCode(ctx, c1); err != nil {
			t.Fatal(err)
		}
		c2 := &db.GuestCode{ID: ferry.NewID(nil), RecipientID: r.ID, Hash: []byte("h2"), Expires: now.Add(10 * time.Minute), Created: now.Add(time.Second)}
		if err := d.AddGuestCode(ctx, c2); err != nil {
			t.Fatal(err)
		}
		if latest, err := d.LatestGuestCode(ctx, r.ID); err != nil || latest.ID != c2.ID {
			t.Fatalf("latest code: %v %v", latest, err)
		}
		if used, _ := d.UseGuestCode(ctx, c1.ID); used {
			t.Errorf("an older code still works after a new one was sent")
		}
		// Twenty guesses at once get exactly five tries between them.
		tries := 0
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if ok, _, err := d.TryGuestCode(ctx, c2.ID, 5); err != nil {
					t.Error(err)
				} else if ok {
					mu.Lock()
					tries++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if tries != 5 {
			t.Errorf("20 parallel guesses got %d tries, want 5", tries)
		}
		if latest, _ := d.LatestGuestCode(ctx, r.ID); latest.Tries != 5 {
			t.Errorf("tries recorded: %d", latest.Tries)
		}
		c3 := &db.GuestCode{ID: ferry.NewID(nil), RecipientID: r.ID, Hash: []byte("h3"), Expires: now.Add(10 * time.Minute), Created: now.Add(2 * time.Second)}
		d.AddGuestCode(ctx, c3)
		uses := 0
		for i := 0; i < 5; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if yes, _ := d.UseGuestCode(ctx, c3.ID); yes {
					mu.Lock()
					uses++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if uses != 1 {
			t.Errorf("a code was used %d times", uses)
		}
		if n, _ := d.CountGuestCodes(ctx, r.ID, now.Add(-time.Minute)); n != 3 {
			t.Errorf("codes counted: %d", n)
		}

		// The expiry notice is claimed once.
		exp, err := d.PackagesExpiring(ctx, now, now.Add(2*time.Hour), 10)
		if err != nil || len(exp) != 1 {
			t.Fatalf("expiring: %v %v", exp, err)
		}
		first, _ := d.MarkExpiryNoticed(ctx, p.ID)
		second, _ := d.MarkExpiryNoticed(ctx, p.ID)
		if !first || second {
			t.Errorf("expiry notice claimed %v then %v", first, second)
		}

		gs := &db.GuestSession{ID: "g1", Hash: []byte("session-hash"), RecipientID: r.ID, PackageID: p.ID, Created: now, Expires: now.Add(time.Hour)}
		if err := d.CreateGuestSession(ctx, gs); err != nil {
			t.Fatal(err)
		}
		if err := d.RecallPackage(ctx, p.ID, now); err != nil {
			t.Fatal(err)
		}
		if got, err := d.GuestSessionByHash(ctx, gs.Hash); err != nil || !got.Revoked {
			t.Errorf("guest session after recall: %+v %v", got, err)
		}
	})
}
