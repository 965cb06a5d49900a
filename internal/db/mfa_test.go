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

func TestSecondFactors(t *testing.T) {
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
		factors := func(wantTOTP bool, wantKeys int) {
			t.Helper()
			totp, n, err := d.SecondFactors(ctx, u.ID)
			if err != nil || totp != wantTOTP || n != wantKeys {
				t.Fatalf("SecondFactors = %v %d %v, want %v %d", totp, n, err, wantTOTP, wantKeys)
			}
		}
		factors(false, 0)

		// TOTP: pending, replaced while pending, confirmed, then no new pending.
		for _, w := range []string{"first", "second"} {
			if err := d.PutPendingTOTP(ctx, &db.TOTP{UserID: u.ID, Wrapped: []byte(w), KEKID: "file:x:1", Created: now}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := d.TOTPOf(ctx, u.ID)
		if err != nil || string(got.Wrapped) != "second" || got.Confirmed || got.KEKID != "file:x:1" || !got.Created.Equal(now) {
			t.Fatalf("TOTPOf = %+v %v", got, err)
		}
		if ok, _ := d.UseTOTPStep(ctx, u.ID, 5); ok {
			t.Fatal("a pending authenticator accepted a step")
		}
		factors(false, 0)
		hashes := [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)}
		if rec, err := d.ConfirmTOTP(ctx, u.ID, 100, hashes); err != nil || !rec {
			t.Fatalf("ConfirmTOTP = %v %v, want recovery codes stored", rec, err)
		}
		if _, err := d.ConfirmTOTP(ctx, u.ID, 100, hashes); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("second ConfirmTOTP: %v", err)
		}
		factors(true, 0)
		if err := d.PutPendingTOTP(ctx, &db.TOTP{UserID: u.ID, Wrapped: []byte("third"), KEKID: "k", Created: now}); ferry.KindOf(err) != ferry.Exist {
			t.Fatalf("pending over a confirmed one: %v", err)
		}
		// Steps only move forward.
		for _, c := range []struct {
			step int64
			ok   bool
		}{{100, false}, {99, false}, {101, true}, {101, false}, {103, true}, {102, false}} {
			if ok, err := d.UseTOTPStep(ctx, u.ID, c.step); err != nil || ok != c.ok {
				t.Fatalf("UseTOTPStep(%d) = %v %v, want %v", c.step, ok, err, c.ok)
			}
		}
		// Recovery codes: each once.
		if n, err := d.RecoveryCodesLeft(ctx, u.ID); err != nil || n != 2 {
			t.Fatalf("RecoveryCodesLeft = %d %v", n, err)
		}
		for _, c := range []struct {
			hash []byte
			ok   bool
		}{{hashes[0], true}, {hashes[0], false}, {bytes.Repeat([]byte{3}, 32), false}} {
			if ok, err := d.UseRecoveryCode(ctx, u.ID, c.hash, now); err != nil || ok != c.ok {
				t.Fatalf("UseRecoveryCode = %v %v, want %v", ok, err, c.ok)
			}
		}
		if n, _ := d.RecoveryCodesLeft(ctx, u.ID); n != 1 {
			t.Fatalf("RecoveryCodesLeft after use = %d", n)
		}
		if err := d.SetRecoveryCodes(ctx, u.ID, hashes); err != nil {
			t.Fatal(err)
		}
		if n, _ := d.RecoveryCodesLeft(ctx, u.ID); n != 2 {
			t.Fatalf("RecoveryCodesLeft after renewal = %d", n)
		}
		if had, err := d.DeleteTOTP(ctx, u.ID); err != nil || !had {
			t.Fatalf("DeleteTOTP = %v %v", had, err)
		}
		if had, err := d.DeleteTOTP(ctx, u.ID); err != nil || had {
			t.Fatalf("second DeleteTOTP = %v %v", had, err)
		}
		if n, _ := d.RecoveryCodesLeft(ctx, u.ID); n != 0 {
			t.Fatal("recovery codes outlived their authenticator")
		}
		factors(false, 0)

		// Passkeys.
		pk := &db.Passkey{ID: "pk1", UserID: u.ID, CredentialID: []byte{9, 9, 9}, PublicKey: []byte("cose"), AttestationType: "none",
			AttestationFormat: "none", Transports: []string{"internal", "hybrid"}, Flags: 0x1d, AAGUID: make([]byte, 16), SignCount: 4,
			Name: "laptop", Created: now}
		if rec, err := d.AddPasskey(ctx, pk, hashes); err != nil || !rec {
			t.Fatalf("first passkey: AddPasskey = %v %v, want recovery codes stored", rec, err)
		}
		if n, _ := d.RecoveryCodesLeft(ctx, u.ID); n != 2 {
			t.Fatalf("RecoveryCodesLeft after the first passkey = %d", n)
		}
		dup := *pk
		dup.ID = "pk2"
		if _, err := d.AddPasskey(ctx, &dup, hashes); ferry.KindOf(err) != ferry.Exist {
			t.Fatalf("duplicate credential id: %v", err)
		}
		factors(false, 1)
		p, err := d.PasskeyByCredentialID(ctx, []byte{9, 9, 9})
		if err != nil || p.ID != "pk1" || p.SignCount != 4 || p.Flags != 0x1d || len(p.Transports) != 2 || p.Name != "laptop" || !p.LastUsed.IsZero() {
			t.Fatalf("PasskeyByCredentialID = %+v %v", p, err)
		}
		if _, err := d.PasskeyByCredentialID(ctx, []byte{1}); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("unknown credential: %v", err)
		}
		for _, c := range []struct {
			count uint32
			ok    bool
		}{{4, false}, {3, false}, {0, false}, {5, true}} {
			if ok, err := d.UsePasskey(ctx, "pk1", c.count, 0x1d, now); err != nil || ok != c.ok {
				t.Fatalf("UsePasskey(%d) = %v %v, want %v", c.count, ok, err, c.ok)
			}
		}
		if list, err := d.PasskeysOf(ctx, u.ID); err != nil || len(list) != 1 || list[0].SignCount != 5 || !list[0].LastUsed.Equal(now) {
			t.Fatalf("PasskeysOf = %+v %v", list, err)
		}
		// A TOTP authenticator beside the passkey keeps the codes it
		// finds; removing it leaves them to the passkey.
		if err := d.PutPendingTOTP(ctx, &db.TOTP{UserID: u.ID, Wrapped: []byte("w"), KEKID: "k", Created: now}); err != nil {
			t.Fatal(err)
		}
		if rec, err := d.ConfirmTOTP(ctx, u.ID, 1, [][]byte{bytes.Repeat([]byte{4}, 32)}); err != nil || rec {
			t.Fatalf("ConfirmTOTP beside a passkey = %v %v, want the codes kept", rec, err)
		}
		if _, err := d.DeleteTOTP(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		if n, _ := d.RecoveryCodesLeft(ctx, u.ID); n != 2 {
			t.Fatalf("RecoveryCodesLeft after removing TOTP beside a passkey = %d", n)
		}
		if _, err := d.DeletePasskey(ctx, "someone else", "pk1"); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("DeletePasskey of another user: %v", err)
		}
		if rec, err := d.DeletePasskey(ctx, u.ID, "pk1"); err != nil || !rec {
			t.Fatalf("DeletePasskey of the last factor = %v %v, want the recovery codes removed", rec, err)
		}
		if n, _ := d.RecoveryCodesLeft(ctx, u.ID); n != 0 {
			t.Fatal("recovery codes outlived the last second factor")
		}
		factors(false, 0)
		// An authenticator without a counter keeps zero.
		zero := &db.Passkey{ID: "pk3", UserID: u.ID, CredentialID: []byte{7}, PublicKey: []byte("k"), Created: now}
		if _, err := d.AddPasskey(ctx, zero, nil); err != nil {
			t.Fatal(err)
		}
		if ok, err := d.UsePasskey(ctx, "pk3", 0, 0, now); err != nil || !ok {
			t.Fatalf("UsePasskey with a zero counter = %v %v", ok, err)
		}

		// Ceremonies: taken once; expired ones are gone.
		c := &db.Ceremony{IDHash: bytes.Repeat([]byte{5}, 32), Kind: "mfa", UserID: u.ID, SessionID: "s1", Challenge: "abc", RPID: "localhost",
			UserVerification: "preferred", AllowedIDs: [][]byte{{1, 2}, {3}}, Expires: now.Add(time.Minute)}
		if err := d.PutCeremony(ctx, c); err != nil {
			t.Fatal(err)
		}
		got2, err := d.TakeCeremony(ctx, c.IDHash, now)
		if err != nil || got2.Kind != "mfa" || got2.UserID != u.ID || got2.SessionID != "s1" || got2.Challenge != "abc" || got2.RPID != "localhost" ||
			len(got2.AllowedIDs) != 2 || !bytes.Equal(got2.AllowedIDs[0], []byte{1, 2}) || !got2.Expires.Equal(c.Expires) {
			t.Fatalf("TakeCeremony = %+v %v", got2, err)
		}
		if _, err := d.TakeCeremony(ctx, c.IDHash, now); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("ceremony taken twice: %v", err)
		}
		c.AllowedIDs = nil
		if err := d.PutCeremony(ctx, c); err != nil {
			t.Fatal(err)
		}
		if _, err := d.TakeCeremony(ctx, c.IDHash, now.Add(time.Minute)); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("expired ceremony: %v", err)
		}
		c.IDHash = bytes.Repeat([]byte{6}, 32)
		if err := d.PutCeremony(ctx, c); err != nil {
			t.Fatal(err)
		}
		if n, err := d.DeleteExpiredCeremonies(ctx, now.Add(2*time.Minute)); err != nil || n != 1 {
			t.Fatalf("DeleteExpiredCeremonies = %d %v", n, err)
		}
	})
}
