package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/guard"
	"ferry.dev/ferry/internal/transfer"
)

// The guard benchmarks measure what the exfiltration guard adds to a read:
// transfer Open + Read of a whole file, by a user principal (the guard does
// not count the operator), through the stack `ferry serve` wires, with the
// guard (impl=guard) and without (impl=noguard), side by side. The reader
// cycles through 100 files, so it stays under the default limit of 180
// distinct files and is never frozen: what is measured is the counting.
//
//	GODEBUG=fips140=on go test -run '^$' -bench 'Guard' -count 5 ./bench/ > guard.txt
//	benchstat -col /impl guard.txt
//
// BenchmarkGuardCheck times the guard's decision alone.

// guardFiles is how many distinct files the read benchmark cycles through.
const guardFiles = 100

// guardStack is the transfer service with or without the guard, and a user
// principal allowed to read everything.
func guardStack(b *testing.B, withGuard bool) (*transfer.Service, *ferry.Principal, *guard.Guard) {
	b.Helper()
	s := newStack(b, withGuard)
	reader := &ferry.Principal{UserID: ferry.NewID(nil), Email: "reader@bench.test", OrgID: s.p.OrgID, Role: ferry.RoleAdmin,
		TokenID: "benchtoken", Remote: "192.0.2.10:40000", Protocol: "https"}
	return s.tr, reader, s.g
}

// BenchmarkGuardRead reads whole files through transfer with and without
// the guard.
func BenchmarkGuardRead(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"64KiB", 64 << 10}, {"1MiB", 1 << 20}} {
		for _, impl := range []string{"noguard", "guard"} {
			b.Run(fmt.Sprintf("size=%s/impl=%s", size.name, impl), func(b *testing.B) {
				ctx := context.Background()
				tr, p, _ := guardStack(b, impl == "guard")
				op := &ferry.Principal{Operator: true, OrgID: p.OrgID, Remote: "bench"}
				data := benchContent(b, size.n)
				for i := range guardFiles {
					if _, err := tr.Put(ctx, op, fmt.Sprintf("/bench/f%03d", i), bytes.NewReader(data)); err != nil {
						b.Fatal(err)
					}
				}
				buf := make([]byte, copyBufSize)
				b.SetBytes(int64(size.n))
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					d, err := tr.Open(ctx, p, fmt.Sprintf("/bench/f%03d", i%guardFiles))
					if err != nil {
						b.Fatal(err)
					}
					rc, err := d.Read(ctx, 0, d.File.Size)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.CopyBuffer(sink{}, onlyReader{rc}, buf); err != nil {
						b.Fatal(err)
					}
					rc.Close()
				}
			})
		}
	}
}

// BenchmarkGuardCheck times one decision of the guard for a read (counting
// the file in the principal's, the address's and the organisation's
// windows), cycling through 100 files.
func BenchmarkGuardCheck(b *testing.B) {
	ctx := context.Background()
	_, p, g := guardStack(b, true)
	files := make([]*ferry.File, guardFiles)
	for i := range files {
		files[i] = &ferry.File{ID: fmt.Sprintf("file%03d", i), OrgID: p.OrgID, Path: fmt.Sprintf("/bench/f%03d", i), Size: 1 << 20}
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := g.CheckRead(ctx, p, files[i%guardFiles], 1<<10); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGuardOverhead isolates the guard's cost within one stack: the
// same files are read, alternating read by read (and which goes first), by
// the operator, whom the guard does not count (its check returns at once),
// and by an administrator, whom it counts. Everything else — the database,
// the audit log and its commits, the blobs — is shared, so the load of a
// busy machine hits both alike. It reports the time per read of each and
// the guard's overhead in per cent.
func BenchmarkGuardOverhead(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"64KiB", 64 << 10}, {"1MiB", 1 << 20}} {
		b.Run("size="+size.name, func(b *testing.B) {
			ctx := context.Background()
			data := benchContent(b, size.n)
			tr, user, _ := guardStack(b, true)
			// The same fields as the user, so that both audit records are alike.
			op := &ferry.Principal{Operator: true, Email: user.Email, TokenID: user.TokenID, OrgID: user.OrgID, Remote: user.Remote, Protocol: user.Protocol}
			for j := range guardFiles {
				if _, err := tr.Put(ctx, op, fmt.Sprintf("/bench/f%03d", j), bytes.NewReader(data)); err != nil {
					b.Fatal(err)
				}
			}
			type side struct {
				p   *ferry.Principal
				dur time.Duration
			}
			sides := []*side{{p: op}, {p: user}} // 0: not counted, 1: counted
			buf := make([]byte, copyBufSize)
			read := func(s *side, i int) {
				start := time.Now()
				d, err := tr.Open(ctx, s.p, fmt.Sprintf("/bench/f%03d", i%guardFiles))
				if err != nil {
					b.Fatal(err)
				}
				rc, err := d.Read(ctx, 0, d.File.Size)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(sink{}, onlyReader{rc}, buf); err != nil {
					b.Fatal(err)
				}
				rc.Close()
				s.dur += time.Since(start)
			}
			b.SetBytes(int64(2 * size.n))
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				first := i % 2
				read(sides[first], i)
				read(sides[1-first], i)
			}
			n := float64(b.N)
			plain, guarded := float64(sides[0].dur)/n, float64(sides[1].dur)/n
			b.ReportMetric(plain, "ns/read-noguard")
			b.ReportMetric(guarded, "ns/read-guard")
			b.ReportMetric(100*(guarded-plain)/plain, "overhead-%")
		})
	}
}
