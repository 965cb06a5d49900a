package guard_test

import (
	"context"
	"crypto/rand"
	"fmt"

	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/guard"
	"ferry.dev/ferry/internal/mail"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type env struct {
	d    *db.DB
	alog *audit.Log
	clk  *clock
	org  *ferry.Org
	mail *mailbox
	dir  string
}

// mailbox records what the guard mailed.
type mailbox struct {
	mu   sync.Mutex
	sent []sentMail
}

type sentMail struct {
	kind string
	to   []string
	data map[string]string
}

func (m *mailbox) send(_ context.Context, kind string, to []string, data map[string]string) error {
	m.mu.Lock()
	m.sent = append(m.sent, sentMail{kind, to, data})
	m.mu.Unlock()
	return nil
}

func (m *mailbox) kinds() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, s := range m.sent {
		out = append(out, s.kind)
	}
	return out
}

func newEnv(t *testing.T, d *db.DB) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	clk := &clock{t: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)}
	signer, _, err := audit.LoadOrCreateKey(filepath.Join(dir, "keys"), "test", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	alog, err := audit.Open(ctx, d, signer, filepath.Join(dir, "checkpoint"), clk.now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alog.Close() })
	org := &ferry.Org{ID: ferry.NewID(nil), Name: "acme", RetentionDays: 30, Created: clk.now()}
	if err := d.CreateOrg(ctx, org, ferry.NewID(nil)); err != nil {
		t.Fatal(err)
	}
	admin := &ferry.User{ID: ferry.NewID(nil), OrgID: org.ID, Email: "admin@acme.test", Role: ferry.RoleAdmin, Created: clk.now()}
	if err := d.CreateUser(ctx, admin); err != nil {
		t.Fatal(err)
	}
	return &env{d: d, alog: alog, clk: clk, org: org, mail: &mailbox{}, dir: dir}
}

