package audit_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
)

// impactEvent is a read (every other one) or a write, by one of three
// actors with their own token, session or address.
func impactEvent(i int) *ferry.Event {
	ev := &ferry.Event{
		Time: t0.Add(time.Duration(i) * time.Second), Action: []string{"file.read", "file.write"}[i%2], Outcome: ferry.OutcomeOK,
		Org: "acme", OrgID: "org1", Object: fmt.Sprintf("f%d", i%5), SHA256: strings.Repeat(fmt.Sprint(i%5), 64),
		Path: fmt.Sprintf("/p%d/file%d", i%5%3, i%5), Bytes: int64(100 * (i%5 + 1)),
	}
	if p := i % 5 % 3; p < 2 {
		ev.PartyID, ev.Party = fmt.Sprint("party", p), fmt.Sprint("Party ", p)
	}
	switch i % 3 {
	case 0:
		ev.Actor, ev.Token, ev.Remote, ev.Protocol = "api@acme.test", "tok-api", "203.0.113.10", "https"
	case 1:
		ev.Actor, ev.Session, ev.Remote, ev.Protocol = "web@acme.test", "sess-web", "203.0.113.77", "https"
	default:
		ev.Actor, ev.Remote, ev.Protocol = "sftp@acme.test", "[2001:db8::9]:2222", "sftp"
	}
	return ev
}

// oldSchema creates the tables of every migration before 0012 through a raw
// connection, as a server of the previous version left them.
func oldSchema(t *testing.T, raw *sql.DB, dialect string) {
	t.Helper()
	dir := filepath.Join("..", "db", "migrations", dialect)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".sql") && e.Name() < "0012" {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	mustExec(t, raw, `CREATE TABLE schema_migrations (version TEXT PRIMARY KEY, applied BIGINT NOT NULL)`)
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		for _, stmt := range strings.Split(string(b), ";\n") {
			if s := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(stmt), ";")); s != "" {
				mustExec(t, raw, s)
			}
		}
		mustExec(t, raw, `INSERT INTO schema_migrations (version, applied) VALUES ($1, 0)`, strings.TrimSuffix(n, ".sql"))
	}
}

func mustExec(t *testing.T, raw *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := raw.Exec(q, args...); err != nil {
		t.Fatalf("%.80s: %v", q, err)
	}
}

// copyLog copies the audit tables' pre-0012 columns from one database to
// another.
func copyLog(t *testing.T, from, to *sql.DB) {
	t.Helper()
	for _, c := range []struct{ sel, ins string }{
		{`SELECT seq, time, action, actor, org, org_id, party, party_id, path, data FROM audit_records ORDER BY seq`,
			`INSERT INTO audit_records (seq, time, action, actor, org, org_id, party, party_id, path, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`},
		{`SELECT idx, hash FROM audit_hashes ORDER BY idx`, `INSERT INTO audit_hashes (idx, hash) VALUES ($1, $2)`},
		{`SELECT size, time, note FROM audit_checkpoints ORDER BY size`, `INSERT INTO audit_checkpoints (size, time, note) VALUES ($1, $2, $3)`},
	} {
		rows, err := from.Query(c.sel)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var all [][]any
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			all = append(all, vals)
		}
		rows.Close()
		for _, v := range all {
			mustExec(t, to, c.ins, v...)
		}
	}
}

