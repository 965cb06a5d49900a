package db_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
)

func TestOutbox(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		m := &db.OutboxMail{ID: ferry.NewID(nil), Kind: "test", Recipients: []string{"a@example.test", "b@example.test"},
			Subject: "hello", Text: "body", HTML: "<p>body</p>", MessageID: "x@example.test", Created: now}
		if err := d.EnqueueMail(ctx, m); err != nil {
			t.Fatal(err)
		}
		got, err := d.Mail(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != db.MailQueued || len(got.Pending) != 2 || got.Text != "body" || got.HTML != "<p>body</p>" || !got.Created.Equal(now) {
			t.Fatalf("stored row = %+v", got)
		}
		if n, _ := d.MailCounts(ctx); n[db.MailQueued] != 1 {
			t.Fatalf("counts = %v", n)
		}

		// Claimed by one owner, not by a second one while the lease runs.
		rows, err := d.ClaimMail(ctx, "node-a", now, now.Add(time.Minute), 10)
		if err != nil || len(rows) != 1 || rows[0].ID != m.ID {
			t.Fatalf("claim: %v %v", rows, err)
		}
		if rows, _ := d.ClaimMail(ctx, "node-b", now.Add(30*time.Second), now.Add(2*time.Minute), 10); len(rows) != 0 {
			t.Fatalf("second owner claimed a leased row")
		}
		// Progress by a non-owner is refused.
		if ok, err := d.MailProgress(ctx, m.ID, "node-b", nil, nil, now.Add(time.Minute)); ok || err != nil {
			t.Fatalf("progress by non-owner: %v %v", ok, err)
		}
		if ok, err := d.MailProgress(ctx, m.ID, "node-a", []string{"b@example.test"}, nil, now.Add(time.Minute)); !ok || err != nil {
			t.Fatalf("progress: %v %v", ok, err)
		}
		// Released (shutdown): claimable again at once, no attempt counted.
		if err := d.ReleaseMail(ctx, m.ID, "node-a"); err != nil {
			t.Fatal(err)
		}
		if rows, _ := d.ClaimMail(ctx, "node-a", now, now.Add(time.Minute), 10); len(rows) != 1 || rows[0].Attempts != 0 {
			t.Fatalf("after release: %+v", rows)
		}
		next := now.Add(time.Hour)
		if err := d.RetryMail(ctx, m.ID, "node-a", "421 try later", next); err != nil {
			t.Fatal(err)
		}
		if due, _ := d.NextMailDue(ctx); !due.Equal(next) {
			t.Fatalf("next due = %v, want %v", due, next)
		}
		// Not due yet.
		if rows, _ := d.ClaimMail(ctx, "node-b", now.Add(time.Minute), now.Add(2*time.Minute), 10); len(rows) != 0 {
			t.Fatalf("claimed a row before it was due")
		}
		rows, _ = d.ClaimMail(ctx, "node-b", next, next.Add(time.Minute), 10)
		if len(rows) != 1 || rows[0].Attempts != 1 || len(rows[0].Pending) != 1 || rows[0].Pending[0] != "b@example.test" || rows[0].LastError != "421 try later" {
			t.Fatalf("reclaimed = %+v", rows)
		}
		// The old owner lost the row.
		if err := d.FinishMail(ctx, m.ID, "node-a", db.MailSent, "", next); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("finish by old owner: %v", err)
		}
		if err := d.FinishMail(ctx, m.ID, "node-b", db.MailSent, "", next); err != nil {
			t.Fatal(err)
		}
		if n, _ := d.MailCounts(ctx); n[db.MailQueued] != 0 || n[db.MailSent] != 1 {
			t.Fatalf("counts = %v", n)
		}
		recent, err := d.RecentMail(ctx, 10)
		if err != nil || len(recent) != 1 || recent[0].Text != "" || recent[0].Subject != "hello" {
			t.Fatalf("recent = %+v, %v", recent, err)
		}
		// Purged after the keep time, not before.
		if n, _ := d.PurgeMail(ctx, next); n != 0 {
			t.Fatalf("purged %d rows too early", n)
		}
		if n, _ := d.PurgeMail(ctx, next.Add(time.Second)); n != 1 {
			t.Fatalf("purged %d rows, want 1", n)
		}
	})
}

// TestOutboxClaimLimit: a claim takes at most the number of rows asked
// for, oldest first, and the next claim the next ones.
func TestOutboxClaimLimit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		var ids []string
		for i := 0; i < 5; i++ {
			id := ferry.NewID(nil)
			ids = append(ids, id)
			if err := d.EnqueueMail(ctx, &db.OutboxMail{ID: id, Kind: "test", Recipients: []string{"a@example.test"},
				Subject: "s", Text: "t", MessageID: "m", Created: now.Add(time.Duration(i) * time.Second)}); err != nil {
				t.Fatal(err)
			}
		}
		at := now.Add(time.Minute)
		for i, want := range [][]string{{ids[0]}, {ids[1], ids[2]}, {ids[3], ids[4]}, nil} {
			got, err := d.ClaimMail(ctx, "o", at, at.Add(time.Hour), []int{1, 2, 2, 1}[i])
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("claim %d: %d rows, want %d", i, len(got), len(want))
			}
			for _, m := range got {
				if m.ID != want[0] && m.ID != want[len(want)-1] {
					t.Fatalf("claim %d took %s, want %v", i, m.ID, want)
				}
			}
		}
	})
}

// TestOutboxClaimRace: many claimers at once on many due rows; every row is
// claimed exactly once.
func TestOutboxClaimRace(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		now := time.Now().UTC()
		const rows = 40
		for i := 0; i < rows; i++ {
			if err := d.EnqueueMail(ctx, &db.OutboxMail{ID: ferry.NewID(nil), Kind: "test", Recipients: []string{"a@example.test"},
				Subject: "s", Text: "t", MessageID: "m", Created: now}); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				owner := ferry.NewID(nil)
				for {
					got, err := d.ClaimMail(ctx, owner, now, now.Add(time.Hour), 3)
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, m := range got {
						seen[m.ID]++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(seen) != rows {
			t.Fatalf("claimed %d distinct rows, want %d", len(seen), rows)
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("row %s claimed %d times", id, n)
			}
		}
	})
}
