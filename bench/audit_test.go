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
// The log is built once (in large batches) and reused across runs.
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

var million struct {
	once sync.Once
	dir  string
	err  error
}

// millionLog builds (once per process) a SQLite audit log of n events.
func millionLog(b *testing.B, n int) (*db.DB, string, noteVerifier) {
	b.Helper()
	million.once.Do(func() {
		million.dir, million.err = os.MkdirTemp("", "ferry-bench-audit-")
		if million.err != nil {
			return
		}
		d, err := db.Open(context.Background(), filepath.Join(million.dir, "ferry.db"))
		if err != nil {
			million.err = err
			return
		}
		defer d.Close()
		s, _, err := audit.LoadOrCreateKey(filepath.Join(million.dir, "keys"), "bench/audit", rand.Reader)
		if err != nil {
			million.err = err
			return
		}
		l, err := audit.Open(context.Background(), d, s, filepath.Join(million.dir, "checkpoint"), nil, nil)
		if err != nil {
			million.err = err
			return
		}
		t := time.Now()
		const batch = 10_000
		evs := make([]*ferry.Event, batch)
		for i := 0; i < n && million.err == nil; i += batch {
			for j := range evs {
				evs[j] = benchEvent(int64(i + j))
			}
			million.err = l.AppendBatch(context.Background(), evs)
		}
		if err := l.Close(); million.err == nil {
			million.err = err
		}
		fmt.Fprintf(os.Stderr, "built a log of %d events in %v\n", n, time.Since(t).Round(time.Millisecond))
	})
	if million.err != nil {
		b.Fatal(million.err)
	}
	d, err := db.Open(context.Background(), filepath.Join(million.dir, "ferry.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	v, err := audit.LoadVerifier(filepath.Join(million.dir, "keys"))
	if err != nil {
		b.Fatal(err)
	}
	return d, filepath.Join(million.dir, "checkpoint"), v
}
