package db_test

import (
	"context"
	"database/sql"
	"math"
	"path/filepath"
	"testing"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
)

// eachRaw is dbtest.Each with a second, raw connection to the same
// database, to store what Ferry never writes.
func eachRaw(t *testing.T, fn func(t *testing.T, d *db.DB, raw *sql.DB)) {
	open := func(t *testing.T, dsn, driver, rawDSN string) {
		d, err := db.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		raw, err := sql.Open(driver, rawDSN)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Close() })
		fn(t, d, raw)
	}
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "ferry.db")
		open(t, path, "sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := dbtest.PostgresDSN(t)
		open(t, dsn, "pgx", dsn)
	})
}

// TestStoredOutOfRange checks that integers stored out of the range of the
// Go type they are read into (by a damaged or tampered database: Ferry never
// writes them) are refused, not truncated into other values, and that the
// values at the edges of the range still read back.
func TestStoredOutOfRange(t *testing.T) {
	eachRaw(t, func(t *testing.T, d *db.DB, raw *sql.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		org := &ferry.Org{ID: ferry.NewID(nil), Name: "acme", RetentionDays: 30, Created: now}
		if err := d.CreateOrg(ctx, org, ferry.NewID(nil)); err != nil {
			t.Fatal(err)
		}
		root, err := d.FolderByPath(ctx, org.ID, "/")
		if err != nil {
			t.Fatal(err)
		}
		u := &ferry.User{ID: ferry.NewID(nil), OrgID: org.ID, Email: "u@acme.test", Role: ferry.RoleUser, Created: now}
		if err := d.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := d.SetGrant(ctx, ferry.Grant{FolderID: root.ID, UserID: u.ID, Perms: ferry.PermList}); err != nil {
			t.Fatal(err)
		}
		f := &ferry.File{ID: ferry.NewID(nil), OrgID: org.ID, FolderID: root.ID, Name: "a.txt", Size: 3, SHA256: []byte{9}, BlobID: "b1",
			WrappedKey: []byte{1}, KEKID: "k", UploaderID: u.ID, Created: now, Modified: now, Expires: now.Add(time.Hour)}
		if _, _, err := d.PutFile(ctx, f, root.Path); err != nil {
			t.Fatal(err)
		}
		// Not AddPasskey: the row is the point here, not how it is added.
		if _, err := raw.Exec(`INSERT INTO passkeys (id, user_id, credential_id, public_key, attestation_type, attestation_format, transports,
			flags, aaguid, sign_count, name, created, last_used) VALUES ('pk1', $1, $2, $3, 'none', 'none', '', 0, $4, 0, 'laptop', 0, 0)`,
			u.ID, []byte{9, 9, 9}, []byte("cose"), make([]byte, 16)); err != nil {
			t.Fatal(err)
		}

		set := func(t *testing.T, q string, v int64) {
			t.Helper()
			if _, err := raw.Exec(q, v); err != nil {
				t.Fatalf("%s (%d): %v", q, v, err)
			}
		}
		grants := func(t *testing.T) (ferry.Perm, error) {
			t.Helper()
			gs, err := d.GrantsForUser(ctx, u.ID)
			og, oerr := d.GrantsOfOrg(ctx, org.ID)
			if ferry.KindOf(err) != ferry.KindOf(oerr) {
				t.Fatalf("GrantsForUser: %v, but GrantsOfOrg: %v", err, oerr)
			}
			if err != nil {
				return 0, err
			}
			if len(gs) != 1 || len(og) != 1 || og[0].Perms != gs[0].Perms {
				t.Fatalf("GrantsForUser = %+v, GrantsOfOrg = %+v", gs, og)
			}
			return gs[0].Perms, nil
		}
		passkey := func(t *testing.T) (*db.Passkey, error) {
			t.Helper()
			p, err := d.PasskeyByCredentialID(ctx, []byte{9, 9, 9})
			list, lerr := d.PasskeysOf(ctx, u.ID)
			if ferry.KindOf(err) != ferry.KindOf(lerr) || (err == nil && len(list) != 1) {
				t.Fatalf("PasskeyByCredentialID: %v, but PasskeysOf: %d, %v", err, len(list), lerr)
			}
			return p, err
		}

		u8 := struct{ good, bad []int64 }{[]int64{0, math.MaxUint8}, []int64{-1, math.MaxUint8 + 1, 0x100 | int64(ferry.PermAll), math.MinInt32}}
		for _, tc := range []struct {
			name      string
			q         string
			good, bad []int64
			read      func(t *testing.T) (int64, error)
		}{
			{"grant perms", `UPDATE grants SET perms = $1`, u8.good, u8.bad, func(t *testing.T) (int64, error) {
				p, err := grants(t)
				return int64(p), err
			}},
			{"passkey flags", `UPDATE passkeys SET flags = $1`, u8.good, u8.bad, func(t *testing.T) (int64, error) {
				p, err := passkey(t)
				if err != nil {
					return 0, err
				}
				return int64(p.Flags), nil
			}},
			{"passkey sign count", `UPDATE passkeys SET sign_count = $1`,
				[]int64{0, math.MaxUint32}, []int64{-1, math.MaxUint32 + 1, 1<<32 | 5, math.MinInt64}, func(t *testing.T) (int64, error) {
					p, err := passkey(t)
					if err != nil {
						return 0, err
					}
					return int64(p.SignCount), nil
				}},
			{"file size", `UPDATE files SET size = $1`, []int64{0, math.MaxInt64}, []int64{-1, math.MinInt64}, func(t *testing.T) (int64, error) {
				f, err := d.FileByID(ctx, f.ID)
				if err != nil {
					return 0, err
				}
				return f.Size, nil
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				for _, v := range tc.good {
					set(t, tc.q, v)
					if got, err := tc.read(t); err != nil || got != v {
						t.Errorf("stored %d: read %d, %v", v, got, err)
					}
				}
				for _, v := range tc.bad {
					set(t, tc.q, v)
					if got, err := tc.read(t); ferry.KindOf(err) != ferry.Internal {
						t.Errorf("stored %d: read %d, %v; want kind Internal", v, got, err)
					} else {
						t.Logf("stored %d: %v", v, err)
					}
				}
				set(t, tc.q, 1) // valid for every column, for the next case
			})
		}
	})
}
