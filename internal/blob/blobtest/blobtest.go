// Package blobtest is the conformance suite every blob.Backend passes.
package blobtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"ferry.dev/ferry/internal/blob"
	"ferry.dev/ferry/internal/ferry"
)

// Run runs the conformance suite against the backends newBackend returns. It
// calls newBackend once per subtest; each call must return an empty backend
// that no other test uses, and register any cleanup with t.Cleanup.
func Run(t *testing.T, newBackend func(t *testing.T) blob.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b blob.Backend)
	}{
		{"RoundTrip", testRoundTrip},
		{"ReadAt", testReadAt},
		{"Empty", testEmpty},
		{"Large", testLarge},
		{"InvisibleBeforeCommit", testInvisibleBeforeCommit},
		{"Abort", testAbort},
		{"WriterEnds", testWriterEnds},
		{"Exist", testExist},
		{"CommitRace", testCommitRace},
		{"Delete", testDelete},
		{"DeleteMissing", testDeleteMissing},
		{"InvalidID", testInvalidID},
		{"List", testList},
		{"ListStops", testListStops},
		{"Concurrent", testConcurrent},
		{"ContextDone", testContextDone},
		{"ContextDoneWhileWriting", testContextDoneWhileWriting},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newBackend(t))
		})
	}
}

func testRoundTrip(t *testing.T, b blob.Backend) {
	id := blob.NewID()
	data := randomBytes(1, 100_000)
	put(t, b, id, data)
	if got := get(t, b, id); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, differing from the %d written", len(got), len(data))
	}
}

func testReadAt(t *testing.T, b blob.Backend) {
	id := blob.NewID()
	const size = 10_000
	data := randomBytes(2, size)
	put(t, b, id, data)
	r := open(t, b, id)
	if got := r.Size(); got != size {
		t.Fatalf("Size = %d, want %d", got, size)
	}
	offsets := []int64{0, 1, 511, 512, 4095, 4096, 4097, size / 2, size - 100, size - 1, size, size + 1, size + 1000, 1 << 40}
	lengths := []int{1, 7, 100, 4096, size, size + 10}
	for _, off := range offsets {
		for _, n := range lengths {
			p := make([]byte, n)
			got, err := r.ReadAt(p, off)
			want := int64(0)
			if off < size {
				want = min(int64(n), size-off)
			}
			if int64(got) != want {
				t.Fatalf("ReadAt(len %d, off %d) = %d bytes, want %d (err %v)", n, off, got, want, err)
			}
			switch {
			case off+int64(n) < size:
				if err != nil {
					t.Fatalf("ReadAt(len %d, off %d) inside the blob: err = %v, want nil", n, off, err)
				}
			case off+int64(n) == size:
				// io.ReaderAt allows either nil or io.EOF here.
				if err != nil && err != io.EOF {
					t.Fatalf("ReadAt(len %d, off %d) up to the end: err = %v, want nil or io.EOF", n, off, err)
				}
			default:
				if err != io.EOF {
					t.Fatalf("ReadAt(len %d, off %d) past the end: err = %v, want io.EOF", n, off, err)
				}
			}
			if want > 0 && !bytes.Equal(p[:got], data[off:off+want]) {
				t.Fatalf("ReadAt(len %d, off %d): wrong bytes", n, off)
			}
		}
	}
	if _, err := r.ReadAt(make([]byte, 1), -1); ferry.KindOf(err) != ferry.Invalid {
		t.Errorf("ReadAt at offset -1: err = %v, want kind Invalid", err)
	}
}

func testEmpty(t *testing.T, b blob.Backend) {
	id := blob.NewID()
	w, err := b.Create(context.Background(), id)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	r := open(t, b, id)
	if got := r.Size(); got != 0 {
		t.Errorf("Size = %d, want 0", got)
	}
	if n, err := r.ReadAt(make([]byte, 10), 0); n != 0 || err != io.EOF {
		t.Errorf("ReadAt = %d, %v; want 0, io.EOF", n, err)
	}
	if got := list(t, b); !slices.Equal(got, []string{id}) {
		t.Errorf("List = %q, want [%s]", got, id)
	}
}

