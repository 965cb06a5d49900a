// BenchmarkImpact measures the impact report (`ferry audit impact`) on a
// large audit log in SQLite. It generates audit records straight into the
// audit tables through internal/db, in large transactions (records, their
// tlog hashes and a signed checkpoint, so that the report cites a real
// checkpoint), with a realistic mix: most records are not reads, thousands
// of actors (a few of them heavy), tokens, sessions and /24 networks, about
// 1,000 parties in 20 organisations of uneven size, one record every ~0.8 s
// (10 M records are about 90 days). At each size in -events it measures
// audit.Impact (without the full verification, which reads the whole log)
// for typical scopes — the heaviest actor over a week, one token, one
// session, one /24, the largest organisation for a day, everything for a
// day — and prints the median and range of -runs runs, with the query plan.
//
//	go test -run '^$' -bench Impact -benchtime 1x -timeout 2h ./bench/ \
//	    -impact.events 1000000,10000000 [-impact.runs 7] [-impact.dir DIR -impact.keep]
//
// Its default size is small (100,000), so that `make bench` stays quick;
// TestImpactSmoke runs it at a tiny size in CI, so that it cannot rot.
// The log grows from one size to the next, so the sizes share one database.
// Everything lives in a temporary directory (or -dir), removed at the end
// unless -keep; a kept -dir is used again without generating the records
// anew (only the sizes it does not hold yet).
package bench

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
)

// The shape of the generated organisation.
const (
	nOrgs     = 20
	nParties  = 1000
	nActors   = 5000
	nTokens   = 2000
	nNets     = 4000 // /24 networks clients come from
	nFiles    = 200000
	batchSize = 50000
	step      = 777 * time.Millisecond // between two records
)

var (
	impactEvents  = flag.String("impact.events", "100000", "BenchmarkImpact: log sizes to measure at, ascending")
	impactRuns    = flag.Int("impact.runs", 5, "BenchmarkImpact: runs per scope and size")
	impactDir     = flag.String("impact.dir", "", "BenchmarkImpact: directory for the database (default: a temporary one)")
	impactKeep    = flag.Bool("impact.keep", false, "BenchmarkImpact: keep the database, to measure again without generating it")
	impactProfile = flag.String("impact.cpuprofile", "", "BenchmarkImpact: write a CPU profile of the measured queries to this file")
)

// BenchmarkImpact runs the impact benchmark once (b.N is not used: one run
// generates the log and measures each scope -impact.runs times) and prints
// its table.
// Run it with -benchtime 1x (even the default size takes longer than the
// default bench time, so it runs once either way).
func BenchmarkImpact(b *testing.B) {
	if err := runImpactBench(context.Background(), *impactEvents, *impactRuns, *impactDir, *impactKeep, *impactProfile, os.Stdout); err != nil {
		b.Fatal(err)
	}
}

