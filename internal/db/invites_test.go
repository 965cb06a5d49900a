package db_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
)

func TestInvites(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		org := &ferry.Org{ID: ferry.NewID(nil), Name: "acme", RetentionDays: 30, Created: now}
		if err := d.CreateOrg(ctx, org, ferry.NewID(nil)); err != nil {
			t.Fatal(err)
		}
		u := &ferry.User{ID: ferry.NewID(nil), OrgID: org.ID, Email: "nina@acme.test", Role: ferry.RoleUser, Created: now}
		if err := d.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		h1, h2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
		if err := d.PutInvite(ctx, &db.Invite{UserID: u.ID, Hash: h1, Created: now, Expires: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if inv, err := d.InviteByHash(ctx, h1, now); err != nil || inv.UserID != u.ID || !inv.Expires.Equal(now.Add(time.Hour)) {
			t.Fatalf("InviteByHash = %+v, %v", inv, err)
		}
		// A second invitation replaces the first.
		if err := d.PutInvite(ctx, &db.Invite{UserID: u.ID, Hash: h2, Created: now, Expires: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.InviteByHash(ctx, h1, now); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("replaced invitation: %v", err)
		}
		// Expired: not found, not consumable.
		if _, err := d.InviteByHash(ctx, h2, now.Add(time.Hour)); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("expired invitation: %v", err)
		}
		if err := d.ConsumeInvite(ctx, h2, now.Add(time.Hour), u.ID, "hash"); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("consume expired: %v", err)
		}
		// Consumed once, with the password hash set in the same step.
		if err := d.ConsumeInvite(ctx, h2, now, u.ID, "the-hash"); err != nil {
			t.Fatal(err)
		}
		if got, _ := d.UserByID(ctx, u.ID); got.PasswordHash != "the-hash" {
			t.Fatalf("password hash = %q", got.PasswordHash)
		}
		if err := d.ConsumeInvite(ctx, h2, now, u.ID, "again"); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("consume twice: %v", err)
		}
		// Another user's expired invitation goes when someone is invited.
		if err := d.PutInvite(ctx, &db.Invite{UserID: u.ID, Hash: h1, Created: now, Expires: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		v := &ferry.User{ID: ferry.NewID(nil), OrgID: org.ID, Email: "olga@acme.test", Role: ferry.RoleUser, Created: now}
		if err := d.CreateUser(ctx, v); err != nil {
			t.Fatal(err)
		}
		if err := d.PutInvite(ctx, &db.Invite{UserID: v.ID, Hash: h2, Created: now.Add(2 * time.Hour), Expires: now.Add(3 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.InviteByHash(ctx, h1, now); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("expired invitation kept: %v", err)
		}
	})
}
