package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ferry.dev/ferry/internal/admin"
	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/blob/local"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/guard"
	"ferry.dev/ferry/internal/keys"
	"ferry.dev/ferry/internal/transfer"
)

// The transfer benchmarks run transfer.Service.Put and Get (Open, then
// Download.Read to the end) through the real stack that `ferry serve` wires:
// SQLite on a file, the local blob store, file KEKs and the audit log, with
// the data directory on tmpfs (/dev/shm) so that the figures are Ferry's
// work and not the disk's. Each size runs twice, side by side: impl=plain is
// the reference, a plain atomic file write (temporary file, write, fsync,
// close, rename, directory fsync) or a plain read of the same bytes on the
// same tmpfs; impl=ferry is the service. The server runs in FIPS 140-3 mode,
// test binaries do not unless told, so compare them with
//
//	GODEBUG=fips140=on go test -run '^$' -bench Transfer -count 5 ./bench/ > transfer.txt
//	benchstat -col /impl transfer.txt
//
// (docs/BENCHMARKS.md has the pinned benchstat version and the results).

// transferSizes are the file sizes benchmarked.
var transferSizes = []struct {
	name string
	n    int
}{
	{"64KiB", 64 << 10},
	{"1MiB", 1 << 20},
	{"64MiB", 64 << 20},
}

// copyBufSize is the buffer both sides copy with: the size transfer.Put and
// the REST download handler use.
const copyBufSize = 256 << 10

// benchDataDir returns a fresh directory on tmpfs (/dev/shm) if there is one,
// else in b.TempDir, removed when the benchmark ends.
func benchDataDir(b *testing.B) string {
	b.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "ferry-bench-")
		if err == nil {
			b.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return b.TempDir()
}

// stack is the transfer service wired as in internal/cli/serve.go.
type stack struct {
	tr  *transfer.Service
	p   *ferry.Principal
	dir string       // data directory
	g   *guard.Guard // the exfiltration guard, nil unless asked for
}

