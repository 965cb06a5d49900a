package db_test

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
)

func TestSessionsAndPolicies(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		org := &ferry.Org{ID: ferry.NewID(nil), Name: "acme", RetentionDays: 30, Created: now}
		if err := d.CreateOrg(ctx, org, ferry.NewID(nil)); err != nil {
			t.Fatal(err)
		}
		u := &ferry.User{ID: ferry.NewID(nil), OrgID: org.ID, Email: "u@acme.test", Role: ferry.RoleUser, Created: now}
		if err := d.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		s := &ferry.Session{ID: "0123456789abcdef", Hash: bytes.Repeat([]byte{7}, 32), UserID: u.ID, Stage: ferry.SessionFull, Methods: "password",
			Created: now, LastSeen: now, Expires: now.Add(time.Hour), Idle: 30 * time.Minute, Remote: "127.0.0.1:5", UserAgent: "test"}
		if err := d.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
		got, err := d.SessionByHash(ctx, s.Hash)
		if err != nil || got.ID != s.ID || got.Idle != s.Idle || !got.Expires.Equal(s.Expires) || got.Stage != ferry.SessionFull {
			t.Fatalf("SessionByHash = %+v %v", got, err)
		}
		if list, err := d.SessionsOfUser(ctx, u.ID, now); err != nil || len(list) != 1 {
			t.Fatalf("SessionsOfUser = %v %v", list, err)
		}
		if err := d.RevokeSession(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
		if list, _ := d.SessionsOfUser(ctx, u.ID, now); len(list) != 0 {
			t.Fatal("revoked session listed")
		}
		if n, err := d.DeleteDeadSessions(ctx, now.Add(time.Minute)); err != nil || n != 1 {
			t.Fatalf("DeleteDeadSessions = %d %v", n, err)
		}

		p, err := d.Policy(ctx, org.ID)
		if err != nil || p.MinPasswordLen != 12 || p.MFARequired {
			t.Fatalf("default policy = %+v %v", p, err)
		}
		p.MFARequired, p.SFTPKeysOnly, p.SessionIdle = true, true, 5*time.Minute
		p.AllowedCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
		for i := 0; i < 2; i++ { // insert, then update
			if err := d.SetPolicy(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		q, err := d.Policy(ctx, org.ID)
		if err != nil || !q.MFARequired || !q.SFTPKeysOnly || q.SessionIdle != 5*time.Minute || len(q.AllowedCIDRs) != 2 {
			t.Fatalf("stored policy = %+v %v", q, err)
		}
		if !q.AddrAllowed("10.1.2.3:4567") || q.AddrAllowed("192.0.2.1") || !q.AddrAllowed("[2001:db8::1]:22") || q.AddrAllowed("garbage") {
			t.Fatal("AddrAllowed")
		}
	})
}