// TestImpactSmoke runs the benchmark at a tiny size.
func TestImpactSmoke(t *testing.T) {
	var out strings.Builder
	if err := runImpactBench(context.Background(), "3000,6000", 1, t.TempDir(), true, "", &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Log(out.String())
	for _, want := range []string{"| 3 k | heaviest actor", "| 6 k | everything, last day", "audit_reads_ip"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func runImpactBench(ctx context.Context, sizeList string, nRuns int, dirName string, keepDB bool, profileFile string, out io.Writer) error {
	sizes, runs, dir, keep, profile := &sizeList, &nRuns, &dirName, &keepDB, &profileFile
	var ns []int64
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || n <= 0 || len(ns) > 0 && n <= ns[len(ns)-1] {
			return fmt.Errorf("-impact.events: %q is not an ascending list of sizes", *sizes)
		}
		ns = append(ns, n)
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "ferry-bench-impact-")
		if err != nil {
			return err
		}
		*dir = d
	}
	if !*keep {
		defer os.RemoveAll(*dir)
	}
	d, err := db.Open(ctx, filepath.Join(*dir, "ferry.db"))
	if err != nil {
		return err
	}
	defer d.Close()
	signer, verifier, err := audit.LoadOrCreateKey(filepath.Join(*dir, "keys"), "bench-impact", rand.Reader)
	if err != nil {
		return err
	}
	g := newImpactGen()
	fmt.Fprintf(out, "database %s\n\n", filepath.Join(*dir, "ferry.db"))
	fmt.Fprintln(out, "| events | scope | reads in scope | parties | median | min | max |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|")
	var plans []string
	var prof io.WriteCloser
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			return err
		}
		prof = f
		defer f.Close()
	}
	for _, n := range ns {
		start := time.Now()
		if err := g.fill(ctx, d, n); err != nil {
			return err
		}
		if err := g.checkpoint(ctx, d, signer); err != nil {
			return err
		}
		genTime := time.Since(start)
		if prof != nil {
			if err := pprof.StartCPUProfile(prof); err != nil {
				return err
			}
		}
		for _, sc := range g.scopes() {
			var times []time.Duration
			var rep *audit.ImpactReport
			for range *runs {
				t := time.Now()
				if rep, err = audit.Impact(ctx, d, verifier, sc.scope, audit.ImpactOptions{}); err != nil {
					return fmt.Errorf("%s: %w", sc.name, err)
				}
				times = append(times, time.Since(t))
			}
			if !rep.Check.MatchesLog || rep.Check.Size != n {
				return fmt.Errorf("%s: the report cites checkpoint %d (matches log: %v), want %d", sc.name, rep.Check.Size, rep.Check.MatchesLog, n)
			}
			slices.Sort(times)
			fmt.Fprintf(out, "| %s | %s | %d | %d | %s | %s | %s |\n", impactHuman(n), sc.name, rep.Totals.Reads, rep.Totals.Parties,
				impactMS(times[len(times)/2]), impactMS(times[0]), impactMS(times[len(times)-1]))
			if n == ns[len(ns)-1] {
				f := db.ImpactFilter{Since: sc.scope.From, Until: sc.scope.To, OrgID: sc.scope.OrgID, Actor: sc.scope.Actor,
					Token: sc.scope.Token, Session: sc.scope.Session}
				if sc.scope.CIDR.IsValid() {
					f.IPLo, f.IPHi = db.PrefixRange(sc.scope.CIDR)
				}
				plan, err := d.ExplainAuditReads(ctx, f)
				if err != nil {
					return err
				}
				plans = append(plans, sc.name+": "+strings.Join(plan, "; "))
			}
		}
		pprof.StopCPUProfile()
		fmt.Fprintf(out, "| %s | (generating the log up to this size took %s) | | | | | |\n", impactHuman(n), genTime.Round(time.Second))
	}
	fmt.Fprintln(out, "\nquery plans at the largest size (SQLite EXPLAIN QUERY PLAN):")
	for _, p := range plans {
		fmt.Fprintln(out, "  "+p)
	}
	return nil
}

