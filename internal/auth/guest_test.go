package auth_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
)

// guestPackage stores a sent package with two external recipients.
func guestPackage(t *testing.T, e *mfaEnv) (*ferry.Package, *ferry.PackageRecipient, *ferry.PackageRecipient) {
	t.Helper()
	ctx := context.Background()
	now := e.clk.now().UTC()
	root := &ferry.Folder{ID: ferry.NewID(nil), OrgID: e.org.ID, Name: "p" + ferry.NewID(nil), Path: "/.p" + ferry.NewID(nil), Created: now}
	if err := e.d.CreateFolder(ctx, root); err != nil {
		t.Fatal(err)
	}
	p := &ferry.Package{ID: ferry.NewID(nil), OrgID: e.org.ID, SenderID: e.user.ID, Subject: "S", Status: ferry.PackageSent, Expires: now.Add(30 * time.Minute), Created: now}
	fo := &ferry.Folder{ID: ferry.NewID(nil), OrgID: e.org.ID, ParentID: root.ID, Name: p.ID, Path: root.Path + "/" + p.ID, Created: now}
	rf := &ferry.Folder{ID: ferry.NewID(nil), OrgID: e.org.ID, ParentID: fo.ID, Name: "reply", Path: fo.Path + "/reply", Created: now}
	p.FolderID, p.ReplyFolderID = fo.ID, rf.ID
	a := &ferry.PackageRecipient{ID: ferry.NewID(nil), PackageID: p.ID, Email: "ann@partner.test", TokenHash: []byte(ferry.NewID(nil)), Created: now}
	b := &ferry.PackageRecipient{ID: ferry.NewID(nil), PackageID: p.ID, Email: "ben@partner.test", TokenHash: []byte(ferry.NewID(nil)), Created: now}
	if err := e.d.CreatePackage(ctx, p, []*ferry.Folder{fo, rf}, []*ferry.PackageRecipient{a, b}); err != nil {
		t.Fatal(err)
	}
	return p, a, b
}

// TestGuestCodes attacks the one-time codes: another recipient's code, an
// expired code, guessing past five tries, reuse, and asking for codes too
// often.
func TestGuestCodes(t *testing.T) {
	ctx := context.Background()
	e := newMFAEnv(t)
	p, ann, ben := guestPackage(t, e)
	const remote = "192.0.2.1"

	code, err := e.au.IssueGuestCode(ctx, ann)
	if err != nil {
		t.Fatal(err)
	}
	if len(code) != 6 {
		t.Fatalf("code %q", code)
	}
	if _, _, err := e.au.VerifyGuestCode(ctx, p, ben, code, remote); ferry.KindOf(err) != ferry.Permission {
		t.Errorf("ann's code accepted for ben: %v", err)
	}
	e.clk.add(auth.GuestCodeTTL + time.Second)
	if _, _, err := e.au.VerifyGuestCode(ctx, p, ann, code, remote); ferry.KindOf(err) != ferry.Permission {
		t.Errorf("expired code accepted: %v", err)
	}

	code, _ = e.au.IssueGuestCode(ctx, ann)
	for i := 0; i < auth.GuestCodeTries; i++ {
		wrong := fmt.Sprintf("%06d", (atoi(code)+1+i)%1_000_000)
		if _, _, err := e.au.VerifyGuestCode(ctx, p, ann, wrong, remote); ferry.KindOf(err) != ferry.Permission {
			t.Fatalf("wrong code: %v", err)
		}
	}
	if _, _, err := e.au.VerifyGuestCode(ctx, p, ann, code, remote); ferry.KindOf(err) != ferry.Permission {
		t.Errorf("the right code after five wrong tries: %v", err)
	}
	// Three codes in ten minutes (the first one is older), then no more
	// until the window passes.
	for i := 0; i < 2; i++ {
		if _, err := e.au.IssueGuestCode(ctx, ann); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.au.IssueGuestCode(ctx, ann); ferry.KindOf(err) != ferry.Quota {
		t.Errorf("a fourth code within ten minutes: %v", err)
	}
	e.clk.add(10*time.Minute + time.Second)
	code, err = e.au.IssueGuestCode(ctx, ann)
	if err != nil {
		t.Fatal(err)
	}
	secret, gs, err := e.au.VerifyGuestCode(ctx, p, ann, code, remote)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.au.VerifyGuestCode(ctx, p, ann, code, remote); ferry.KindOf(err) != ferry.Permission {
		t.Errorf("a code used twice: %v", err)
	}
	if !gs.Expires.Equal(p.Expires) && gs.Expires.After(p.Expires) {
		t.Errorf("guest session outlives its package: %v > %v", gs.Expires, p.Expires)
	}

	// The session is for this package and this recipient only, and ends.
	gp, err := e.au.GuestSession(ctx, secret, p.ID, remote)
	if err != nil || gp.Guest != "ann@partner.test" || gp.PackageID != p.ID || gp.OrgID != e.org.ID || gp.UserID != "" || gp.Role != "" {
		t.Fatalf("guest principal %+v, %v", gp, err)
	}
	if _, err := e.au.GuestSession(ctx, secret, ferry.NewID(nil), remote); ferry.KindOf(err) != ferry.Unauthenticated {
		t.Errorf("guest session for another package: %v", err)
	}
	if _, _, err := e.au.Session(ctx, secret, remote); ferry.KindOf(err) != ferry.Unauthenticated {
		t.Errorf("a guest secret works as a user session: %v", err)
	}
	if err := e.d.RecallPackage(ctx, p.ID, e.clk.now()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.au.GuestSession(ctx, secret, p.ID, remote); ferry.KindOf(err) != ferry.Unauthenticated {
		t.Errorf("guest session after recall: %v", err)
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
