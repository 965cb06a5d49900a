package db_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
)

func TestRemoteKey(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want: the address RemoteKey encodes, "" for none
	}{
		{"203.0.113.7", "::ffff:203.0.113.7"},
		{"203.0.113.7:51234", "::ffff:203.0.113.7"},
		{"[2001:db8::1]:22", "2001:db8::1"},
		{"2001:db8::1", "2001:db8::1"},
		{"fe80::1%eth0", "fe80::1"},
		{"unix", ""},
		{"system", ""},
		{"", ""},
		{"203.0.113.999", ""},
	} {
		k := db.RemoteKey(tc.in)
		if k == nil {
			t.Fatalf("RemoteKey(%q) = nil", tc.in)
		}
		if tc.want == "" {
			if len(k) != 0 {
				t.Errorf("RemoteKey(%q) = %x, want empty", tc.in, k)
			}
			continue
		}
		want := netip.MustParseAddr(tc.want).As16()
		if !bytes.Equal(k, want[:]) {
			t.Errorf("RemoteKey(%q) = %x, want %x", tc.in, k, want)
		}
	}
	lo, hi := db.PrefixRange(netip.MustParsePrefix("203.0.113.0/24"))
	for _, tc := range []struct {
		addr string
		in   bool
	}{{"203.0.113.0", true}, {"203.0.113.255:9", true}, {"203.0.112.255", false}, {"203.0.114.0", false}, {"2001:db8::1", false}} {
		k := db.RemoteKey(tc.addr)
		got := bytes.Compare(k, lo) >= 0 && bytes.Compare(k, hi) <= 0
		if got != tc.in {
			t.Errorf("%s in 203.0.113.0/24 range = %v, want %v", tc.addr, got, tc.in)
		}
	}
}

// readRows is a small log: reads and other actions by several actors,
// tokens, sessions and addresses.
func readRows(t0 time.Time) []db.AuditRow {
	type r struct {
		action, actor, org, party, token, session, remote string
	}
	spec := []r{
		{"file.read", "a@x.test", "o1", "p1", "tokA", "", "203.0.113.7:4000"},       // 0
		{"file.write", "a@x.test", "o1", "p1", "tokA", "", "203.0.113.7:4000"},      // 1: not a read
		{"file.read", "b@x.test", "o1", "p2", "", "sessB", "203.0.113.99"},          // 2
		{"file.read", "b@x.test", "o1", "", "", "sessB", "198.51.100.1"},            // 3
		{"file.read", "c@y.test", "o2", "p3", "tokC", "", "[2001:db8::5]:22"},       // 4
		{"user.create", "c@y.test", "o2", "", "tokC", "", "2001:db8::5"},            // 5
		{"file.read", "a@x.test", "o1", "p2", "tokA", "", "203.0.114.1"},            // 6
		{"file.read", "share:abc", "o1", "p1", "", "", "unix"},                      // 7
		{"file.read", "a@x.test", "o1", "p1", "tokA", "", "203.0.113.7:4001"},       // 8: outside the time window below
		{"auth.login", "b@x.test", "o1", "", "", "sessB", "203.0.113.99"},           // 9
		{"file.read", "b@x.test", "o1", "p1", "", "sessB", "203.0.113.99"},          // 10
		{"file.read", "d@x.test", "o1", "p1", "", "sessD", "203.0.113.100"},         // 11
		{"file.read", "b@x.test", "o1", "p1", "", "sessB", "203.0.113.99"},          // 12
		{"file.read", "e@x.test", "o1", "p1", "tokE", "", "system"},                 // 13
		{"file.read", "e@x.test", "o1", "p1", "", "", ""},                           // 14
		{"file.read", "a@x.test", "o1", "p1", "tokA", "", "2001:db8:0:1::7"},        // 15
		{"file.read", "a@x.test", "o1", "p1", "tokA", "", "[2001:db8:0:2::7]:1234"}, // 16
	}
	var out []db.AuditRow
	for i, s := range spec {
		tm := t0.Add(time.Duration(i) * time.Minute)
		if i == 8 {
			tm = t0.Add(-time.Hour)
		}
		out = append(out, db.AuditRow{
			Seq: int64(i), Time: tm, Action: s.action, Actor: s.actor, Org: "org-" + s.org, OrgID: s.org,
			Party: s.party, PartyID: s.party, Path: fmt.Sprintf("/f%d", i),
			Data: fmt.Appendf(nil, `{"seq":%d}`, i), Token: s.token, Session: s.session, RemoteIP: db.RemoteKey(s.remote),
		})
	}
	return out
}