func impactMS(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func impactHuman(n int64) string {
	switch {
	case n >= 1e6 && n%1e5 == 0:
		return strconv.FormatFloat(float64(n)/1e6, 'f', -1, 64) + " M"
	case n >= 1e3 && n%100 == 0:
		return strconv.FormatFloat(float64(n)/1e3, 'f', -1, 64) + " k"
	}
	return strconv.FormatInt(n, 10)
}

// impactGen generates the log, record by record, keeping every stored tlog hash
// in memory (about 64 bytes per record) to compute the next ones.
type impactGen struct {
	rnd    *mrand.Rand
	t0     time.Time
	n      int64
	hashes []tlog.Hash // by stored hash index
	// per actor: its organisation, its token (if any) and its current session
	actorOrg []int
	session  []string
	sessLeft []int
	// per file: party and organisation
	filePty []int
	orgID   []string
}

func newImpactGen() *impactGen {
	g := &impactGen{rnd: mrand.New(mrand.NewPCG(1, 2)), t0: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	g.actorOrg = make([]int, nActors)
	g.session, g.sessLeft = make([]string, nActors), make([]int, nActors)
	for i := range g.actorOrg {
		g.actorOrg[i] = g.orgOf(g.rnd.Float64())
	}
	g.filePty = make([]int, nFiles)
	for i := range g.filePty {
		g.filePty[i] = g.rnd.IntN(nParties)
		if i%10 == 0 {
			g.filePty[i] = -1 // no party
		}
	}
	for i := range nOrgs {
		g.orgID = append(g.orgID, fmt.Sprintf("org%02d%026d", i, i))
	}
	return g
}

// orgOf maps u in [0,1) to an organisation, the first ones much larger.
func (g *impactGen) orgOf(u float64) int { return int(float64(nOrgs) * u * u) }

// actor draws an actor: a power law, a few heavy (automation) accounts.
func (g *impactGen) actor() int { return int(float64(nActors) * math.Pow(g.rnd.Float64(), 3)) }

func (g *impactGen) event() *ferry.Event {
	a := g.actor()
	org := g.actorOrg[a]
	ev := &ferry.Event{Outcome: ferry.OutcomeOK, Actor: fmt.Sprintf("user%d@org%d.example", a, org),
		ActorID: fmt.Sprintf("%032x", a), Org: fmt.Sprintf("org%d", org), OrgID: g.orgID[org]}
	// The way in: a browser session, an API token or SFTP.
	net := (a*7919 + g.rnd.IntN(3)) % nNets
	ip := netip.AddrFrom4([4]byte{byte(10 + net/256%200), byte(net % 256), byte(a % 256), byte(1 + g.rnd.IntN(250))})
	switch a % 10 {
	case 0, 1, 2:
		ev.Protocol, ev.Token = "https", fmt.Sprintf("tok%05d", a%nTokens)
		ev.Remote = ip.String()
	case 3, 4, 5, 6, 7:
		if g.sessLeft[a] == 0 {
			g.session[a], g.sessLeft[a] = fmt.Sprintf("%064x", g.rnd.Uint64()), 20+g.rnd.IntN(200)
		}
		g.sessLeft[a]--
		ev.Protocol, ev.Session = "https", g.session[a]
		ev.Remote = ip.String()
	default:
		ev.Protocol = "sftp"
		ev.Remote = ip.String() + ":" + strconv.Itoa(1024+g.rnd.IntN(60000))
	}
	// What: a quarter of the records are reads.
	r := g.rnd.IntN(100)
	switch {
	case r < 25, r < 40:
		ev.Action = "file.read"
		if r >= 25 {
			ev.Action = "file.write"
		}
		f := g.rnd.IntN(nFiles)
		ev.Object = fmt.Sprintf("%032x", f)
		ev.SHA256 = fmt.Sprintf("%064x", f*31+1)
		ev.Bytes = int64(1+g.rnd.IntN(1<<20)) * int64(1+f%16)
		ev.Path = fmt.Sprintf("/data/file-%d.csv", f)
		if p := g.filePty[f]; p >= 0 {
			ev.PartyID, ev.Party = fmt.Sprintf("%032x", p+1<<20), fmt.Sprintf("Party %d", p)
			ev.Path = fmt.Sprintf("/clients/party-%d/file-%d.csv", p, f)
		}
		if g.rnd.IntN(100) == 0 {
			ev.Outcome, ev.Detail = ferry.OutcomeDenied, "missing permission read"
		}
	case r < 65:
		ev.Action = "file.list"
		ev.Path = "/clients"
	case r < 85:
		ev.Action = "auth.login"
	case r < 95:
		ev.Action = "token.use"
	default:
		ev.Action = "folder.create"
		ev.Path = fmt.Sprintf("/clients/new-%d", g.rnd.IntN(1e6))
	}
	return ev
}

// fill appends records until the log holds n.
func (g *impactGen) fill(ctx context.Context, d *db.DB, n int64) error {
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = g.hashes[x]
		}
		return out, nil
	})
	have, err := d.AuditSize(ctx)
	if err != nil {
		return err
	}
	// A kept database (-keep, -dir) already holds the records: replay the
	// generator to reach the same state without storing anything.
	replayed := g.n < have
	for ; g.n < min(n, have); g.n++ {
		g.event()
	}
	if replayed && n > have {
		return fmt.Errorf("the database in -impact.dir holds %d records: it can be measured again up to that size, not grown (start with an empty directory)", have)
	}
	for g.n < n {
		first := g.n
		m := min(int64(batchSize), n-g.n)
		rows := make([]db.AuditRow, 0, m)
		var hs []db.AuditHash
		for range m {
			ev := g.event()
			ev.Seq, ev.Time = g.n, g.t0.Add(time.Duration(g.n)*step)
			data, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			stored, err := tlog.StoredHashes(g.n, data, reader)
			if err != nil {
				return err
			}
			base := tlog.StoredHashIndex(0, g.n)
			for j, h := range stored {
				g.hashes = append(g.hashes, h)
				hs = append(hs, db.AuditHash{Index: base + int64(j), Hash: g.hashes[base+int64(j)][:]})
			}
			rows = append(rows, db.AuditRow{Seq: ev.Seq, Time: ev.Time, Action: ev.Action, Actor: ev.Actor, Org: ev.Org, OrgID: ev.OrgID,
				Party: ev.Party, PartyID: ev.PartyID, Path: ev.Path, Data: data,
				Token: ev.Token, Session: ev.Session, RemoteIP: db.RemoteKey(ev.Remote)})
			g.n++
		}
		if err := d.AuditAppend(ctx, first, rows, hs); err != nil {
			return err
		}
	}
	return nil
}

