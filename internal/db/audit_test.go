package db_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
)

func TestAudit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		if n, err := d.AuditSize(ctx); err != nil || n != 0 {
			t.Fatalf("AuditSize of empty log = %d, %v", n, err)
		}
		if _, err := d.LatestAuditCheckpoint(ctx); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("LatestAuditCheckpoint of empty log: %v, want NotExist", err)
		}
		actors := []string{"a@x.test", "b@x.test"}
		actions := []string{"file.read", "file.write", "user.create"}
		var recs []db.AuditRow
		var hashes []db.AuditHash
		for i := range int64(10) {
			recs = append(recs, db.AuditRow{
				Seq: i, Time: t0.Add(time.Duration(i) * time.Minute),
				Action: actions[i%3], Actor: actors[i%2],
				Org: "acme", OrgID: "o1", Party: "Globex", PartyID: fmt.Sprint("p", i%2),
				Path: fmt.Sprintf("/clients/c%d/f", i%4),
				Data: fmt.Appendf(nil, `{"seq":%d}`, i),
			})
			hashes = append(hashes, db.AuditHash{Index: 2 * i, Hash: []byte{byte(i)}}, db.AuditHash{Index: 2*i + 1, Hash: []byte{byte(i), 1}})
		}
		if err := d.AuditAppend(ctx, 0, recs[:4], hashes[:8]); err != nil {
			t.Fatal(err)
		}
		// A second writer that believes the log is shorter (or longer) loses.
		for _, first := range []int64{0, 3, 5} {
			err := d.AuditAppend(ctx, first, []db.AuditRow{{Seq: first, Data: []byte("{}")}}, nil)
			if ferry.KindOf(err) != ferry.Exist {
				t.Fatalf("AuditAppend at %d over 4 records: %v, want Exist", first, err)
			}
		}
		if err := d.AuditAppend(ctx, 4, recs[5:], nil); ferry.KindOf(err) != ferry.Invalid {
			t.Fatalf("AuditAppend with a gap: %v, want Invalid", err)
		}
		if err := d.AuditAppend(ctx, 4, recs[4:], hashes[8:]); err != nil {
			t.Fatal(err)
		}
		if n, err := d.AuditSize(ctx); err != nil || n != 10 {
			t.Fatalf("AuditSize = %d, %v, want 10", n, err)
		}

		hs, err := d.AuditHashes(ctx, []int64{19, 0, 7})
		if err != nil || !bytes.Equal(hs[0], []byte{9, 1}) || !bytes.Equal(hs[1], []byte{0}) || !bytes.Equal(hs[2], []byte{3, 1}) {
			t.Fatalf("AuditHashes = %v, %v", hs, err)
		}
		if _, err := d.AuditHashes(ctx, []int64{20}); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("AuditHashes(missing): %v, want NotExist", err)
		}
		var idx []int64
		err = d.AuditHashRange(ctx, 5, 9, func(i int64, h []byte) error { idx = append(idx, i); return nil })
		if err != nil || !slices.Equal(idx, []int64{5, 6, 7, 8}) {
			t.Fatalf("AuditHashRange = %v, %v", idx, err)
		}

		var seqs []int64
		err = d.AuditScan(ctx, 3, 7, func(r *db.AuditRow) error {
			want := recs[r.Seq]
			if !r.Time.Equal(want.Time) || r.Actor != want.Actor || r.Path != want.Path || !bytes.Equal(r.Data, want.Data) {
				return fmt.Errorf("row %d = %+v, want %+v", r.Seq, r, want)
			}
			seqs = append(seqs, r.Seq)
			return nil
		})
		if err != nil || !slices.Equal(seqs, []int64{3, 4, 5, 6}) {
			t.Fatalf("AuditScan = %v, %v", seqs, err)
		}

		for _, tc := range []struct {
			name string
			f    db.AuditFilter
			want []int64
		}{
			{"all", db.AuditFilter{}, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
			{"actor", db.AuditFilter{Actor: "b@x.test"}, []int64{1, 3, 5, 7, 9}},
			{"actor+time", db.AuditFilter{Actor: "b@x.test", Since: t0.Add(3 * time.Minute), Until: t0.Add(7 * time.Minute)}, []int64{3, 5}},
			{"time", db.AuditFilter{Since: t0.Add(8 * time.Minute)}, []int64{8, 9}},
			{"until", db.AuditFilter{Until: t0.Add(2 * time.Minute)}, []int64{0, 1}},
			{"action", db.AuditFilter{Action: "file.read"}, []int64{0, 3, 6, 9}},
			{"action prefix", db.AuditFilter{ActionPrefix: "file."}, []int64{0, 1, 3, 4, 6, 7, 9}},
			{"org name", db.AuditFilter{Org: "acme", Actor: "a@x.test"}, []int64{0, 2, 4, 6, 8}},
			{"org id", db.AuditFilter{Org: "o1", Until: t0.Add(time.Minute)}, []int64{0}},
			{"other org", db.AuditFilter{Org: "o2"}, nil},
			{"party id", db.AuditFilter{Party: "p1", Action: "file.write"}, []int64{1, 7}},
			{"party name", db.AuditFilter{Party: "Globex", Since: t0.Add(9 * time.Minute)}, []int64{9}},
			{"path prefix", db.AuditFilter{PathPrefix: "/clients/c1"}, []int64{1, 5, 9}},
			{"path prefix%", db.AuditFilter{PathPrefix: "/clients/c%"}, nil},
		} {
			var got []int64
			if err := d.AuditQuery(ctx, tc.f, func(r *db.AuditRow) error { got = append(got, r.Seq); return nil }); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
			}
		}

		for _, c := range []db.AuditCheckpoint{{4, t0, "four"}, {10, t0.Add(time.Hour), "ten"}, {7, t0, "seven"}, {10, t0.Add(2 * time.Hour), "ten again"}} {
			if err := d.SaveAuditCheckpoint(ctx, &c); err != nil {
				t.Fatal(err)
			}
		}
		c, err := d.LatestAuditCheckpoint(ctx)
		if err != nil || c.Size != 10 || c.Note != "ten again" || !c.Time.Equal(t0.Add(2*time.Hour)) {
			t.Fatalf("LatestAuditCheckpoint = %+v, %v", c, err)
		}
	})
}