func (e *env) guard(t *testing.T, mod ...func(*guard.Config)) *guard.Guard {
	t.Helper()
	c := guard.Config{DB: e.d, Audit: e.alog, Now: e.clk.now, Rand: rand.Reader, Mail: e.mail.send}
	for _, m := range mod {
		m(&c)
	}
	g, err := guard.New(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func (e *env) user(email string) *ferry.Principal {
	return &ferry.Principal{UserID: ferry.NewID(nil), Email: email, OrgID: e.org.ID, Role: ferry.RoleUser, TokenID: "tok" + email, Remote: "198.51.100.7:40000", Protocol: "https"}
}

func (e *env) file(i int) *ferry.File {
	return &ferry.File{ID: fmt.Sprintf("file%06d", i), OrgID: e.org.ID, Path: fmt.Sprintf("/parties/p%03d/f%06d.csv", i%100, i), Size: 1000}
}

// flush waits for the audit log to commit, then runs the dispatcher.
func (e *env) dispatch(t *testing.T, g *guard.Guard) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.alog.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.Dispatch(ctx); err != nil {
		t.Fatal(err)
	}
}

func actions(t *testing.T, d *db.DB, prefix string) []string {
	t.Helper()
	var out []string
	err := audit.Query(context.Background(), d, audit.Filter{Action: prefix + "*"}, func(ev *ferry.Event) error {
		out = append(out, ev.Action)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestGuardThiefFrozen replays a stolen token reading every file of an
// organisation of 20,000 as fast as it can: it is frozen by the read that
// crosses the limit, before 1 % of the files; every later read is refused;
// the freeze survives a restart (a new Guard on the same database) and an
// unfreeze restores access.
func TestGuardThiefFrozen(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := newEnv(t, d)
		g := e.guard(t)
		if err := g.Dispatch(ctx); err != nil { // the dispatcher's first run starts at the log's end
			t.Fatal(err)
		}
		thief := e.user("partner@acme.test")
		const total = 20000
		read := 0
		for i := range total {
			err := g.CheckRead(ctx, thief, e.file(i), 1000)
			if err != nil {
				if ferry.KindOf(err) != ferry.Permission {
					t.Fatalf("read %d: %v", i, err)
				}
				break
			}
			read++
		}
		if read != guard.DefaultMaxFiles || read >= total/100 {
			t.Fatalf("the thief read %d files before the freeze, want %d (< %d)", read, guard.DefaultMaxFiles, total/100)
		}
		// Everything after is refused, even files read before.
		for _, i := range []int{0, 5, total - 1} {
			if err := g.CheckRead(ctx, thief, e.file(i), 1000); ferry.KindOf(err) != ferry.Permission {
				t.Fatalf("read after the freeze: %v", err)
			}
		}
		if !g.UserFrozen(thief.UserID) {
			t.Fatal("user not frozen")
		}
		// Another user of the organisation is not affected.
		if err := g.CheckRead(ctx, e.user("other@acme.test"), e.file(1), 1000); err != nil {
			t.Fatalf("another user: %v", err)
		}
		e.dispatch(t, g)
		if got := actions(t, d, "alert."); len(got) != 1 || got[0] != "alert.freeze" {
			t.Fatalf("alerts %v, want one alert.freeze", got)
		}
		if k := e.mail.kinds(); len(k) != 1 || k[0] != "alert.freeze" || e.mail.sent[0].to[0] != "admin@acme.test" {
			t.Fatalf("mail %+v, want alert.freeze to the org admin", e.mail.sent)
		}

		// A restart keeps the freeze.
		g2 := e.guard(t)
		if err := g2.CheckRead(ctx, thief, e.file(3), 1000); ferry.KindOf(err) != ferry.Permission {
			t.Fatalf("read after restart: %v", err)
		}
		if err := g2.Unfreeze(ctx, guard.UserSubject(thief.UserID)); err != nil {
			t.Fatal(err)
		}
		if err := g2.CheckRead(ctx, thief, e.file(3), 1000); err != nil {
			t.Fatalf("read after unfreeze: %v", err)
		}
		if err := g2.Unfreeze(ctx, guard.UserSubject(thief.UserID)); ferry.KindOf(err) != ferry.NotExist {
			t.Fatalf("second unfreeze: %v", err)
		}
	})
}

// TestGuardLegitimateWeek simulates a partner that syncs 50 new files every
// 5 minutes, day and night, for a week (100,800 reads, each batch read
// over a few seconds to almost five minutes, so that windows catch parts of
// three batches): never frozen.
// Its own history (peaks stored every simulated hour) trains the 10×-peak
// rule as the week goes on, which must not trip either.
func TestGuardLegitimateWeek(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, dbtest.SQLite(t))
	g := e.guard(t)
	partner := e.user("sync@partner.test")
	next := 0
	maxWin := 0
	for batch := range 7 * 24 * 12 {
		start := e.clk.now()
		for i := range 50 {
			// Each batch takes the partner a while: from a few seconds
			// to almost the whole 5 minutes, varying batch to batch.
			spread := time.Duration(1+batch%29) * 200 * time.Millisecond
			e.clk.t = start.Add(time.Duration(i) * spread)
			if err := g.CheckRead(ctx, partner, e.file(next), 250_000); err != nil {
				t.Fatalf("batch %d (day %d), file %d: %v", batch, batch/288, i, err)
			}
			next++
			maxWin = max(maxWin, guard.WindowFiles(g, partner))
		}
		if batch%12 == 0 {
			guard.FlushPeaks(g, ctx)
		}
		e.clk.t = start.Add(5 * time.Minute)
	}
	if got := actions(t, e.d, "alert."); len(got) != 0 {
		t.Fatalf("alerts during a legitimate week: %v", got)
	}
	if maxWin > 150 {
		t.Fatalf("the workload read %d files in a window; the calibration assumes at most 150", maxWin)
	}
	t.Logf("%d reads in a week; at most %d distinct files in a 10-minute window (limit %d)", next, maxWin, guard.DefaultMaxFiles)
}

// TestGuardHistoryRule: a principal that read a few files a day for a week
// is frozen when it reads more than 10× its 30-day peak (above the floor),
// long before the absolute limit — also when reading its history failed
// once (a cancelled request): the next read loads it again.
func TestGuardHistoryRule(t *testing.T) {
	for _, loadFails := range []bool{false, true} {
		t.Run(fmt.Sprintf("load fails once %v", loadFails), func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, dbtest.SQLite(t))
			g := e.guard(t)
			u := e.user("quiet@acme.test")
			n := 0
			for range 8 {
				for range 5 {
					if err := g.CheckRead(ctx, u, e.file(n), 1000); err != nil {
						t.Fatal(err)
					}
					n++
				}
				e.clk.add(24 * time.Hour)
			}
			guard.FlushPeaks(g, ctx)
			g = e.guard(t) // the peak comes from the database
			if loadFails {
				cancelled, cancel := context.WithCancel(ctx)
				cancel()
				g.CheckRead(cancelled, u, e.file(9999), 1000)
			}
			read := 0
			for i := range 1000 {
				if err := g.CheckRead(ctx, u, e.file(10000+i), 1000); err != nil {
					break
				}
				read++
			}
			// Without its history the account would read up to the
			// policy's limit (guard.DefaultMaxFiles).
			if read > 70 || read < 59 {
				t.Fatalf("read %d files before the history rule froze it, want about 60 (the floor)", read)
			}
		})
	}
}

