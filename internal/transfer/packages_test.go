package transfer_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/transfer"
)

// TestPackageRules tries every way into a package's folder other than the
// package's own record: admins and other users through the normal file
// operations, a guest through the normal read path, a guest of another
// package. It also checks the quota at upload creation, the party taken
// from the recipient's domain, download counting, recall with a held file
// and expiry.
func TestPackageRules(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := newEnv(t, d)
		party := &ferry.Party{ID: ferry.NewID(nil), OrgID: e.org.ID, Name: "Partner Ltd", Contacts: []string{"ops@partner.test"}, Created: e.clk.now()}
		if err := d.CreateParty(ctx, party); err != nil {
			t.Fatal(err)
		}
		alice := e.user(t, "alice@acme.test", ferry.RoleUser)
		admin := e.user(t, "root@acme.test", ferry.RoleAdmin)

		pkg, err := e.tr.CreatePackage(ctx, alice, transfer.PackageDraft{To: []string{"bob@partner.test"}, Subject: "S", MaxDownloads: 1, Expires: 48 * time.Hour, AllowReply: true})
		if err != nil {
			t.Fatal(err)
		}
		if pkg.PartyID != party.ID {
			t.Errorf("package party %q, want the party whose contact shares bob's domain", pkg.PartyID)
		}
		folder := transfer.PackageFolder(pkg.ID)
		e.tr.SetPackageMaxBytes(100)
		if _, err := e.tr.CreateUpload(ctx, alice, folder+"/big", 101, nil); ferry.KindOf(err) != ferry.TooLarge {
			t.Errorf("upload over the package quota: %v, want TooLarge", err)
		}
		f, err := e.tr.Put(ctx, alice, folder+"/a.txt", strings.NewReader("secret content"))
		if err != nil {
			t.Fatal(err)
		}
		if f.PartyID != party.ID {
			t.Errorf("file party %q", f.PartyID)
		}
		// Nobody else reaches the folder through the file operations, not
		// even an organisation admin or the operator.
		for _, p := range []*ferry.Principal{admin, e.admin, e.user(t, "carol@acme.test", ferry.RoleUser)} {
			if _, err := e.tr.Open(ctx, p, folder+"/a.txt"); ferry.KindOf(err) != ferry.NotExist {
				t.Errorf("%s opens a package file: %v", p.Name(), err)
			}
			if _, err := e.tr.Put(ctx, p, folder+"/planted", strings.NewReader("x")); ferry.KindOf(err) != ferry.NotExist {
				t.Errorf("%s writes into a package: %v", p.Name(), err)
			}
			if _, err := e.tr.List(ctx, p, transfer.PackagesRoot); ferry.KindOf(err) != ferry.NotExist {
				t.Errorf("%s lists the package folders: %v", p.Name(), err)
			}
			if err := e.tr.Delete(ctx, p, folder+"/a.txt"); ferry.KindOf(err) != ferry.NotExist {
				t.Errorf("%s deletes a package file: %v", p.Name(), err)
			}
			if _, err := e.tr.Mkdir(ctx, p, folder+"/sub"); ferry.KindOf(err) != ferry.NotExist {
				t.Errorf("%s makes a folder in a package: %v", p.Name(), err)
			}
		}
		entries, err := e.tr.List(ctx, admin, "/")
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range entries {
			if strings.Contains(en.Name, "packages") {
				t.Errorf("the root listing shows %s", en.Name)
			}
		}
		if err := e.tr.Move(ctx, alice, folder+"/a.txt", "/stolen.txt"); ferry.KindOf(err) != ferry.NotExist {
			t.Errorf("the sender moves a package file out: %v", err)
		}
		readOnly := *alice
		readOnly.Scope = ferry.ScopeRead | ferry.ScopeWrite
		if _, err := e.tr.SendPackage(ctx, &readOnly, pkg.ID); ferry.KindOf(err) != ferry.Permission {
			t.Errorf("a token without the share scope sends: %v", err)
		}
		if _, err := e.tr.SendPackage(ctx, alice, pkg.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.tr.Put(ctx, alice, folder+"/late", strings.NewReader("x")); ferry.KindOf(err) != ferry.NotExist {
			t.Errorf("the sender adds a file after sending: %v", err)
		}

		rcpts, _ := d.RecipientsOf(ctx, pkg.ID)
		guest := &ferry.Principal{Guest: "bob@partner.test", Email: "bob@partner.test", PackageID: pkg.ID, OrgID: e.org.ID, Remote: "192.0.2.7", Protocol: "https"}
		if _, err := e.tr.Open(ctx, guest, folder+"/a.txt"); ferry.KindOf(err) != ferry.NotExist {
			t.Errorf("a guest reads through the normal path (uncounted): %v", err)
		}
		other := *guest
		other.PackageID = ferry.NewID(nil)
		if _, err := e.tr.OpenPackageFile(ctx, &other, pkg.ID, f.ID); ferry.KindOf(err) != ferry.NotExist {
			t.Errorf("a guest of another package: %v", err)
		}
		dl, err := e.tr.OpenPackageFile(ctx, guest, pkg.ID, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := dl.Read(ctx, 0, dl.File.Size)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != "secret content" {
			t.Errorf("read %q", got)
		}
		if _, err := e.tr.OpenPackageFile(ctx, guest, pkg.ID, f.ID); ferry.KindOf(err) != ferry.Expired {
			t.Errorf("second download with a limit of 1: %v", err)
		}
		receipts, _ := d.ReceiptsOf(ctx, pkg.ID)
		if len(receipts) != 1 || receipts[0].RecipientID != rcpts[0].ID || receipts[0].Remote != "192.0.2.7" {
			t.Errorf("receipts: %+v", receipts)
		}
		evs := e.events(t, "file.read")
		if len(evs) == 0 || evs[len(evs)-1].Actor != "bob@partner.test" || evs[len(evs)-1].Party != "Partner Ltd" {
			t.Errorf("the guest's read audit record: %+v", evs)
		}

		// A reply, then recall: the held file survives, the rest is shredded.
		reply, err := e.tr.PutReply(ctx, guest, pkg.ID, "answer.txt", strings.NewReader("answer"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.tr.PutReply(ctx, guest, pkg.ID, "bad\r\nname", strings.NewReader("x")); ferry.KindOf(err) != ferry.Invalid {
			t.Errorf("reply name with CR/LF: %v", err)
		}
		if _, err := e.tr.PutReply(ctx, guest, pkg.ID, "huge", strings.NewReader(strings.Repeat("x", 101))); ferry.KindOf(err) != ferry.TooLarge {
			t.Errorf("reply over the package quota: %v", err)
		}
		if _, err := e.tr.PutReply(ctx, guest, pkg.ID, "answer.txt", strings.NewReader("again")); ferry.KindOf(err) != ferry.Exist {
			t.Errorf("a reply over another: %v", err)
		}
		if err := e.tr.SetHold(ctx, alice, folder+"/a.txt", true); ferry.KindOf(err) != ferry.NotExist {
			t.Errorf("the sender puts a package file on hold: %v", err)
		}
		if err := e.tr.SetHold(ctx, admin, folder+"/a.txt", true); err != nil {
			t.Fatalf("an admin's legal hold on a package file: %v", err)
		}
		if err := e.tr.RecallPackage(ctx, alice, pkg.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := d.FileByID(ctx, f.ID); err != nil {
			t.Errorf("the held file was shredded: %v", err)
		}
		if _, err := d.FileByID(ctx, reply.ID); ferry.KindOf(err) != ferry.NotExist {
			t.Errorf("the reply survived the recall: %v", err)
		}
		if _, err := e.tr.OpenPackageFile(ctx, guest, pkg.ID, f.ID); ferry.KindOf(err) != ferry.NotExist {
			t.Errorf("download after recall: %v", err)
		}
	})
}

// events returns the audit records of an action, oldest first.
func (e *env) events(t *testing.T, action string) []db.AuditRow {
	t.Helper()
	var out []db.AuditRow
	err := e.d.AuditScan(context.Background(), 0, 1<<40, func(r *db.AuditRow) error {
		if r.Action == action {
			out = append(out, *r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPackageExpiry: the expiry notice goes out once, then the link dies
// and the sweeper shreds the files.
func TestPackageExpiry(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, dbtest.SQLite(t))
	alice := e.user(t, "alice@acme.test", ferry.RoleUser)
	if _, err := e.tr.CreatePackage(ctx, alice, transfer.PackageDraft{To: []string{"bob@partner.test"}, Subject: "S", Expires: 40 * 24 * time.Hour}); ferry.KindOf(err) != ferry.Invalid {
		t.Errorf("expiry beyond the organisation's file expiry: %v", err)
	}
	pkg, err := e.tr.CreatePackage(ctx, alice, transfer.PackageDraft{To: []string{"bob@partner.test"}, Subject: "S", Expires: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f, err := e.tr.Put(ctx, alice, transfer.PackageFolder(pkg.ID)+"/a", bytes.NewReader([]byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.tr.SendPackage(ctx, alice, pkg.ID); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.tr.NotifyExpiring(ctx); n != 0 {
		t.Errorf("notice two days early")
	}
	e.clk.add(25 * time.Hour)
	if n, _ := e.tr.NotifyExpiring(ctx); n != 1 {
		t.Errorf("notices within a day of expiry: %d", n)
	}
	if n, _ := e.tr.NotifyExpiring(ctx); n != 0 {
		t.Errorf("notice sent twice")
	}
	e.clk.add(24 * time.Hour)
	if n, err := e.tr.Sweep(ctx); err != nil || n != 1 {
		t.Errorf("sweep: %d %v", n, err)
	}
	if _, err := e.d.FileByID(ctx, f.ID); ferry.KindOf(err) != ferry.NotExist {
		t.Errorf("expired package file still there: %v", err)
	}
}

// TestPackageRecipientsAcrossOrgs: a user of another organisation is a
// guest of the package (one-time code), never a signed-in recipient, so no
// principal of that organisation reaches it.
func TestPackageRecipientsAcrossOrgs(t *testing.T) {
	ctx := context.Background()
	d := dbtest.SQLite(t)
	e := newEnv(t, d)
	alice := e.user(t, "alice@acme.test", ferry.RoleUser)
	colleague := e.user(t, "dan@acme.test", ferry.RoleUser)
	other := &ferry.Org{ID: ferry.NewID(nil), Name: "globex", RetentionDays: 30, Created: e.clk.now()}
	if err := d.CreateOrg(ctx, other, ferry.NewID(nil)); err != nil {
		t.Fatal(err)
	}
	zed := &ferry.User{ID: ferry.NewID(nil), OrgID: other.ID, Email: "zed@globex.test", Role: ferry.RoleAdmin}
	if err := d.CreateUser(ctx, zed); err != nil {
		t.Fatal(err)
	}
	pkg, err := e.tr.CreatePackage(ctx, alice, transfer.PackageDraft{To: []string{"zed@globex.test, dan@acme.test"}, Subject: "S"})
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := d.RecipientsOf(ctx, pkg.ID)
	for _, r := range rs {
		if (r.Email == "zed@globex.test") != (r.UserID == "") {
			t.Errorf("recipient %s: user id %q", r.Email, r.UserID)
		}
	}
	f, err := e.tr.Put(ctx, alice, transfer.PackageFolder(pkg.ID)+"/a", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.tr.SendPackage(ctx, alice, pkg.ID); err != nil {
		t.Fatal(err)
	}
	zp := &ferry.Principal{UserID: zed.ID, Email: zed.Email, OrgID: other.ID, Role: ferry.RoleAdmin}
	if _, err := e.tr.Package(ctx, zp, pkg.ID); ferry.KindOf(err) != ferry.NotExist {
		t.Errorf("a user of another organisation sees the package as a user: %v", err)
	}
	if _, err := e.tr.OpenPackageFile(ctx, zp, pkg.ID, f.ID); ferry.KindOf(err) != ferry.NotExist {
		t.Errorf("a user of another organisation downloads: %v", err)
	}
	if _, err := e.tr.OpenPackageFile(ctx, colleague, pkg.ID, f.ID); err != nil {
		t.Errorf("the colleague it was sent to: %v", err)
	}
}