// checkpoint signs and stores a checkpoint of the whole log, in the format
// of internal/audit.
func (g *impactGen) checkpoint(ctx context.Context, d *db.DB, signer note.Signer) error {
	if c, err := d.LatestAuditCheckpoint(ctx); err == nil && c.Size >= g.n {
		return nil // a kept database
	}
	root, err := tlog.TreeHash(g.n, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = g.hashes[x]
		}
		return out, nil
	}))
	if err != nil {
		return err
	}
	t := g.t0.Add(time.Duration(g.n) * step)
	text := fmt.Sprintf("%s\n%d\n%s\ntime %s\n", signer.Name(), g.n, root, t.Format(time.RFC3339Nano))
	msg, err := note.Sign(&note.Note{Text: text}, signer)
	if err != nil {
		return err
	}
	return d.SaveAuditCheckpoint(ctx, &db.AuditCheckpoint{Size: g.n, Time: t, Note: string(msg)})
}

type impactScope struct {
	name  string
	scope audit.ImpactScope
}

// scopes are the measured scopes, at the end of the log as it is now: the
// most recent week, day, and so on, as an investigation would ask.
func (g *impactGen) scopes() []impactScope {
	end := g.t0.Add(time.Duration(g.n) * step)
	all := audit.ImpactScope{From: g.t0, To: end}
	with := func(f func(*audit.ImpactScope)) audit.ImpactScope {
		s := all
		f(&s)
		return s
	}
	// Actor 0 is the heaviest (the power law); actor 3's sessions are
	// browser sessions.
	heavy := fmt.Sprintf("user0@org%d.example", g.actorOrg[0])
	lastSession := g.session[3]
	if lastSession == "" {
		lastSession = "none"
	}
	net := (3 * 7919) % nNets
	p24 := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(10 + net/256%200), byte(net % 256), 3, 0}), 24)
	return []impactScope{
		{"heaviest actor, last 7 days", with(func(s *audit.ImpactScope) { s.Actor, s.From = heavy, end.Add(-7*24*time.Hour) })},
		{"one actor, last 7 days", with(func(s *audit.ImpactScope) {
			s.Actor, s.From = fmt.Sprintf("user%d@org%d.example", 100, g.actorOrg[100]), end.Add(-7*24*time.Hour)
		})},
		{"one token, whole log", with(func(s *audit.ImpactScope) { s.Token = fmt.Sprintf("tok%05d", 100) })},
		{"heaviest token, last 7 days", with(func(s *audit.ImpactScope) { s.Token, s.From = fmt.Sprintf("tok%05d", 0), end.Add(-7*24*time.Hour) })},
		{"one session, whole log", with(func(s *audit.ImpactScope) { s.Session = lastSession })},
		{"one /24, whole log", with(func(s *audit.ImpactScope) { s.CIDR = p24 })},
		{"largest org, last day", with(func(s *audit.ImpactScope) { s.OrgID, s.From = g.orgID[0], end.Add(-24*time.Hour) })},
		{"everything, last day", with(func(s *audit.ImpactScope) { s.From = end.Add(-24 * time.Hour) })},
	}
}