// TestGuardMonitorOnly: in monitor mode the thief is not frozen, but one
// alert per window is raised.
func TestGuardMonitorOnly(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, dbtest.SQLite(t))
	g := e.guard(t)
	p := guard.DefaultPolicy(e.org.ID)
	p.Monitor = true
	if err := g.SetPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	thief := e.user("t@acme.test")
	for i := range 1000 {
		if err := g.CheckRead(ctx, thief, e.file(i), 1000); err != nil {
			t.Fatalf("read %d in monitor mode: %v", i, err)
		}
	}
	if _, err := e.alog.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	got := actions(t, e.d, "alert.")
	want := map[string]int{"alert.monitor": 1}
	have := map[string]int{}
	for _, a := range got {
		have[a]++
	}
	if have["alert.monitor"] != want["alert.monitor"] || have["alert.freeze"] != 0 {
		t.Fatalf("alerts %v, want one alert.monitor and no freeze", got)
	}
}

// TestGuardSignInAlerts: a first sign-in does not alert; a new /24 does; a
// token used from two /16s within an hour does.
func TestGuardSignInAlerts(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, dbtest.SQLite(t))
	g := e.guard(t)
	u := &ferry.User{ID: ferry.NewID(nil), OrgID: e.org.ID, Email: "u@acme.test", Role: ferry.RoleUser}
	g.SeenLogin(ctx, u, "10.1.2.3:5000", "https")
	g.SeenLogin(ctx, u, "10.1.2.99:5000", "https")
	if _, err := e.alog.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if got := actions(t, e.d, "alert."); len(got) != 0 {
		t.Fatalf("first sign-in and same /24 raised %v", got)
	}
	g.SeenLogin(ctx, u, "203.0.113.9:5000", "https")
	g.SeenLogin(ctx, u, "203.0.113.10:5000", "https")
	p := &ferry.Principal{UserID: u.ID, Email: u.Email, OrgID: u.OrgID, TokenID: "t1"}
	g.TokenUse(ctx, p, "10.1.2.3:1")
	g.TokenUse(ctx, p, "10.1.200.3:1") // same /16
	e.clk.add(10 * time.Minute)
	g.TokenUse(ctx, p, "198.51.100.1:1")
	e.clk.add(2 * time.Hour)
	g.TokenUse(ctx, p, "10.1.2.3:1") // too long after: no alert
	if _, err := e.alog.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	got := actions(t, e.d, "alert.")
	if len(got) != 2 || got[0] != "alert.newaddr" || got[1] != "alert.tokenranges" {
		t.Fatalf("alerts %v, want alert.newaddr, alert.tokenranges", got)
	}
}

