package blob_test

import (
	"context"
	"go/build"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"ferry.dev/ferry/internal/blob"
	"ferry.dev/ferry/internal/blob/blobtest"
	"ferry.dev/ferry/internal/blob/local"
)

func TestNewID(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		id := blob.NewID()
		if !blob.ValidID(id) {
			t.Fatalf("NewID() = %q, not a valid id", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"0123456789abcdef0123456789abcdef":  true,
		"ffffffffffffffffffffffffffffffff":  true,
		"":                                  false,
		"0123456789abcdef0123456789abcde":   false,
		"0123456789abcdef0123456789abcdef0": false,
		"0123456789ABCDEF0123456789ABCDEF":  false,
		"0123456789abcdef0123456789abcdeg":  false,
		"../../../../../../../../etc/passw": false,
		"0123456789abcdef/123456789abcdef":  false,
	} {
		if got := blob.ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}

func newLocal(t *testing.T) *local.Local {
	l, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestWithMetricsConformance checks that the decorator keeps the Backend
// contract.
func TestWithMetricsConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Backend {
		var n atomic.Int64
		count := func(k int64) { n.Add(k) }
		return blob.WithMetrics(newLocal(t), count, count)
	})
}

func TestWithMetrics(t *testing.T) {
	ctx := context.Background()
	var written, read atomic.Int64
	b := blob.WithMetrics(newLocal(t), func(n int64) { written.Add(n) }, func(n int64) { read.Add(n) })

	id := blob.NewID()
	w, err := b.Create(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "hello, ")
	io.WriteString(w, "world")
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := written.Load(); got != 12 {
		t.Errorf("written = %d, want 12", got)
	}

	r, err := b.Open(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := make([]byte, 100)
	if n, err := r.ReadAt(p, 7); n != 5 || err != io.EOF || string(p[:n]) != "world" {
		t.Errorf("ReadAt = %d, %v, %q", n, err, p[:n])
	}
	r.ReadAt(p, 50) // past the end: nothing to count
	if got := read.Load(); got != 5 {
		t.Errorf("read = %d, want 5", got)
	}

	// nil functions count nothing.
	b = blob.WithMetrics(newLocal(t), nil, nil)
	w, err = b.Create(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "x")
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestImports keeps the blob packages on the inner ring: the standard library,
// internal/ferry, and each other.
func TestImports(t *testing.T) {
	allowed := func(path string) bool {
		first, _, _ := strings.Cut(path, "/")
		return !strings.Contains(first, ".") ||
			path == "ferry.dev/ferry/internal/ferry" ||
			path == "ferry.dev/ferry/internal/blob" ||
			strings.HasPrefix(path, "ferry.dev/ferry/internal/blob/")
	}
	for _, dir := range []string{".", "local", "blobtest"} {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range pkg.Imports {
			if !allowed(imp) {
				t.Errorf("%s imports %s", pkg.Name, imp)
			}
		}
	}
}