func TestAuditReads(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		rows := readRows(t0)
		if err := d.AuditAppend(ctx, 0, rows, nil); err != nil {
			t.Fatal(err)
		}
		window := func(f db.ImpactFilter) db.ImpactFilter {
			f.Since, f.Until = t0, t0.Add(time.Hour)
			return f
		}
		for _, tc := range []struct {
			name string
			f    db.ImpactFilter
			want []int64
		}{
			{"everything", db.ImpactFilter{}, []int64{8, 0, 2, 3, 4, 6, 7, 10, 11, 12, 13, 14, 15, 16}},
			{"window", window(db.ImpactFilter{}), []int64{0, 2, 3, 4, 6, 7, 10, 11, 12, 13, 14, 15, 16}},
			{"actor", window(db.ImpactFilter{Actor: "a@x.test"}), []int64{0, 6, 15, 16}},
			{"actor all time", db.ImpactFilter{Actor: "a@x.test"}, []int64{8, 0, 6, 15, 16}},
			{"token", window(db.ImpactFilter{Token: "tokA"}), []int64{0, 6, 15, 16}},
			{"session", window(db.ImpactFilter{Session: "sessB"}), []int64{2, 3, 10, 12}},
			{"org", window(db.ImpactFilter{OrgID: "o2"}), []int64{4}},
			{"/32", window(cidr("203.0.113.99/32")), []int64{2, 10, 12}},
			{"/24", window(cidr("203.0.113.0/24")), []int64{0, 2, 10, 11, 12}},
			{"/16", window(cidr("203.0.0.0/16")), []int64{0, 2, 6, 10, 11, 12}},
			{"v6 /64", window(cidr("2001:db8::/64")), []int64{4}},
			{"v6 /48", window(cidr("2001:db8::/48")), []int64{4, 15, 16}},
			{"actor and /24", window(withCIDR(db.ImpactFilter{Actor: "a@x.test"}, "203.0.113.0/24")), []int64{0}},
			{"session and actor", window(db.ImpactFilter{Session: "sessB", Actor: "nobody"}), nil},
			{"before", db.ImpactFilter{Before: 4}, []int64{0, 2, 3}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var got []int64
				if err := d.AuditReads(ctx, tc.f, func(r *db.AuditRow) error {
					got = append(got, r.Seq)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("got records %v, want %v", got, tc.want)
				}
			})
		}
	})
}

func cidr(s string) db.ImpactFilter { return withCIDR(db.ImpactFilter{}, s) }

func withCIDR(f db.ImpactFilter, s string) db.ImpactFilter {
	f.IPLo, f.IPHi = db.PrefixRange(netip.MustParsePrefix(s))
	return f
}

