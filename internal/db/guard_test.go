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

// TestGuardTables exercises every query of guard.go on both engines.
func TestGuardTables(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		org := &ferry.Org{ID: ferry.NewID(nil), Name: "acme", RetentionDays: 30, Created: now}
		if err := d.CreateOrg(ctx, org, ferry.NewID(nil)); err != nil {
			t.Fatal(err)
		}
		for _, u := range []*ferry.User{
			{ID: ferry.NewID(nil), OrgID: org.ID, Email: "b-admin@acme.test", Role: ferry.RoleAdmin, Created: now},
			{ID: ferry.NewID(nil), OrgID: org.ID, Email: "a-admin@acme.test", Role: ferry.RoleAdmin, Created: now},
			{ID: ferry.NewID(nil), OrgID: org.ID, Email: "user@acme.test", Role: ferry.RoleUser, ServerAdmin: true, Created: now},
		} {
			if err := d.CreateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := d.AdminEmails(ctx, org.ID); err != nil || len(got) != 2 || got[0] != "a-admin@acme.test" {
			t.Fatalf("org admins %v, %v", got, err)
		}
		if got, err := d.AdminEmails(ctx, ""); err != nil || len(got) != 1 || got[0] != "user@acme.test" {
			t.Fatalf("server admins %v, %v", got, err)
		}

		// Policy.
		if _, err := d.GuardPolicy(ctx, org.ID); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("no policy: %v", err)
		}
		p := &db.GuardPolicy{OrgID: org.ID, Window: 10 * time.Minute, MaxFiles: 180, MaxBytes: 1 << 40, AddrMaxFiles: 400, OrgMaxFiles: 2000, PeakFactor: 10, Updated: now}
		for _, monitor := range []bool{false, true} {
			p.Monitor = monitor
			if err := d.SetGuardPolicy(ctx, p); err != nil {
				t.Fatal(err)
			}
			got, err := d.GuardPolicy(ctx, org.ID)
			if err != nil || *got != *p {
				t.Fatalf("policy %+v, %v; want %+v", got, err, p)
			}
		}

		// Freezes.
		f := &db.GuardFreeze{Subject: "user:u1", OrgID: org.ID, UserID: "u1", Name: "u1@acme.test", Reason: "limit", Detail: "181 files", Frozen: now}
		for i, want := range []bool{true, false} {
			if created, err := d.PutGuardFreeze(ctx, f); err != nil || created != want {
				t.Fatalf("freeze %d: %v %v", i, created, err)
			}
		}
		if frs, err := d.GuardFreezes(ctx, org.ID); err != nil || len(frs) != 1 || *frs[0] != *f {
			t.Fatalf("freezes %+v %v", frs, err)
		}
		if frs, _ := d.GuardFreezes(ctx, ""); len(frs) != 1 {
			t.Fatalf("all freezes %d", len(frs))
		}
		if err := d.DeleteGuardFreeze(ctx, f.Subject); err != nil {
			t.Fatal(err)
		}
		if err := d.DeleteGuardFreeze(ctx, f.Subject); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("second unfreeze: %v", err)
		}

		// Canaries.
		if err := d.PutGuardCanary(ctx, &db.GuardCanary{FileID: "gone", OrgID: org.ID, Created: now, CreatedBy: "op"}); err != nil {
			t.Fatal(err)
		}
		if ids, err := d.GuardCanaryIDs(ctx); err != nil || len(ids) != 1 {
			t.Fatalf("canary ids %v %v", ids, err)
		}
		if files, _, err := d.GuardCanaryFiles(ctx, org.ID); err != nil || len(files) != 0 {
			t.Fatalf("a canary without its file is listed: %v %v", files, err)
		}
		if err := d.DeleteGuardCanary(ctx, "gone"); err != nil {
			t.Fatal(err)
		}
		if err := d.DeleteGuardCanary(ctx, "gone"); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("second unmark: %v", err)
		}

		// Peaks: the highest per day, old days forgotten.
		for _, r := range []struct {
			day  int64
			peak int
		}{{100, 5}, {101, 9}, {101, 3}, {140, 7}} {
			if err := d.RaiseGuardPeak(ctx, "user:u1", r.day, r.peak, r.day-30); err != nil {
				t.Fatal(err)
			}
		}
		if peak, days, err := d.GuardPeak(ctx, "user:u1", 0); err != nil || peak != 7 || days != 1 {
			t.Fatalf("peak %d over %d days, %v; want 7 over 1 (days before 110 dropped)", peak, days, err)
		}

		// Seen address prefixes.
		for i, want := range []struct{ isNew, hadAny bool }{{true, false}, {false, true}} {
			isNew, hadAny, err := d.SeeGuardAddr(ctx, "u1", "10.0.0.0/24", now)
			if err != nil || isNew != want.isNew || hadAny != want.hadAny {
				t.Fatalf("see %d: %v %v %v", i, isNew, hadAny, err)
			}
		}
		if isNew, hadAny, _ := d.SeeGuardAddr(ctx, "u1", "192.0.2.0/24", now); !isNew || !hadAny {
			t.Fatal("a second prefix is not new after another")
		}

		// Webhook and outbox.
		if _, err := d.GuardWebhookOf(ctx, org.ID); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("no webhook: %v", err)
		}
		w := &db.GuardWebhook{OrgID: org.ID, URL: "https://siem.example/x", Secret: "0123456789abcdef", Updated: now}
		if err := d.SetGuardWebhook(ctx, w); err != nil {
			t.Fatal(err)
		}
		if got, err := d.GuardWebhookOf(ctx, org.ID); err != nil || *got != *w {
			t.Fatalf("webhook %+v %v", got, err)
		}
		it := &db.GuardOutboxItem{ID: "d1", OrgID: org.ID, Body: []byte(`{"alert":"freeze"}`), Created: now, NextTry: now}
		if err := d.AddGuardOutbox(ctx, it); err != nil {
			t.Fatal(err)
		}
		due, err := d.DueGuardOutbox(ctx, now, 10)
		if err != nil || len(due) != 1 || !bytes.Equal(due[0].Body, it.Body) {
			t.Fatalf("due %+v %v", due, err)
		}
		lease := now.Add(time.Minute)
		for i, want := range []bool{true, false} {
			if ok, err := d.ClaimGuardOutbox(ctx, "d1", now, lease); err != nil || ok != want {
				t.Fatalf("claim %d: %v %v", i, ok, err)
			}
		}
		if due, _ := d.DueGuardOutbox(ctx, now, 10); len(due) != 0 {
			t.Fatal("a claimed item is still due")
		}
		if err := d.FinishGuardOutbox(ctx, "d1", 1, now, now, ""); err != nil {
			t.Fatal(err)
		}
		if due, _ := d.DueGuardOutbox(ctx, now.Add(time.Hour), 10); len(due) != 0 {
			t.Fatal("a delivered item is due again")
		}
		if items, err := d.GuardOutbox(ctx, org.ID, 10); err != nil || len(items) != 1 || items[0].Delivered.IsZero() || items[0].Attempts != 1 {
			t.Fatalf("outbox %+v %v", items, err)
		}
		if err := d.DeleteGuardWebhook(ctx, org.ID); err != nil {
			t.Fatal(err)
		}

		// Cursor: created once, moved only from where it is.
		if _, err := d.GuardCursor(ctx, "alerts"); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("no cursor: %v", err)
		}
		for i, c := range []struct {
			was, to int64
			create  bool
			want    bool
		}{{0, 5, true, true}, {0, 9, true, false}, {4, 9, false, false}, {5, 9, false, true}} {
			if ok, err := d.MoveGuardCursor(ctx, "alerts", c.was, c.to, c.create); err != nil || ok != c.want {
				t.Fatalf("move %d: %v %v", i, ok, err)
			}
		}
		if seq, err := d.GuardCursor(ctx, "alerts"); err != nil || seq != 9 {
			t.Fatalf("cursor %d %v", seq, err)
		}
		if err := d.GuardAlerts(ctx, 0, 100, func(*db.AuditRow) error { return nil }); err != nil {
			t.Fatal(err)
		}
	})
}