// TestGuardDeliversAlerts: every alert.* record appended by anyone (here
// internal/admin's alert.admin, and a server-wide alert.audit) is mailed,
// once, to the organisation's administrators, or to the server
// administrators when it concerns no organisation; lockouts are not mailed.
func TestGuardDeliversAlerts(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, dbtest.SQLite(t))
	op := &ferry.User{ID: ferry.NewID(nil), OrgID: e.org.ID, Email: "root@server.test", Role: ferry.RoleUser, ServerAdmin: true, Created: e.clk.now()}
	if err := e.d.CreateUser(ctx, op); err != nil {
		t.Fatal(err)
	}
	g := e.guard(t)
	if err := g.Dispatch(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []*ferry.Event{
		{Action: "alert.admin", Outcome: ferry.OutcomeOK, Actor: "operator", OrgID: e.org.ID, Org: "acme", Object: "u1", Detail: "made new@acme.test an administrator"},
		{Action: "alert.lockout", Outcome: ferry.OutcomeDenied, Actor: "anonymous", Remote: "203.0.113.1"},
		{Action: "file.read", Outcome: ferry.OutcomeOK, Actor: "x@acme.test", OrgID: e.org.ID},
	} {
		if err := e.alog.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	g.VerifyAudit(ctx) // no verifier configured: nothing
	g2 := e.guard(t, func(c *guard.Config) {
		c.VerifyAudit = func(context.Context) error { return ferry.E("audit.Verify", ferry.Integrity, "record 3 was edited") }
	})
	g2.VerifyAudit(ctx)
	e.dispatch(t, g)
	e.dispatch(t, g) // a second pass delivers nothing again
	e.mail.mu.Lock()
	defer e.mail.mu.Unlock()
	if len(e.mail.sent) != 2 {
		t.Fatalf("mailed %+v, want alert.admin and alert.audit", e.mail.sent)
	}
	if m := e.mail.sent[0]; m.kind != "alert.admin" || len(m.to) != 1 || m.to[0] != "admin@acme.test" || m.data["Detail"] != "made new@acme.test an administrator" {
		t.Fatalf("alert.admin mail: %+v", m)
	}
	if m := e.mail.sent[1]; m.kind != "alert.audit" || len(m.to) != 1 || m.to[0] != "root@server.test" || !strings.Contains(m.data["Detail"], "record 3 was edited") {
		t.Fatalf("alert.audit mail: %+v", m)
	}
}

// TestGuardMailTemplates: every alert the guard mails has a template that
// renders with the data the guard gives it.
func TestGuardMailTemplates(t *testing.T) {
	d := dbtest.SQLite(t)
	o, err := mail.New(mail.Config{DB: d, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]string{"Alert": "freeze", "Org": "acme", "Principal": "p@acme.test", "Time": "2026-11-30T07:00:00Z",
		"Detail": "limit: read 181 distinct files", "Remote": "203.0.113.9:1", "Path": "/a/b.csv", "Seq": "42"}
	for _, kind := range []string{"freeze", "canary", "admin", "newaddr", "tokenranges", "audit", "monitor", "threshold", "other"} {
		m, err := o.Render("alert."+kind, "en", []string{"admin@acme.test"}, data)
		if err != nil {
			t.Errorf("alert.%s: %v", kind, err)
			continue
		}
		if m.Subject == "" || !strings.Contains(m.Text, "limit: read 181 distinct files") {
			t.Errorf("alert.%s: subject %q, text:\n%s", kind, m.Subject, m.Text)
		}
	}
}

// TestGuardConcurrentThief: eight readers at once, with the guard reloading
// its state from the database meanwhile, still get exactly the limit's
// worth of files and not one more.
func TestGuardConcurrentThief(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, dbtest.SQLite(t))
	g := e.guard(t)
	thief := e.user("t@acme.test")
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ok   int
		next int
		stop = make(chan struct{})
	)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				g.Refresh(ctx)
			}
		}
	}()
	for range 8 {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= 2000 {
					return
				}
				if err := g.CheckRead(ctx, thief, e.file(i), 100); err == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	if ok != guard.DefaultMaxFiles {
		t.Fatalf("%d reads allowed, want exactly %d", ok, guard.DefaultMaxFiles)
	}
}
