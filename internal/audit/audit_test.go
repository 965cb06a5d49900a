package audit_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
)

// env is one test's database, opened twice: through package db, and as a
// raw *sql.DB for tampering.
type env struct {
	d        *db.DB
	raw      *sql.DB
	dir      string // key directory and checkpoint file
	signer   note.Signer
	verifier note.Verifier
	file     string
	postgres bool
}

// each runs fn on a fresh SQLite database and a fresh PostgreSQL database,
// as dbtest.Each does, keeping each database's DSN for a raw connection.
func each(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "ferry.db")
		fn(t, newEnv(t, path, "sqlite", "file:"+path+"?_pragma=busy_timeout(10000)", false))
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := dbtest.PostgresDSN(t)
		fn(t, newEnv(t, dsn, "pgx", dsn, true))
	})
}

func newEnv(t *testing.T, dsn, driver, rawDSN string, pg bool) *env {
	t.Helper()
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
	dir := t.TempDir()
	s, v, err := audit.LoadOrCreateKey(filepath.Join(dir, "keys"), "ferry.test/audit", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &env{d: d, raw: raw, dir: dir, signer: s, verifier: v, file: filepath.Join(dir, "checkpoint"), postgres: pg}
}

func (e *env) open(t *testing.T) *audit.Log {
	t.Helper()
	l, err := audit.Open(context.Background(), e.d, e.signer, e.file, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func (e *env) loadVerifier(t *testing.T) note.Verifier {
	t.Helper()
	v, err := audit.LoadVerifier(filepath.Join(e.dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (e *env) checkpointFile(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(e.file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *env) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := e.raw.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

var t0 = time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)

// event returns a varied test event.
func event(i int) *ferry.Event {
	actions := []string{"file.read", "file.write", "file.delete", "user.login", "share.create"}
	return &ferry.Event{
		Time:    t0.Add(time.Duration(i) * time.Second),
		Action:  actions[i%len(actions)],
		Outcome: ferry.OutcomeOK,
		Actor:   fmt.Sprintf("user%d@acme.test", i%3),
		Org:     "acme", OrgID: "org1",
		Party: []string{"Globex", "Initech"}[i%2], PartyID: []string{"p-globex", "p-initech"}[i%2],
		Path:  fmt.Sprintf("/clients/%s/file%d.csv", []string{"globex", "initech"}[i%2], i),
		Bytes: int64(i * 100), Protocol: "sftp",
	}
}

// fill appends records [from, to) in batches and returns them.
func fill(t *testing.T, l *audit.Log, from, to int) []*ferry.Event {
	t.Helper()
	var evs []*ferry.Event
	for i := from; i < to; i++ {
		evs = append(evs, event(i))
	}
	for b := 0; b < len(evs); b += 25 {
		if err := l.AppendBatch(context.Background(), evs[b:min(b+25, len(evs))]); err != nil {
			t.Fatal(err)
		}
	}
	return evs
}

// treeHash computes the root of the stored records with tlog itself, as an
// independent check of the Log's and Verify's hashing.
func treeHash(t *testing.T, d *db.DB) (int64, tlog.Hash) {
	t.Helper()
	var stored []tlog.Hash
	rd := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	var n int64
	err := d.AuditScan(context.Background(), 0, 1<<62, func(r *db.AuditRow) error {
		hs, err := tlog.StoredHashes(n, r.Data, rd)
		stored = append(stored, hs...)
		n++
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := tlog.TreeHash(n, rd)
	if err != nil {
		t.Fatal(err)
	}
	return n, h
}

func TestAppendVerify(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		l := e.open(t)
		var evs []*ferry.Event
		for i := range 10 {
			ev := event(i)
			if i == 3 {
				ev.Time = time.Time{} // stamped by the Log
			}
			if err := l.Append(ctx, ev); err != nil {
				t.Fatal(err)
			}
			if ev.Seq != int64(i) {
				t.Fatalf("event %d got Seq %d", i, ev.Seq)
			}
			evs = append(evs, ev)
		}
		if evs[3].Time.IsZero() || evs[3].Time.Location() != time.UTC {
			t.Errorf("Append left Time = %v", evs[3].Time)
		}
		if l.Appends() != 10 || l.Size() != 10 {
			t.Errorf("Appends() = %d, Size() = %d, want 10", l.Appends(), l.Size())
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := l.Append(ctx, event(10)); !errors.Is(err, audit.ErrClosed) {
			t.Errorf("Append after Close: %v, want ErrClosed", err)
		}

		// The stored data is the canonical JSON of the event.
		err := e.d.AuditScan(ctx, 0, 10, func(r *db.AuditRow) error {
			want, _ := json.Marshal(evs[r.Seq])
			if string(r.Data) != string(want) {
				return fmt.Errorf("record %d = %s, want %s", r.Seq, r.Data, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}

		rep, err := audit.Verify(ctx, e.d, e.verifier, nil, e.checkpointFile(t))
		if err != nil {
			t.Fatal(err)
		}
		n, root := treeHash(t, e.d)
		if rep.Records != 10 || rep.Size != 10 || rep.Root != root || n != 10 {
			t.Errorf("Verify = %+v; tlog says %d records, root %v", rep, n, root)
		}
		if rep.Checkpoint == nil || rep.Checkpoint.N != 10 || rep.Checkpoint.Hash != root || rep.CheckpointTime.IsZero() {
			t.Errorf("Verify checkpoint = %+v", rep.Checkpoint)
		}

		// Reopening continues the same tree.
		l = e.open(t)
		fill(t, l, 10, 20)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		rep, err = audit.Verify(ctx, e.d, e.verifier, nil, e.checkpointFile(t))
		if _, root := treeHash(t, e.d); err != nil || rep.Size != 20 || rep.Root != root || rep.Checkpoint.N != 20 {
			t.Fatalf("Verify after reopen = %+v, %v", rep, err)
		}
	})
}

func TestConcurrentAppends(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		l := e.open(t)
		const workers, per = 50, 200
		seqs := make([][]int64, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := range per {
					ev := event(w*per + i)
					if err := l.Append(ctx, ev); err != nil {
						t.Error(err)
						return
					}
					seqs[w] = append(seqs[w], ev.Seq)
				}
			})
		}
		wg.Wait()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		all := slices.Concat(seqs...)
		slices.Sort(all)
		for i, s := range all {
			if s != int64(i) {
				t.Fatalf("sequence numbers are not 0..%d: position %d has %d", workers*per-1, i, s)
			}
		}
		if l.Appends() != workers*per {
			t.Errorf("Appends() = %d", l.Appends())
		}
		rep, err := audit.Verify(ctx, e.d, e.verifier, nil, e.checkpointFile(t))
		if err != nil || rep.Records != workers*per {
			t.Fatalf("Verify = %+v, %v", rep, err)
		}
	})
}

func TestAutomaticCheckpoint(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		l := e.open(t)
		fill(t, l, 0, 5)
		// Signed in the background within about a second, without Close.
		// The checkpoint is saved in the database, then written to the file:
		// wait for both.
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := e.d.LatestAuditCheckpoint(ctx)
			fileN := int64(-1)
			if b, ferr := os.ReadFile(e.file); ferr == nil {
				if fc, perr := audit.ParseCheckpoint(b, e.loadVerifier(t)); perr == nil {
					fileN = fc.N
				}
			}
			if err == nil && c.Size == 5 && fileN == 5 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint of 5 records after 10s: %+v, %v", c, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		v, err := audit.LoadVerifier(filepath.Join(e.dir, "keys"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := audit.ParseCheckpoint(e.checkpointFile(t), v)
		if err != nil || c.N != 5 || c.Origin != "ferry.test/audit" {
			t.Fatalf("checkpoint file: %+v, %v", c, err)
		}
		if _, root := treeHash(t, e.d); c.Hash != root {
			t.Errorf("checkpoint hash %v, want %v", c.Hash, root)
		}
	})
}

func TestOldCheckpoint(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		l := e.open(t)
		fill(t, l, 0, 20)
		old, err := l.Checkpoint(ctx)
		if err != nil || old.N != 20 {
			t.Fatalf("Checkpoint = %+v, %v", old, err)
		}
		fill(t, l, 20, 50)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		rep, err := audit.Verify(ctx, e.d, e.verifier, old.Note, e.checkpointFile(t))
		if err != nil || rep.Size != 50 {
			t.Fatalf("Verify with an old checkpoint: %+v, %v", rep, err)
		}

		// A checkpoint signed by another key is rejected.
		skey, _, _ := note.GenerateKey(rand.Reader, "ferry.test/audit")
		other, _ := note.NewSigner(skey)
		forged, err := note.Sign(&note.Note{Text: fmt.Sprintf("ferry.test/audit\n20\n%s\n", old.Hash)}, other)
		if err != nil {
			t.Fatal(err)
		}
		_, err = audit.Verify(ctx, e.d, e.verifier, forged, nil)
		var verr *audit.VerifyError
		if ferry.KindOf(err) != ferry.Integrity || errors.As(err, &verr) {
			t.Errorf("Verify with a forged checkpoint: %v, want a signature error", err)
		}
		// An edited checkpoint is rejected.
		edited := []byte(string(old.Note))
		edited[len("ferry.test/audit\n")] = '3' // "20" → "30"
		if _, err := audit.Verify(ctx, e.d, e.verifier, edited, nil); ferry.KindOf(err) != ferry.Integrity || errors.As(err, &verr) {
			t.Errorf("Verify with an edited checkpoint: %v, want a signature error", err)
		}

		// A genuine checkpoint of another log under the same key is not a
		// prefix of this one.
		e2 := *e
		e2.d = dbtest.SQLite(t)
		e2.file = filepath.Join(t.TempDir(), "checkpoint")
		l2 := e2.open(t)
		for i := range 20 {
			ev := event(i)
			ev.Actor = "someone@else.test"
			if err := l2.Append(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		foreign, err := l2.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = audit.Verify(ctx, e.d, e.verifier, foreign.Note, nil)
		if !errors.As(err, &verr) || verr.Seq != 0 {
			t.Errorf("Verify with another log's checkpoint: %v, want records 0-19 not a prefix", err)
		}
		// An old checkpoint larger than the log: truncated.
		fill(t, l2, 20, 60)
		big, err := l2.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := audit.Verify(ctx, e.d, e.verifier, big.Note, nil); !errors.As(err, &verr) || verr.Seq != 50 {
			t.Errorf("Verify with a larger checkpoint: %v, want truncation at 50", err)
		}
	})
}

func TestCancel(t *testing.T) {
	d := dbtest.SQLite(t)
	s, _, err := audit.LoadOrCreateKey(t.TempDir(), "ferry.test/audit", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(context.Background(), d, s, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ev := event(0)
	if err := l.Append(ctx, ev); !errors.Is(err, context.Canceled) {
		t.Errorf("Append with a canceled context: %v", err)
	}
	if err := l.Append(context.Background(), ev); err != nil || ev.Seq != 0 {
		t.Errorf("Append = %v, Seq %d", err, ev.Seq)
	}
}

func TestKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	s1, v1, err := audit.LoadOrCreateKey(dir, "ferry.test/audit", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{audit.KeyFile: 0o600, audit.PublicKeyFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, %v; want mode %v", name, fi.Mode(), err, mode)
		}
	}
	os.Remove(filepath.Join(dir, audit.PublicKeyFile))
	s2, v2, err := audit.LoadOrCreateKey(dir, "other-name", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Name() != "ferry.test/audit" || s2.KeyHash() != s1.KeyHash() || v2.KeyHash() != v1.KeyHash() {
		t.Errorf("reloaded key %s %08x, want %s %08x", s2.Name(), s2.KeyHash(), s1.Name(), s1.KeyHash())
	}
	v3, err := audit.LoadVerifier(dir) // the public key was rewritten
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := note.Sign(&note.Note{Text: "hello\n"}, s2)
	if _, err := note.Open(msg, note.VerifierList(v3)); err != nil {
		t.Errorf("verify with loaded verifier: %v", err)
	}
	if _, _, err := audit.LoadOrCreateKey(t.TempDir(), "bad name", rand.Reader); err == nil {
		t.Errorf("a key name with a space was accepted")
	}
}

func TestQuery(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		l := e.open(t)
		evs := fill(t, l, 0, 30)
		extra := &ferry.Event{Time: t0.Add(time.Hour), Action: "file.read", Actor: "user0@acme.test", Org: "acme", OrgID: "org1", Path: "/clients/globexx/x"}
		if err := l.Append(ctx, extra); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, extra)
		for _, tc := range []struct {
			name string
			f    audit.Filter
		}{
			{"all", audit.Filter{}},
			{"actor", audit.Filter{Actor: "user1@acme.test"}},
			{"actor+time", audit.Filter{Actor: "user1@acme.test", Since: t0.Add(5 * time.Second), Until: t0.Add(20 * time.Second)}},
			{"since", audit.Filter{Since: t0.Add(25 * time.Second)}},
			{"action", audit.Filter{Action: "file.read"}},
			{"action prefix", audit.Filter{Action: "file.*"}},
			{"action prefix case", audit.Filter{Action: "FILE.*"}},
			{"party name", audit.Filter{Party: "Globex"}},
			{"party id", audit.Filter{Party: "p-initech", Action: "file.write"}},
			{"org", audit.Filter{Org: "acme", Until: t0.Add(3 * time.Second)}},
			{"org id", audit.Filter{Org: "org1", Path: "/clients/initech"}},
			{"path", audit.Filter{Path: "/clients/globex"}},
			{"path slash", audit.Filter{Path: "/clients/globex/"}},
			{"path file", audit.Filter{Path: "/clients/globex/file4.csv"}},
			{"path like", audit.Filter{Path: "/clients/%"}},
			{"none", audit.Filter{Actor: "nobody"}},
		} {
			var want []int64
			for _, ev := range evs {
				if matches(tc.f, ev) {
					want = append(want, ev.Seq)
				}
			}
			var got []int64
			err := audit.Query(ctx, e.d, tc.f, func(ev *ferry.Event) error {
				if ev.Actor != evs[ev.Seq].Actor || !ev.Time.Equal(evs[ev.Seq].Time) {
					return fmt.Errorf("record %d = %+v, want %+v", ev.Seq, ev, evs[ev.Seq])
				}
				got = append(got, ev.Seq)
				return nil
			})
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: got %v, want %v", tc.name, got, want)
			}
		}
		// Sanity checks of the reference filter itself.
		count := func(f audit.Filter) (n int) {
			audit.Query(ctx, e.d, f, func(*ferry.Event) error { n++; return nil })
			return n
		}
		if n := count(audit.Filter{Path: "/clients/globex"}); n != 15 {
			t.Errorf("path /clients/globex: %d events, want 15 (not /clients/globexx)", n)
		}
		if n := count(audit.Filter{Action: "file.*"}); n != 19 {
			t.Errorf("file.*: %d events, want 19", n)
		}
	})
}

// matches is the reference semantics of audit.Filter.
func matches(f audit.Filter, ev *ferry.Event) bool {
	if !f.Since.IsZero() && ev.Time.Before(f.Since) || !f.Until.IsZero() && !ev.Time.Before(f.Until) {
		return false
	}
	ok := func(want string, have ...string) bool { return want == "" || slices.Contains(have, want) }
	if !ok(f.Actor, ev.Actor) || !ok(f.Org, ev.Org, ev.OrgID) || !ok(f.Party, ev.Party, ev.PartyID) {
		return false
	}
	if a, prefix := cutStar(f.Action); prefix {
		if len(ev.Action) < len(a) || ev.Action[:len(a)] != a {
			return false
		}
	} else if !ok(f.Action, ev.Action) {
		return false
	}
	if f.Path != "" {
		p := f.Path
		if p[len(p)-1] == '/' {
			p = p[:len(p)-1]
		}
		if ev.Path != p && (len(ev.Path) <= len(p) || ev.Path[:len(p)+1] != p+"/") {
			return false
		}
	}
	return true
}

func cutStar(s string) (string, bool) {
	if len(s) > 0 && s[len(s)-1] == '*' {
		return s[:len(s)-1], true
	}
	return s, false
}

// TestTwoWriters checks that two Logs on one database (two nodes of a
// cluster) interleave their appends into one consistent log.
func TestTwoWriters(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := e.open(t)
		e2 := *e
		e2.file = filepath.Join(t.TempDir(), "checkpoint")
		b := e2.open(t)
		for i := range 10 {
			l := a
			if i%3 == 0 {
				l = b
			}
			ev := event(i)
			if err := l.Append(ctx, ev); err != nil {
				t.Fatal(err)
			}
			if ev.Seq != int64(i) {
				t.Fatalf("append %d got Seq %d", i, ev.Seq)
			}
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		rep, err := audit.Verify(ctx, e.d, e.verifier, nil, e.checkpointFile(t))
		if err != nil || rep.Size != 10 {
			t.Fatalf("Verify = %+v, %v", rep, err)
		}
	})
}
