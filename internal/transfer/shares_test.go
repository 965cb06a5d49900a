package transfer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/netip"
	"testing"
	"time"

	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/guard"
	"ferry.dev/ferry/internal/transfer"
)

// TestShareRules drives share links through the transfer service with a
// settable clock: who may make them, what a visitor may reach, drop boxes,
// expiry and revocation checked on every step, and that a visitor's
// principal opens nothing through the ordinary paths.
func TestShareRules(t *testing.T) {
	ctx := context.Background()
	d := dbtest.SQLite(t)
	e := newEnv(t, d)
	for _, p := range []string{"/docs/sub", "/other", "/drop"} {
		if _, err := e.tr.CreateFolder(ctx, e.admin, p, ""); err != nil {
			t.Fatal(err)
		}
	}
	for p, body := range map[string]string{"/docs/a.txt": "A", "/docs/sub/b.txt": "B", "/other/secret.txt": "S", "/drop/old.txt": "old"} {
		if _, err := e.tr.Put(ctx, e.admin, p, bytes.NewReader([]byte(body))); err != nil {
			t.Fatal(err)
		}
	}
	u := &ferry.User{ID: ferry.NewID(nil), OrgID: e.org.ID, Email: "u@acme.test", Role: ferry.RoleUser}
	d.CreateUser(ctx, u)
	p := &ferry.Principal{UserID: u.ID, Email: u.Email, OrgID: e.org.ID, Role: ferry.RoleUser, Remote: "test"}
	grant := func(path string, perms ferry.Perm) {
		fo, _ := d.FolderByPath(ctx, e.org.ID, path)
		if err := d.SetGrant(ctx, ferry.Grant{FolderID: fo.ID, UserID: u.ID, Perms: perms}); err != nil {
			t.Fatal(err)
		}
	}
	grant("/docs", ferry.PermList|ferry.PermRead)
	if _, _, err := e.tr.CreateShare(ctx, p, transfer.ShareOptions{Path: "/docs"}); ferry.KindOf(err) != ferry.Permission {
		t.Fatalf("sharing without share permission: %v", err)
	}
	if _, _, err := e.tr.CreateShare(ctx, p, transfer.ShareOptions{Path: "/other/secret.txt"}); ferry.KindOf(err) != ferry.NotExist {
		t.Fatalf("sharing an invisible file: %v", err)
	}
	grant("/docs", ferry.PermList|ferry.PermRead|ferry.PermShare)
	grant("/drop", ferry.PermList|ferry.PermWrite|ferry.PermShare)
	now := e.clk.now()
	for name, o := range map[string]transfer.ShareOptions{
		"past expiry":          {Path: "/docs", Expires: now.Add(-time.Minute)},
		"beyond the retention": {Path: "/docs", Expires: now.AddDate(0, 0, 31)},
		"a file as a drop box": {Path: "/docs/a.txt", DropBox: true},
		"a short password":     {Path: "/docs", Password: "short"},
		"negative downloads":   {Path: "/docs", MaxDownloads: -1},
		"an invalid range":     {Path: "/docs", AllowedIPs: []netip.Prefix{{}}},
	} {
		if _, _, err := e.tr.CreateShare(ctx, p, o); ferry.KindOf(err) != ferry.Invalid {
			t.Errorf("%s: %v", name, err)
		}
	}

	sh, tok, err := e.tr.CreateShare(ctx, p, transfer.ShareOptions{Path: "/docs", Expires: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if !sh.Expires.Equal(now.Add(time.Hour)) || len(tok) != 43 {
		t.Fatalf("share %+v token %q", sh, tok)
	}
	def, _, err := e.tr.CreateShare(ctx, p, transfer.ShareOptions{Path: "/docs/a.txt"})
	if err != nil || !def.Expires.Equal(now.AddDate(0, 0, ferry.DefaultShareDays)) {
		t.Fatalf("default expiry: %v %v", def.Expires, err)
	}
	v, err := e.tr.VisitShare(ctx, tok, "192.0.2.1", "")
	if err != nil || v.NeedPassword || v.Principal == nil {
		t.Fatalf("visit: %+v %v", v, err)
	}
	// One character changed: the last one is flipped between two letters so
	// the result never equals the real token (1 in 64 did before).
	wrong := tok[:42] + "A"
	if tok[42] == 'A' {
		wrong = tok[:42] + "B"
	}
	if _, err := e.tr.VisitShare(ctx, wrong, "192.0.2.1", ""); ferry.KindOf(err) != ferry.NotExist {
		t.Fatalf("a wrong token: %v", err)
	}
	if es, err := e.tr.ShareList(ctx, v, ""); err != nil || len(es) != 2 {
		t.Fatalf("list: %v %v", es, err)
	}
	for _, rel := range []string{"../other/secret.txt", "sub/../../other/secret.txt", "/../other/secret.txt", "..", "sub//b.txt", "sub/./b.txt"} {
		if _, err := e.tr.ShareOpen(ctx, v, rel); ferry.KindOf(err) != ferry.NotExist {
			t.Errorf("open %q: %v", rel, err)
		}
	}
	dl, err := e.tr.ShareOpen(ctx, v, "sub/b.txt")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := dl.Read(ctx, 0, dl.File.Size)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(rc); string(b) != "B" {
		t.Fatalf("content %q", b)
	}
	rc.Close()

	// The visitor's principal opens nothing through the ordinary paths.
	if _, err := e.tr.Open(ctx, v.Principal, "/docs/a.txt"); err == nil {
		t.Fatal("a visitor opened a file through Open")
	}
	if _, err := e.tr.List(ctx, v.Principal, "/docs"); err == nil {
		t.Fatal("a visitor listed through List")
	}
	if _, err := e.tr.Put(ctx, v.Principal, "/docs/new.txt", bytes.NewReader(nil)); err == nil {
		t.Fatal("a visitor of a download link wrote")
	}
	if _, err := e.tr.SharePut(ctx, v, "new.txt", bytes.NewReader(nil)); ferry.KindOf(err) != ferry.Permission {
		t.Fatalf("upload to a download link: %v", err)
	}

	// Drop box: writes into its folder only; never lists, reads or replaces.
	dsh, dtok, err := e.tr.CreateShare(ctx, p, transfer.ShareOptions{Path: "/drop", DropBox: true})
	if err != nil || !dsh.DropBox {
		t.Fatal(err)
	}
	dv, err := e.tr.VisitShare(ctx, dtok, "192.0.2.1", "")
	if err != nil {
		t.Fatal(err)
	}
	f, err := e.tr.SharePut(ctx, dv, "old.txt", bytes.NewReader([]byte("new")))
	if err != nil || f.Name == "old.txt" || f.Path == "/drop/old.txt" {
		t.Fatalf("drop box upload under a taken name: %+v %v", f, err)
	}
	for _, name := range []string{"../x.txt", "a/b.txt", ".."} {
		if f, err := e.tr.SharePut(ctx, dv, name, bytes.NewReader(nil)); err == nil && (f.Path != "/drop/"+f.Name) {
			t.Errorf("upload named %q went to %s", name, f.Path)
		}
	}
	if _, err := e.tr.ShareList(ctx, dv, ""); ferry.KindOf(err) != ferry.Permission {
		t.Fatalf("listing a drop box: %v", err)
	}
	if _, err := e.tr.ShareOpen(ctx, dv, "old.txt"); ferry.KindOf(err) != ferry.Permission {
		t.Fatalf("reading from a drop box: %v", err)
	}
	if _, err := e.tr.Put(ctx, dv.Principal, "/other/x.txt", bytes.NewReader(nil)); err == nil {
		t.Fatal("a drop box visitor wrote outside the drop box")
	}

	// Expiry holds on every step: a visit made before it fails after it.
	e.clk.add(61 * time.Minute)
	if _, err := e.tr.ShareOpen(ctx, v, "sub/b.txt"); ferry.KindOf(err) != ferry.NotExist {
		t.Fatalf("open after expiry: %v", err)
	}
	if _, err := e.tr.VisitShare(ctx, tok, "192.0.2.1", ""); ferry.KindOf(err) != ferry.NotExist {
		t.Fatalf("visit after expiry: %v", err)
	}

	// Revocation: only by the maker or an admin; stops at once.
	other := &ferry.User{ID: ferry.NewID(nil), OrgID: e.org.ID, Email: "o@acme.test", Role: ferry.RoleUser}
	d.CreateUser(ctx, other)
	op := &ferry.Principal{UserID: other.ID, Email: other.Email, OrgID: e.org.ID, Role: ferry.RoleUser, Remote: "test"}
	if err := e.tr.RevokeShare(ctx, op, dsh.ID); ferry.KindOf(err) != ferry.NotExist {
		t.Fatalf("revoke by another user: %v", err)
	}
	if err := e.tr.RevokeShare(ctx, p, dsh.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.tr.SharePut(ctx, dv, "late.txt", bytes.NewReader(nil)); ferry.KindOf(err) != ferry.NotExist {
		t.Fatalf("upload after revocation: %v", err)
	}
	if _, err := e.tr.Put(ctx, dv.Principal, "/drop/late.txt", bytes.NewReader(nil)); err == nil {
		t.Fatal("a revoked drop box's principal still writes")
	}
	if l, _ := e.tr.Shares(ctx, p, false); len(l) != 1 || l[0].ID != def.ID {
		t.Fatalf("active links: %v", l)
	}
	if _, err := e.tr.Shares(ctx, p, true); ferry.KindOf(err) != ferry.Permission {
		t.Fatalf("a user listing the organisation's links: %v", err)
	}
}

// TestShareAddressRanges: a link limited to ranges answers only inside them.
func TestShareAddressRanges(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, dbtest.SQLite(t))
	if _, err := e.tr.Put(ctx, e.admin, "/f.txt", bytes.NewReader([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	u := &ferry.User{ID: ferry.NewID(nil), OrgID: e.org.ID, Email: "a@acme.test", Role: ferry.RoleAdmin}
	e.d.CreateUser(ctx, u)
	p := &ferry.Principal{UserID: u.ID, Email: u.Email, OrgID: e.org.ID, Role: ferry.RoleAdmin, Remote: "test"}
	_, tok, err := e.tr.CreateShare(ctx, p, transfer.ShareOptions{Path: "/f.txt", AllowedIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}})
	if err != nil {
		t.Fatal(err)
	}
	for addr, ok := range map[string]bool{"192.0.2.9": true, "[2001:db8::1]:443": true, "::ffff:192.0.2.10": true, "198.51.100.1": false, "2001:db9::1": false, "garbage": false} {
		_, err := e.tr.VisitShare(ctx, tok, addr, "")
		if (err == nil) != ok {
			t.Errorf("%s: %v", addr, err)
		}
	}
}

// TestFrozenVisitorSpendsNoLimit: a share link or a package recipient frozen
// by the guard is refused before its download is counted, so that lifting
// the freeze leaves the limit as it was.
func TestFrozenVisitorSpendsNoLimit(t *testing.T) {
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
	if _, err := e.tr.CreateFolder(ctx, e.admin, "/docs", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.tr.Put(ctx, e.admin, "/docs/a.txt", bytes.NewReader([]byte("A"))); err != nil {
		t.Fatal(err)
	}
	u := &ferry.User{ID: ferry.NewID(nil), OrgID: e.org.ID, Email: "u@acme.test", Role: ferry.RoleAdmin}
	d.CreateUser(ctx, u)
	p := &ferry.Principal{UserID: u.ID, Email: u.Email, OrgID: e.org.ID, Role: ferry.RoleAdmin, Remote: "test"}
	_, tok, err := e.tr.CreateShare(ctx, p, transfer.ShareOptions{Path: "/docs/a.txt", MaxDownloads: 1})
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.tr.VisitShare(ctx, tok, "192.0.2.1", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Freeze(ctx, v.Principal, "admin", "test", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.tr.ShareOpen(ctx, v, ""); ferry.KindOf(err) != ferry.Permission {
		t.Fatalf("a frozen link opened: %v", err)
	}
	if err := g.Unfreeze(ctx, guard.Subject(v.Principal)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.tr.ShareOpen(ctx, v, ""); err != nil {
		t.Fatalf("the frozen attempt spent the link's one download: %v", err)
	}

	// The same for a package recipient: no count, no receipt.
	pkg, err := e.tr.CreatePackage(ctx, p, transfer.PackageDraft{To: []string{"bob@partner.test"}, Subject: "S", MaxDownloads: 1, Expires: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f, err := e.tr.Put(ctx, p, transfer.PackageFolder(pkg.ID)+"/a.txt", bytes.NewReader([]byte("A")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.tr.SendPackage(ctx, p, pkg.ID); err != nil {
		t.Fatal(err)
	}
	guest := &ferry.Principal{Guest: "bob@partner.test", Email: "bob@partner.test", PackageID: pkg.ID, OrgID: e.org.ID, Remote: "192.0.2.7", Protocol: "https"}
	if err := g.Freeze(ctx, guest, "admin", "test", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.tr.OpenPackageFile(ctx, guest, pkg.ID, f.ID); ferry.KindOf(err) != ferry.Permission {
		t.Fatalf("a frozen recipient opened: %v", err)
	}
	if rs, _ := d.ReceiptsOf(ctx, pkg.ID); len(rs) != 0 {
		t.Fatalf("a frozen recipient's refused download left receipts: %+v", rs)
	}
	if err := g.Unfreeze(ctx, guard.Subject(guest)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.tr.OpenPackageFile(ctx, guest, pkg.ID, f.ID); err != nil {
		t.Fatalf("the frozen attempt spent the recipient's one download: %v", err)
	}
}

// failSuffix is a random source that fails the 4-byte reads SharePut makes
// for a name's suffix, and reads crypto/rand otherwise.
type failSuffix struct{}

func (failSuffix) Read(p []byte) (int, error) {
	if len(p) == 4 {
		return 0, errors.New("no randomness")
	}
	return rand.Read(p)
}

// TestSharePutRandFails: when no random suffix can be had for a taken name,
// a drop box upload fails instead of using a fixed one, which could be the
// name of an earlier visitor's file and replace it.
func TestSharePutRandFails(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, dbtest.SQLite(t))
	if _, err := e.tr.CreateFolder(ctx, e.admin, "/drop", ""); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"/drop/a.txt", "/drop/a (00000000).txt"} {
		if _, err := e.tr.Put(ctx, e.admin, name, bytes.NewReader([]byte("earlier"))); err != nil {
			t.Fatal(err)
		}
	}
	u := &ferry.User{ID: ferry.NewID(nil), OrgID: e.org.ID, Email: "a@acme.test", Role: ferry.RoleAdmin}
	if err := e.d.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	p := &ferry.Principal{UserID: u.ID, Email: u.Email, OrgID: e.org.ID, Role: ferry.RoleAdmin, Remote: "test"}
	_, tok, err := e.tr.CreateShare(ctx, p, transfer.ShareOptions{Path: "/drop", DropBox: true})
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.tr.VisitShare(ctx, tok, "192.0.2.1", "")
	if err != nil {
		t.Fatal(err)
	}
	c := e.cfg
	c.Rand = failSuffix{}
	tr := transfer.New(c)
	if f, err := tr.SharePut(ctx, v, "a.txt", bytes.NewReader([]byte("later"))); ferry.KindOf(err) != ferry.Internal {
		t.Fatalf("SharePut without randomness: %+v %v", f, err)
	}
	for _, name := range []string{"/drop/a.txt", "/drop/a (00000000).txt"} {
		d, err := e.tr.Open(ctx, e.admin, name)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := d.Read(ctx, 0, d.File.Size)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != "earlier" {
			t.Errorf("%s now holds %q", name, b)
		}
	}
}
