package db_test

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
)

func TestOIDC(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		var orgs []*ferry.Org
		for _, name := range []string{"acme", "beta"} {
			o := &ferry.Org{ID: ferry.NewID(nil), Name: name, RetentionDays: 30, Created: now}
			if err := d.CreateOrg(ctx, o, ferry.NewID(nil)); err != nil {
				t.Fatal(err)
			}
			orgs = append(orgs, o)
		}
		acme, beta := orgs[0], orgs[1]
		if _, err := d.OIDCConfig(ctx, acme.ID); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("OIDCConfig before any = %v", err)
		}
		c := &db.OIDCConfig{OrgID: acme.ID, Issuer: "https://idp.acme.test", ClientID: "ferry", SecretKEK: "v1",
			SecretKey: []byte{1, 2, 3}, SecretSealed: []byte{4, 5}, Domains: []string{"acme.test", "acme.example"},
			Provision: "user", Enabled: true, Updated: now}
		if err := d.SetOIDCConfig(ctx, c); err != nil {
			t.Fatal(err)
		}
		got, err := d.OIDCConfig(ctx, acme.ID)
		if err != nil || got.Issuer != c.Issuer || got.ClientID != "ferry" || !bytes.Equal(got.SecretKey, c.SecretKey) ||
			!bytes.Equal(got.SecretSealed, c.SecretSealed) || !got.Enabled || got.Provision != "user" || !got.Updated.Equal(now) ||
			!slices.Equal(got.Domains, []string{"acme.example", "acme.test"}) {
			t.Fatalf("OIDCConfig = %+v %v", got, err)
		}
		if id, err := d.OIDCOrgByDomain(ctx, "acme.test"); err != nil || id != acme.ID {
			t.Fatalf("OIDCOrgByDomain = %q %v", id, err)
		}
		// Replacing drops the old domains; another org cannot claim one.
		c.Domains, c.Enabled, c.Provision = []string{"acme.test"}, false, "off"
		if err := d.SetOIDCConfig(ctx, c); err != nil {
			t.Fatal(err)
		}
		if _, err := d.OIDCOrgByDomain(ctx, "acme.example"); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("dropped domain still mapped: %v", err)
		}
		if got, _ := d.OIDCConfig(ctx, acme.ID); got.Enabled || got.Provision != "off" || len(got.Domains) != 1 {
			t.Fatalf("replaced config = %+v", got)
		}
		b := &db.OIDCConfig{OrgID: beta.ID, Issuer: "https://idp.beta.test", ClientID: "x", SecretKEK: "v1", SecretKey: []byte{1},
			SecretSealed: []byte{1}, Domains: []string{"beta.test", "acme.test"}, Provision: "off", Updated: now}
		if err := d.SetOIDCConfig(ctx, b); ferry.KindOf(err) != ferry.Exist {
			t.Fatalf("claiming another org's domain: %v", err)
		}
		if _, err := d.OIDCConfig(ctx, beta.ID); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("a refused configuration was half stored: %v", err)
		}

		// Logins in progress: taken once.
		l := &db.OIDCLogin{StateHash: bytes.Repeat([]byte{1}, 32), OrgID: acme.ID, BrowserHash: bytes.Repeat([]byte{2}, 32),
			NonceHash: bytes.Repeat([]byte{3}, 32), Verifier: "v", Next: "/account", Created: now, Expires: now.Add(10 * time.Minute)}
		if err := d.CreateOIDCLogin(ctx, l); err != nil {
			t.Fatal(err)
		}
		old := *l
		old.StateHash, old.Expires = bytes.Repeat([]byte{9}, 32), now.Add(-time.Minute)
		if err := d.CreateOIDCLogin(ctx, &old); err != nil {
			t.Fatal(err)
		}
		got2, err := d.TakeOIDCLogin(ctx, l.StateHash)
		if err != nil || got2.OrgID != acme.ID || !bytes.Equal(got2.NonceHash, l.NonceHash) || got2.Verifier != "v" || got2.Next != "/account" || !got2.Expires.Equal(l.Expires) {
			t.Fatalf("TakeOIDCLogin = %+v %v", got2, err)
		}
		if _, err := d.TakeOIDCLogin(ctx, l.StateHash); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("second TakeOIDCLogin: %v", err)
		}
		if n, err := d.DeleteExpiredOIDCLogins(ctx, now); err != nil || n != 1 {
			t.Fatalf("DeleteExpiredOIDCLogins = %d %v", n, err)
		}
	})
}