// TestImpactBackfill writes a log, moves it into a database of the schema
// before migration 0012 (no token, session or address columns), opens that
// database (which migrates it) and checks that the impact filters find the
// old records, that the log's hashes did not change, and that it verifies.
func TestImpactBackfill(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		l := e.open(t)
		const n = 60
		fill := make([]*ferry.Event, n)
		for i := range fill {
			fill[i] = impactEvent(i)
		}
		if err := l.AppendBatch(ctx, fill); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		size, root := treeHash(t, e.d)

		// The old database.
		var oldDSN, driver, rawDSN, dialect string
		if e.postgres {
			oldDSN = dbtest.PostgresDSN(t)
			driver, rawDSN, dialect = "pgx", oldDSN, "postgres"
		} else {
			oldDSN = filepath.Join(t.TempDir(), "old.db")
			driver, rawDSN, dialect = "sqlite", "file:"+oldDSN+"?_pragma=busy_timeout(10000)", "sqlite"
		}
		raw, err := sql.Open(driver, rawDSN)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		oldSchema(t, raw, dialect)
		copyLog(t, e.raw, raw)
		var nulls int
		if err := raw.QueryRow(`SELECT COUNT(*) FROM audit_records`).Scan(&nulls); err != nil || nulls != n {
			t.Fatalf("old log holds %d records (%v)", nulls, err)
		}

		d, err := db.Open(ctx, oldDSN) // applies 0012
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if err := raw.QueryRow(`SELECT COUNT(*) FROM audit_records WHERE remote_ip IS NULL`).Scan(&nulls); err != nil || nulls != n {
			t.Fatalf("%d records await the backfill (%v), want %d", nulls, err, n)
		}
		all := audit.ImpactScope{From: t0, To: t0.Add(time.Hour)}
		with := func(f func(*audit.ImpactScope)) audit.ImpactScope { s := all; f(&s); return s }
		for _, tc := range []struct {
			name  string
			scope audit.ImpactScope
			want  int64 // reads
			who   []string
		}{
			{"token", with(func(s *audit.ImpactScope) { s.Token = "tok-api" }), 10, []string{"api@acme.test"}},
			{"session", with(func(s *audit.ImpactScope) { s.Session = "sess-web" }), 10, []string{"web@acme.test"}},
			{"/32", with(func(s *audit.ImpactScope) { s.CIDR = netip.MustParsePrefix("203.0.113.77/32") }), 10, []string{"web@acme.test"}},
			{"/24", with(func(s *audit.ImpactScope) { s.CIDR = netip.MustParsePrefix("203.0.113.0/24") }), 20, []string{"api@acme.test", "web@acme.test"}},
			{"v6 /64", with(func(s *audit.ImpactScope) { s.CIDR = netip.MustParsePrefix("2001:db8::/64") }), 10, []string{"sftp@acme.test"}},
			{"actor", with(func(s *audit.ImpactScope) { s.Actor = "sftp@acme.test" }), 10, []string{"sftp@acme.test"}},
			{"everything", all, 30, []string{"api@acme.test", "sftp@acme.test", "web@acme.test"}},
		} {
			rep, err := audit.Impact(ctx, d, e.verifier, tc.scope, audit.ImpactOptions{Verify: true})
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			var who []string
			for _, p := range append(slices.Clone(rep.Parties), rep.NoParty) {
				if p != nil {
					who = append(who, p.Actors...)
				}
			}
			slices.Sort(who)
			who = slices.Compact(who)
			if rep.Totals.Reads != tc.want || !slices.Equal(who, tc.who) {
				t.Errorf("%s: %d reads by %v, want %d by %v", tc.name, rep.Totals.Reads, who, tc.want, tc.who)
			}
			if !rep.Check.MatchesLog || rep.Check.Size != n || rep.Verify == nil || !rep.Verify.OK {
				t.Errorf("%s: checkpoint %+v, verification %+v", tc.name, rep.Check, rep.Verify)
			}
		}
		if err := raw.QueryRow(`SELECT COUNT(*) FROM audit_records WHERE remote_ip IS NULL`).Scan(&nulls); err != nil || nulls != 0 {
			t.Fatalf("%d records not backfilled (%v)", nulls, err)
		}
		// The log is the same log: same root, and it verifies.
		if s2, r2 := treeHash(t, d); s2 != size || r2 != root {
			t.Fatalf("after the migration the tree is %d %x, was %d %x", s2, r2, size, root)
		}
		if _, err := audit.Verify(ctx, d, e.verifier, nil, e.checkpointFile(t)); err != nil {
			t.Fatalf("verify after the backfill: %v", err)
		}
		// A column altered to hide a read from a filter fails the
		// verification the report runs.
		e2 := &env{raw: raw}
		e2.exec(t, `UPDATE audit_records SET token = 'tok-other' WHERE seq = 0`)
		rep, err := audit.Impact(ctx, d, e.verifier, all, audit.ImpactOptions{Verify: true})
		if err != nil || rep.Verify == nil || rep.Verify.OK || !strings.Contains(rep.Verify.Problem, "record 0") {
			t.Fatalf("verification of an altered token column: %+v, %v", rep.Verify, err)
		}
		e2.exec(t, `UPDATE audit_records SET token = 'tok-api' WHERE seq = 0`)
		// And new records get the columns on append.
		l2, err := audit.Open(ctx, d, e.signer, e.file, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ev := impactEvent(n) // a read by api@acme.test
		ev.Time = t0.Add(30 * time.Minute)
		if err := l2.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if _, err := l2.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		rep, err = audit.Impact(ctx, d, e.verifier, with(func(s *audit.ImpactScope) { s.Token = "tok-api" }), audit.ImpactOptions{})
		if err != nil || rep.Totals.Reads != 11 {
			t.Fatalf("after an append: %v reads, %v", rep.Totals.Reads, err)
		}
		l2.Close()
		if _, err := audit.Verify(ctx, d, e.verifier, nil, e.checkpointFile(t)); err != nil {
			t.Fatalf("verify after an append: %v", err)
		}
	})
}