// TestAuditReadsUseIndexes asks each engine for its plan of every form of the
// impact query: each must search an index, never scan the table.
func TestAuditReadsUseIndexes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		// Enough rows, of enough distinct actors, tokens, sessions and
		// addresses, that the engines' statistics favour the indexes.
		rows := readRows(t0)
		for i := len(rows); i < 3000; i++ {
			rows = append(rows, db.AuditRow{Seq: int64(i), Time: t0.Add(time.Duration(i) * time.Minute), Action: []string{"file.read", "file.write", "auth.login"}[i%3],
				Actor: fmt.Sprintf("u%d@x.test", i%300), OrgID: fmt.Sprint("o", i%7), PartyID: fmt.Sprint("p", i%50), Data: []byte("{}"),
				Token: fmt.Sprint("t", i%400), Session: fmt.Sprint("s", i%500), RemoteIP: db.RemoteKey(fmt.Sprintf("10.%d.%d.%d", i%5, i%200, i%251))})
		}
		if err := d.AuditAppend(ctx, 0, rows, nil); err != nil {
			t.Fatal(err)
		}
		week := func(f db.ImpactFilter) db.ImpactFilter { // an hour of the two days
			f.Since, f.Until, f.Before = t0, t0.Add(time.Hour), 1<<40
			return f
		}
		for name, f := range map[string]db.ImpactFilter{
			"actor":   week(db.ImpactFilter{Actor: "a@x.test"}),
			"token":   week(db.ImpactFilter{Token: "tokA"}),
			"session": week(db.ImpactFilter{Session: "sessB"}),
			"ip":      week(cidr("203.0.113.0/24")),
			"org":     week(db.ImpactFilter{OrgID: "o1"}),
			"time":    week(db.ImpactFilter{}),
		} {
			plan, err := d.ExplainAuditReads(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			text := strings.Join(plan, "\n")
			t.Logf("%s:\n%s", name, text)
			if d.Dialect() == db.SQLite {
				// The index made for the filter, searched (not SCANned).
				want := "SEARCH audit_records USING INDEX audit_reads_" + name + " ("
				for _, l := range plan {
					if strings.Contains(l, "audit_records") && !strings.HasPrefix(l, want) {
						t.Errorf("%s: plan step %q, want %q…", name, l, want)
					}
				}
				if !strings.Contains(text, want) {
					t.Errorf("%s: the plan does not search audit_reads_%s:\n%s", name, name, text)
				}
			} else {
				// PostgreSQL picks among the read indexes by its
				// statistics (an hour of one organisation may go by
				// time): any of them, searched with a condition.
				if strings.Contains(text, "Seq Scan") || !strings.Contains(text, "audit_reads_") || !strings.Contains(text, "Index Cond") {
					t.Errorf("%s: the plan does not search a read index:\n%s", name, text)
				}
			}
		}
	})
}

func TestImpactDrafts(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		ds := []*db.ImpactDraft{
			{ID: "d1", Report: "r1", OrgID: "o1", PartyID: "p1", Party: "Globex", Recipients: []string{"a@globex.test", "b@globex.test"},
				Subject: "s1", Body: "b1", Checkpoint: 10, Created: now, CreatedBy: "operator"},
			{ID: "d2", Report: "r1", OrgID: "o2", PartyID: "p2", Party: "Initech", Recipients: []string{"c@initech.test"},
				Subject: "s2", Body: "b2", Checkpoint: 10, Created: now, CreatedBy: "operator"},
		}
		if err := d.CreateImpactDrafts(ctx, ds); err != nil {
			t.Fatal(err)
		}
		all, err := d.ImpactDrafts(ctx, "", "r1")
		if err != nil || len(all) != 2 {
			t.Fatalf("ImpactDrafts = %d, %v", len(all), err)
		}
		o1, err := d.ImpactDrafts(ctx, "o1", "")
		if err != nil || len(o1) != 1 || o1[0].ID != "d1" || !slices.Equal(o1[0].Recipients, ds[0].Recipients) || o1[0].State != db.DraftOpen {
			t.Fatalf("ImpactDrafts(o1) = %+v, %v", o1, err)
		}
		if err := d.UpdateImpactDraft(ctx, "d1", []string{"x@globex.test"}, "new subject", "new text"); err != nil {
			t.Fatal(err)
		}
		if err := d.MarkImpactDraftSent(ctx, "d1", "admin@x.test", now); err != nil {
			t.Fatal(err)
		}
		if err := d.MarkImpactDraftSent(ctx, "d1", "admin@x.test", now); ferry.KindOf(err) != ferry.Exist {
			t.Fatalf("second send: %v, want Exist", err)
		}
		if err := d.UpdateImpactDraft(ctx, "d1", nil, "late", "late"); ferry.KindOf(err) != ferry.Exist {
			t.Fatalf("edit after send: %v, want Exist", err)
		}
		x, err := d.ImpactDraftByID(ctx, "d1")
		if err != nil || x.State != db.DraftSent || x.Subject != "new subject" || x.SentBy != "admin@x.test" || !x.Sent.Equal(now) ||
			!slices.Equal(x.Recipients, []string{"x@globex.test"}) {
			t.Fatalf("ImpactDraftByID = %+v, %v", x, err)
		}
		if _, err := d.ImpactDraftByID(ctx, "nope"); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("missing draft: %v", err)
		}
	})
}
