package db_test

import (
	"context"
	"testing"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
)

func TestOrgsUsersTokens(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		org := &ferry.Org{ID: ferry.NewID(nil), Name: "acme", RetentionDays: 30, Created: now}
		if err := d.CreateOrg(ctx, org, ferry.NewID(nil)); err != nil {
			t.Fatal(err)
		}
		if err := d.CreateOrg(ctx, &ferry.Org{ID: ferry.NewID(nil), Name: "acme", RetentionDays: 30, Created: now}, ferry.NewID(nil)); ferry.KindOf(err) != ferry.Exist {
			t.Fatalf("duplicate org: got %v, want Exist", err)
		}
		got, err := d.OrgByName(ctx, "acme")
		if err != nil || got.ID != org.ID || !got.Created.Equal(now) {
			t.Fatalf("OrgByName = %+v, %v", got, err)
		}
		if _, err := d.OrgByName(ctx, "nope"); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("missing org: %v", err)
		}
		u := &ferry.User{ID: ferry.NewID(nil), OrgID: org.ID, Email: "a@acme.test", Role: ferry.RoleUser, Created: now}
		if err := d.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := d.SetUserDisabled(ctx, u.ID, true); err != nil {
			t.Fatal(err)
		}
		gu, err := d.UserByEmail(ctx, "a@acme.test")
		if err != nil || !gu.Disabled || gu.Role != ferry.RoleUser {
			t.Fatalf("UserByEmail = %+v, %v", gu, err)
		}
		tok := &ferry.Token{ID: "t1", UserID: u.ID, Hash: []byte{1, 2, 3}, Created: now, Expires: now.Add(time.Hour)}
		if err := d.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if err := d.RevokeToken(ctx, "t1"); err != nil {
			t.Fatal(err)
		}
		gt, err := d.TokenByID(ctx, "t1")
		if err != nil || !gt.Revoked || string(gt.Hash) != "\x01\x02\x03" || !gt.Expires.Equal(tok.Expires) {
			t.Fatalf("TokenByID = %+v, %v", gt, err)
		}
		if err := d.RevokeToken(ctx, "nope"); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("revoke missing: %v", err)
		}
	})
}