// TestImpactReport checks the report's arithmetic: per-file and per-party
// sums, interrupted reads counted by what was delivered, refused reads not
// counted as reads, and records after the checkpoint left out.
func TestImpactReport(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "ferry.db"), "sqlite", "", false)
	ctx := context.Background()
	l := e.open(t)
	read := func(min int, actor, party, path string, bytes int64, outcome ferry.Outcome, detail string) *ferry.Event {
		ev := &ferry.Event{Time: t0.Add(time.Duration(min) * time.Minute), Action: "file.read", Outcome: outcome, Actor: actor,
			Org: "acme", OrgID: "org1", Path: path, Object: "id" + path, SHA256: strings.Repeat("a", 64), Bytes: bytes,
			Remote: "198.51.100.4:5000", Detail: detail}
		if party != "" {
			ev.PartyID, ev.Party = "pid-"+party, party
		}
		return ev
	}
	evs := []*ferry.Event{
		read(1, "a@x.test", "Globex", "/g/1", 1000, ferry.OutcomeOK, ""),
		read(2, "b@x.test", "Globex", "/g/1", 1000, ferry.OutcomeOK, ""),
		read(3, "a@x.test", "Globex", "/g/2", 500, ferry.OutcomeOK, ""),
		read(4, "a@x.test", "Globex", "/g/2", 200, ferry.OutcomeError, "interrupted: 300 of 500 bytes delivered"),
		read(5, "a@x.test", "Initech", "/i/1", 0, ferry.OutcomeDenied, "missing permission read"),
		read(6, "a@x.test", "", "/tmp/x", 42, ferry.OutcomeOK, ""),
		{Time: t0.Add(7 * time.Minute), Action: "file.write", Outcome: ferry.OutcomeOK, Actor: "a@x.test", OrgID: "org1", PartyID: "pid-Initech", Path: "/i/2", Bytes: 9},
	}
	if err := l.AppendBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	late := read(8, "a@x.test", "Globex", "/g/3", 77, ferry.OutcomeOK, "")
	if err := l.Append(ctx, late); err != nil { // after the checkpoint
		t.Fatal(err)
	}
	rep, err := audit.Impact(ctx, e.d, e.verifier, audit.ImpactScope{From: t0, To: t0.Add(time.Hour)}, audit.ImpactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Parties) != 1 || rep.Parties[0].Party != "Globex" || rep.NoParty == nil || rep.Denied != 1 || rep.Pending != 1 {
		t.Fatalf("report %+v", rep)
	}
	g := rep.Parties[0]
	if g.Reads != 3 || g.Bytes != 2300 || len(g.Files) != 2 || g.Files[0].Bytes != 2000 || g.Files[1].Bytes != 300 ||
		!slices.Equal(g.Actors, []string{"a@x.test", "b@x.test"}) || !slices.Equal(g.Remotes, []string{"198.51.100.4"}) ||
		!g.First.Equal(t0.Add(time.Minute)) || !g.Last.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("Globex: %+v", g)
	}
	if rep.NoParty.Bytes != 42 || rep.Totals.Bytes != 2342 || rep.Totals.Reads != 4 || rep.Totals.Files != 3 || rep.Totals.Parties != 1 {
		t.Errorf("totals %+v, no party %+v", rep.Totals, rep.NoParty)
	}
	// A scope needs both ends.
	if _, err := audit.Impact(ctx, e.d, e.verifier, audit.ImpactScope{From: t0}, audit.ImpactOptions{}); ferry.KindOf(err) != ferry.Invalid {
		t.Errorf("open scope: %v", err)
	}
}