func testLarge(t *testing.T, b blob.Backend) {
	id := blob.NewID()
	const size = 8 << 20
	data := randomBytes(3, size)
	w, err := b.Create(context.Background(), id)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	defer w.Abort()
	chunks := []int{7919, 1, 65537, 3, 131071, 0, 1 << 20, 4093}
	for off, i := 0, 0; off < size; i++ {
		n := min(chunks[i%len(chunks)], size-off)
		m, err := w.Write(data[off : off+n])
		if err != nil || m != n {
			t.Fatalf("Write(%d bytes) at %d = %d, %v", n, off, m, err)
		}
		off += n
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	r := open(t, b, id)
	if got := r.Size(); got != size {
		t.Fatalf("Size = %d, want %d", got, size)
	}
	if got := readAll(t, r); !bytes.Equal(got, data) {
		t.Fatal("read back bytes differ from those written")
	}
	rng := rand.New(rand.NewPCG(4, 4))
	p := make([]byte, 100_000)
	for range 50 {
		off := rng.Int64N(size)
		n, err := r.ReadAt(p, off)
		want := min(int64(len(p)), size-off)
		if int64(n) != want || (err != nil && err != io.EOF) || !bytes.Equal(p[:n], data[off:off+want]) {
			t.Fatalf("ReadAt(len %d, off %d) = %d, %v; want %d correct bytes", len(p), off, n, err, want)
		}
	}
}

func testInvisibleBeforeCommit(t *testing.T, b blob.Backend) {
	ctx := context.Background()
	id := blob.NewID()
	w, err := b.Create(ctx, id)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	defer w.Abort()
	write(t, w, []byte("not yet"))
	wantNotExist(t, b, id)
	if got := list(t, b); len(got) != 0 {
		t.Errorf("List before Commit = %q, want nothing", got)
	}
	if err := b.Delete(ctx, id); ferry.KindOf(err) != ferry.NotExist {
		t.Errorf("Delete before Commit: err = %v, want kind NotExist", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if got := get(t, b, id); string(got) != "not yet" {
		t.Errorf("after Commit, read %q", got)
	}
}

func testAbort(t *testing.T, b blob.Backend) {
	ctx := context.Background()
	id := blob.NewID()
	w, err := b.Create(ctx, id)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	write(t, w, randomBytes(5, 50_000))
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	wantNotExist(t, b, id)
	if got := list(t, b); len(got) != 0 {
		t.Errorf("List after Abort = %q, want nothing", got)
	}
	// The id was never taken: it can still be committed.
	put(t, b, id, []byte("second try"))
	if got := get(t, b, id); string(got) != "second try" {
		t.Errorf("after Abort and a new Commit, read %q", got)
	}
}

// testWriterEnds checks what happens after Commit or Abort: Abort after Commit
// is a harmless no-op (so callers may defer it); everything else fails.
func testWriterEnds(t *testing.T, b blob.Backend) {
	ctx := context.Background()
	id := blob.NewID()
	w, err := b.Create(ctx, id)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	write(t, w, []byte("kept"))
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := w.Abort(); err != nil {
		t.Errorf("Abort after Commit: %v, want nil", err)
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Error("Write after Commit succeeded")
	}
	if err := w.Commit(); err == nil {
		t.Error("second Commit succeeded")
	}
	if got := get(t, b, id); string(got) != "kept" {
		t.Errorf("after Abort following Commit, read %q, want %q", got, "kept")
	}

	w, err = b.Create(ctx, blob.NewID())
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	if err := w.Abort(); err != nil {
		t.Errorf("second Abort: %v, want nil", err)
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Error("Write after Abort succeeded")
	}
	if err := w.Commit(); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	if got := list(t, b); !slices.Equal(got, []string{id}) {
		t.Errorf("List = %q, want [%s]", got, id)
	}
}

func testExist(t *testing.T, b blob.Backend) {
	id := blob.NewID()
	put(t, b, id, []byte("original"))
	w, err := b.Create(context.Background(), id)
	if err == nil {
		defer w.Abort()
		if _, err = w.Write([]byte("replacement")); err == nil {
			err = w.Commit()
		}
	}
	if ferry.KindOf(err) != ferry.Exist {
		t.Errorf("Create and Commit on an existing id: err = %v, want kind Exist", err)
	}
	if got := get(t, b, id); string(got) != "original" {
		t.Errorf("after a second Create, read %q, want %q", got, "original")
	}
	if got := list(t, b); !slices.Equal(got, []string{id}) {
		t.Errorf("List = %q, want [%s]", got, id)
	}
}

// testCommitRace checks that of two writers of one id, created before either
// commits, the first Commit wins and the second fails with Exist.
func testCommitRace(t *testing.T, b blob.Backend) {
	ctx := context.Background()
	id := blob.NewID()
	w1, err := b.Create(ctx, id)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	defer w1.Abort()
	w2, err := b.Create(ctx, id)
	if err != nil {
		t.Fatalf("second Create before any Commit: %v", err)
	}
	defer w2.Abort()
	write(t, w1, []byte("first"))
	write(t, w2, []byte("second"))
	if err := w1.Commit(); err != nil {
		t.Fatalf("first Commit: %v", err)
	}
	if err := w2.Commit(); ferry.KindOf(err) != ferry.Exist {
		t.Errorf("second Commit: err = %v, want kind Exist", err)
	}
	if got := get(t, b, id); string(got) != "first" {
		t.Errorf("read %q, want %q", got, "first")
	}
}

func testDelete(t *testing.T, b blob.Backend) {
	ctx := context.Background()
	id, other := blob.NewID(), blob.NewID()
	put(t, b, id, []byte("doomed"))
	put(t, b, other, []byte("kept"))
	if err := b.Delete(ctx, id); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantNotExist(t, b, id)
	if err := b.Delete(ctx, id); ferry.KindOf(err) != ferry.NotExist {
		t.Errorf("second Delete: err = %v, want kind NotExist", err)
	}
	if got := list(t, b); !slices.Equal(got, []string{other}) {
		t.Errorf("List = %q, want [%s]", got, other)
	}
	if got := get(t, b, other); string(got) != "kept" {
		t.Errorf("other blob reads %q", got)
	}
}

func testDeleteMissing(t *testing.T, b blob.Backend) {
	if err := b.Delete(context.Background(), blob.NewID()); ferry.KindOf(err) != ferry.NotExist {
		t.Errorf("Delete of a missing blob: err = %v, want kind NotExist", err)
	}
}

// invalidIDs are strings that are not blob ids; every Backend method rejects
// them with ferry.Invalid.
var invalidIDs = []string{
	"",
	"../x",
	"/etc/passwd",
	"a/b",
	".",
	"..",
	"0123456789abcdef0123456789abcde",   // 31 characters
	"0123456789abcdef0123456789abcdef0", // 33 characters
	"0123456789ABCDEF0123456789ABCDEF",  // upper case
	"0123456789abcdef0123456789abcdeg",
	"0123456789abcdef/123456789abcdef",
	"..23456789abcdef0123456789abcdef",
	"0123456789abcdef0123456789abcde\x00",
	"0123456789abcdef0123456789abcde\n",
	" 123456789abcdef0123456789abcdef",
	"0123456789abcdef0123456789abcd\u00e9", // 32 bytes, not hex
}

func testInvalidID(t *testing.T, b blob.Backend) {
	ctx := context.Background()
	for _, id := range invalidIDs {
		if blob.ValidID(id) {
			t.Errorf("ValidID(%q) = true", id)
		}
		w, err := b.Create(ctx, id)
		if err == nil {
			w.Abort()
		}
		if ferry.KindOf(err) != ferry.Invalid {
			t.Errorf("Create(%q): err = %v, want kind Invalid", id, err)
		}
		r, err := b.Open(ctx, id)
		if err == nil {
			r.Close()
		}
		if ferry.KindOf(err) != ferry.Invalid {
			t.Errorf("Open(%q): err = %v, want kind Invalid", id, err)
		}
		if err := b.Delete(ctx, id); ferry.KindOf(err) != ferry.Invalid {
			t.Errorf("Delete(%q): err = %v, want kind Invalid", id, err)
		}
	}
	if got := list(t, b); len(got) != 0 {
		t.Errorf("List = %q, want nothing", got)
	}
}

func testList(t *testing.T, b blob.Backend) {
	ctx := context.Background()
	if got := list(t, b); len(got) != 0 {
		t.Fatalf("List of a new backend = %q, want nothing", got)
	}
	var want []string
	for i := range 40 {
		id := blob.NewID()
		if i%10 == 0 {
			id = "00" + id[2:] // several ids sharing a prefix
		}
		put(t, b, id, []byte(id))
		want = append(want, id)
	}
	deleted := want[5]
	if err := b.Delete(ctx, deleted); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	want = slices.DeleteFunc(want, func(id string) bool { return id == deleted })
	aborted, err := b.Create(ctx, blob.NewID())
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	write(t, aborted, []byte("aborted"))
	if err := aborted.Abort(); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	pending, err := b.Create(ctx, blob.NewID())
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	defer pending.Abort()
	write(t, pending, []byte("pending"))

	slices.Sort(want)
	if got := list(t, b); !slices.Equal(got, want) {
		t.Errorf("List = %q\nwant %q", got, want)
	}
}

func testListStops(t *testing.T, b blob.Backend) {
	for range 3 {
		put(t, b, blob.NewID(), []byte("x"))
	}
	stop := errors.New("stop")
	calls := 0
	err := b.List(context.Background(), func(string) error {
		calls++
		return stop
	})
	if err != stop {
		t.Errorf("List returned %v, want fn's error unchanged", err)
	}
	if calls != 1 {
		t.Errorf("fn called %d times after returning an error, want 1", calls)
	}
}

func testConcurrent(t *testing.T, b blob.Backend) {
	const writers = 8
	ids := make([]string, writers)
	for i := range ids {
		ids[i] = blob.NewID()
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	for i, id := range ids {
		seed := uint64(100 + i)
		wg.Go(func() {
			if err := putErr(b, id, randomBytes(seed, 300_000)); err != nil {
				errs <- fmt.Errorf("writer %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	for i, id := range ids {
		r, err := b.Open(context.Background(), id)
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer r.Close()
		data := randomBytes(uint64(100+i), 300_000)
		// Parallel ReadAt calls on one Reader, as io.ReaderAt allows.
		for part := range 4 {
			wg.Go(func() {
				off := part * len(data) / 4
				p := make([]byte, len(data)/4)
				n, err := r.ReadAt(p, int64(off))
				if n != len(p) || (err != nil && err != io.EOF) || !bytes.Equal(p, data[off:off+n]) {
					errs <- fmt.Errorf("blob %d part %d: ReadAt = %d, %v, or wrong bytes", i, part, n, err)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := slices.Clone(ids)
	slices.Sort(want)
	if got := list(t, b); !slices.Equal(got, want) {
		t.Errorf("List = %q\nwant %q", got, want)
	}
}

func testContextDone(t *testing.T, b blob.Backend) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	existing := blob.NewID()
	put(t, b, existing, []byte("existing"))

	id := blob.NewID()
	w, err := b.Create(ctx, id)
	if err == nil {
		w.Abort()
		t.Error("Create with a cancelled context succeeded")
	}
	if r, err := b.Open(ctx, existing); err == nil {
		r.Close()
		t.Error("Open with a cancelled context succeeded")
	}
	if err := b.Delete(ctx, existing); err == nil {
		t.Error("Delete with a cancelled context succeeded")
	}
	if err := b.List(ctx, func(string) error { return nil }); err == nil {
		t.Error("List with a cancelled context succeeded")
	}
	wantNotExist(t, b, id)
	if got := get(t, b, existing); string(got) != "existing" {
		t.Errorf("existing blob reads %q", got)
	}
}

// testContextDoneWhileWriting checks that ctx governs the whole write: when it
// is cancelled before Commit, Commit fails and nothing becomes visible.
func testContextDoneWhileWriting(t *testing.T, b blob.Backend) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	id := blob.NewID()
	w, err := b.Create(ctx, id)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	defer w.Abort()
	write(t, w, []byte("interrupted"))
	cancel()
	var werr error
	if _, werr = w.Write([]byte(" upload")); werr == nil {
		werr = w.Commit()
	}
	if werr == nil {
		t.Error("Write and Commit after the context was cancelled succeeded")
	}
	wantNotExist(t, b, id)
	if got := list(t, b); len(got) != 0 {
		t.Errorf("List = %q, want nothing", got)
	}
}

// put commits data under id.
func put(t *testing.T, b blob.Backend, id string, data []byte) {
	t.Helper()
	if err := putErr(b, id, data); err != nil {
		t.Fatal(err)
	}
}

func putErr(b blob.Backend, id string, data []byte) error {
	w, err := b.Create(context.Background(), id)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	defer w.Abort()
	if n, err := w.Write(data); err != nil || n != len(data) {
		return fmt.Errorf("Write(%d bytes) = %d, %w", len(data), n, err)
	}
	if err := w.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// get returns the content of the blob id.
func get(t *testing.T, b blob.Backend, id string) []byte {
	t.Helper()
	return readAll(t, open(t, b, id))
}

// open opens the blob id, closing it when the test ends.
func open(t *testing.T, b blob.Backend, id string) blob.Reader {
	t.Helper()
	r, err := b.Open(context.Background(), id)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

func readAll(t *testing.T, r blob.Reader) []byte {
	t.Helper()
	data, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	if err != nil {
		t.Fatalf("reading the blob: %v", err)
	}
	return data
}

func write(t *testing.T, w blob.Writer, data []byte) {
	t.Helper()
	if n, err := w.Write(data); err != nil || n != len(data) {
		t.Fatalf("Write(%d bytes) = %d, %v", len(data), n, err)
	}
}

// list returns the sorted ids List reports.
func list(t *testing.T, b blob.Backend) []string {
	t.Helper()
	var ids []string
	err := b.List(context.Background(), func(id string) error {
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	slices.Sort(ids)
	if len(ids) != len(slices.Compact(slices.Clone(ids))) {
		t.Errorf("List reported an id twice: %q", ids)
	}
	return ids
}

// wantNotExist checks that Open reports no blob under id.
func wantNotExist(t *testing.T, b blob.Backend, id string) {
	t.Helper()
	r, err := b.Open(context.Background(), id)
	if err == nil {
		r.Close()
	}
	if ferry.KindOf(err) != ferry.NotExist {
		t.Errorf("Open(%s): err = %v, want kind NotExist", id, err)
	}
}

// randomBytes returns n pseudo-random bytes, the same for the same seed.
func randomBytes(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:8], seed)
	p := make([]byte, n)
	rand.NewChaCha8(key).Read(p)
	return p
}