// newStack wires the stack, with the exfiltration guard if withGuard (as
// `ferry serve` does) or without it.
func newStack(b *testing.B, withGuard bool) *stack {
	b.Helper()
	ctx := context.Background()
	dir := benchDataDir(b)
	keyDir := filepath.Join(dir, "keys")
	for _, d := range []string{keyDir, filepath.Join(dir, "audit")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	d, err := db.Open(ctx, filepath.Join(dir, "ferry.db"))
	if err != nil {
		b.Fatal(err)
	}
	keks, err := keys.NewFileKEK(keyDir, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	signer, _, err := audit.LoadOrCreateKey(keyDir, "ferry-audit", rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	alog, err := audit.Open(ctx, d, signer, filepath.Join(dir, "audit", "checkpoint"), time.Now, logger)
	if err != nil {
		b.Fatal(err)
	}
	blobs, err := local.New(filepath.Join(dir, "blobs"))
	if err != nil {
		b.Fatal(err)
	}
	// Cleanups run last-in first-out: the audit log before the database.
	b.Cleanup(func() { d.Close() })
	b.Cleanup(func() { keks.Close() })
	b.Cleanup(func() { blobs.Close() })
	b.Cleanup(func() {
		if err := alog.Close(); err != nil {
			b.Error(err)
		}
	})
	var g *guard.Guard
	if withGuard {
		if g, err = guard.New(ctx, guard.Config{DB: d, Audit: alog, Now: time.Now, Rand: rand.Reader, Logger: logger}); err != nil {
			b.Fatal(err)
		}
	}
	tr := transfer.New(transfer.Config{DB: d, Blobs: blobs, KEKs: keks, Audit: alog, Now: time.Now, Rand: rand.Reader, Logger: logger, Guard: g})
	au := auth.New(d, alog, time.Now, rand.Reader, logger)
	ad := admin.New(d, au, tr, keks, alog, time.Now, rand.Reader, logger)
	op := &ferry.Principal{Operator: true, Remote: "bench"}
	org, err := ad.CreateOrg(ctx, op, "bench")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ad.CreateFolder(ctx, op, "bench", "/bench", ""); err != nil {
		b.Fatal(err)
	}
	return &stack{tr: tr, p: &ferry.Principal{Operator: true, OrgID: org.ID, Remote: "bench"}, dir: dir, g: g}
}

// benchContent returns n bytes that do not compress or repeat.
func benchContent(b *testing.B, n int) []byte {
	b.Helper()
	p := make([]byte, n)
	if _, err := rand.Read(p); err != nil {
		b.Fatal(err)
	}
	return p
}

// sink is an io.Writer that discards, without io.Discard's ReadFrom, so that
// io.CopyBuffer really copies through the given buffer, as the REST handler
// does into the response.
type sink struct{}

func (sink) Write(p []byte) (int, error) { return len(p), nil }

// onlyReader hides an *os.File's WriteTo, for the same reason.
type onlyReader struct{ io.Reader }

// plainAtomicWrite writes data to path as the reference: temporary file in
// the same directory, write, fsync, close, rename, fsync of the directory.
func plainAtomicWrite(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// plainRead reads the file at path to the end through buf.
func plainRead(path string, buf []byte) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return io.CopyBuffer(sink{}, onlyReader{f}, buf)
}

// BenchmarkTransferPut measures transfer.Service.Put of a new version of the
// same file (the previous version's blob is deleted, as a re-upload does)
// against a plain atomic file write of the same bytes on the same tmpfs.
func BenchmarkTransferPut(b *testing.B) {
	s := newStack(b, false)
	plainDir := filepath.Join(s.dir, "plain")
	if err := os.Mkdir(plainDir, 0o700); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, size := range transferSizes {
		data := benchContent(b, size.n)
		b.Run("size="+size.name+"/impl=plain", func(b *testing.B) {
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			for b.Loop() {
				if err := plainAtomicWrite(plainDir, "f-"+size.name, data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("size="+size.name+"/impl=ferry", func(b *testing.B) {
			path := "/bench/f-" + size.name
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			for b.Loop() {
				f, err := s.tr.Put(ctx, s.p, path, bytesReader(data))
				if err != nil {
					b.Fatal(err)
				}
				if f.Size != int64(size.n) {
					b.Fatalf("stored %d bytes, want %d", f.Size, size.n)
				}
			}
		})
	}
}

// BenchmarkTransferGet measures transfer.Service.Open plus Download.Read of
// the whole file, copied out through a 256 KiB buffer as the REST handler
// does, against a plain read of the same bytes from the same tmpfs.
func BenchmarkTransferGet(b *testing.B) {
	s := newStack(b, false)
	plainDir := filepath.Join(s.dir, "plain")
	if err := os.Mkdir(plainDir, 0o700); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	buf := make([]byte, copyBufSize)
	for _, size := range transferSizes {
		data := benchContent(b, size.n)
		name := "f-" + size.name
		if err := plainAtomicWrite(plainDir, name, data); err != nil {
			b.Fatal(err)
		}
		if _, err := s.tr.Put(ctx, s.p, "/bench/"+name, bytesReader(data)); err != nil {
			b.Fatal(err)
		}
		b.Run("size="+size.name+"/impl=plain", func(b *testing.B) {
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			for b.Loop() {
				n, err := plainRead(filepath.Join(plainDir, name), buf)
				if err != nil || n != int64(size.n) {
					b.Fatalf("read %d bytes: %v", n, err)
				}
			}
		})
		b.Run("size="+size.name+"/impl=ferry", func(b *testing.B) {
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			for b.Loop() {
				if err := ferryGet(ctx, s, "/bench/"+name, buf, int64(size.n)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func ferryGet(ctx context.Context, s *stack, path string, buf []byte, want int64) error {
	d, err := s.tr.Open(ctx, s.p, path)
	if err != nil {
		return err
	}
	rc, err := d.Read(ctx, 0, d.File.Size)
	if err != nil {
		return err
	}
	n, err := io.CopyBuffer(sink{}, rc, buf)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != want {
		err = fmt.Errorf("read %d bytes, want %d", n, want)
	}
	return err
}

// bytesReader is a minimal reader over p (no WriteTo, no Seek), like a
// request body.
func bytesReader(p []byte) io.Reader { return &sliceReader{p: p} }

type sliceReader struct{ p []byte }

func (r *sliceReader) Read(b []byte) (int, error) {
	if len(r.p) == 0 {
		return 0, io.EOF
	}
	n := copy(b, r.p)
	r.p = r.p[n:]
	return n, nil
}
