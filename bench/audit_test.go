package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
)

// openAudit opens an audit log on a fresh SQLite database in dir.
func openAudit(tb testing.TB, dir string) (*db.DB, *audit.Log, string) {
	tb.Helper()
	d, err := db.Open(context.Background(), filepath.Join(dir, "ferry.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	s, _, err := audit.LoadOrCreateKey(filepath.Join(dir, "keys"), "bench/audit", rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	file := filepath.Join(dir, "checkpoint")
	l, err := audit.Open(context.Background(), d, s, file, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return d, l, file
}

// benchEvent is a typical file.read event (about 400 bytes of JSON).
func benchEvent(i int64) *ferry.Event {
	return &ferry.Event{
		Action: "file.read", Outcome: ferry.OutcomeOK,
		Actor: fmt.Sprintf("user%d@example.com", i%100), ActorID: "5f0c9a3e2b7d4c1a8e6f0b3d9c2a7e41",
		Org: "example", OrgID: "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
		Party: "Globex", PartyID: "a1b2c3d4e5f60718293a4b5c6d7e8f90",
		Object: "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b", Path: fmt.Sprintf("/clients/globex/reports/2025/report-%d.csv", i),
		Remote: "203.0.113.7:51234", Session: "c0ffee00c0ffee00c0ffee00c0ffee00",
		Bytes: 1 << 20, SHA256: "3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b", Protocol: "sftp",
	}
}

// BenchmarkAuditAppend measures appends from 64 concurrent callers on SQLite
// (group commit).
func BenchmarkAuditAppend(b *testing.B) {
	_, l, _ := openAudit(b, b.TempDir())
	defer l.Close()
	ctx := context.Background()
	var next atomic.Int64
	const callers = 64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := l.Append(ctx, benchEvent(i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/float64(l.Commits()), "rec/batch")
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkAuditAppendSerial measures appends from a single caller: one
// transaction per event.
func BenchmarkAuditAppendSerial(b *testing.B) {
	_, l, _ := openAudit(b, b.TempDir())
	defer l.Close()
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := range int64(b.N) {
		if err := l.Append(ctx, benchEvent(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkAuditVerify times Verify of a log of 1,000,000 events on SQLite.
// Building the log (in batches of 10,000) is not timed.
func BenchmarkAuditVerify(b *testing.B) {
	const n = 1_000_000
	d, file, v := millionLog(b, n)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		cp, err := os.ReadFile(file)
		if err != nil {
			b.Fatal(err)
		}
		rep, err := audit.Verify(ctx, d, v, nil, cp)
		if err != nil || rep.Records != n {
			b.Fatalf("Verify = %+v, %v", rep, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// millionLog builds a SQLite audit log of n events in a temporary directory,
// in large batches, and returns it with its checkpoint file and verifier.
func millionLog(b *testing.B, n int) (*db.DB, string, note.Verifier) {
	b.Helper()
	dir := b.TempDir()
	d, l, file := openAudit(b, dir)
	t := time.Now()
	const batch = 10_000
	evs := make([]*ferry.Event, batch)
	for i := 0; i < n; i += batch {
		for j := range evs {
			evs[j] = benchEvent(int64(i + j))
		}
		if err := l.AppendBatch(context.Background(), evs); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("built a log of %d events in %v", n, time.Since(t).Round(time.Millisecond))
	v, err := audit.LoadVerifier(filepath.Join(dir, "keys"))
	if err != nil {
		b.Fatal(err)
	}
	return d, file, v
}
