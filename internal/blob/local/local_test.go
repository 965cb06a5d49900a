package local_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"ferry.dev/ferry/internal/blob"
	"ferry.dev/ferry/internal/blob/blobtest"
	"ferry.dev/ferry/internal/blob/local"
	"ferry.dev/ferry/internal/ferry"
)

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Backend {
		return newLocal(t, t.TempDir())
	})
}

func TestModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blobs")
	l := newLocal(t, dir)
	id := blob.NewID()
	put(t, l, id, "secret")
	for _, c := range []struct {
		name string
		want fs.FileMode
	}{
		{dir, fs.ModeDir | 0o700},
		{filepath.Join(dir, id[:2]), fs.ModeDir | 0o700},
		{filepath.Join(dir, id[:2], id), 0o600},
	} {
		fi, err := os.Stat(c.name)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got != c.want {
			t.Errorf("mode of %s = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestNoTempLeft checks that every way a write ends leaves only committed
// blobs in the directory.
func TestNoTempLeft(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := newLocal(t, dir)
	committed := blob.NewID()
	put(t, l, committed, "committed")

	w, err := l.Create(ctx, blob.NewID())
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("aborted"))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}

	// Losing the race for an id (another one than committed, which starts
	// with "00" one time in 256).
	raced := "00" + committed[2:]
	if raced == committed {
		raced = "01" + committed[2:]
	}
	w, err = l.Create(ctx, raced)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("loser"))
	put(t, l, raced, "winner")
	if err := w.Commit(); ferry.KindOf(err) != ferry.Exist {
		t.Fatalf("Commit = %v, want kind Exist", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	w, err = l.Create(cctx, blob.NewID())
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("cancelled"))
	cancel()
	if err := w.Commit(); err == nil {
		t.Fatal("Commit after cancel succeeded")
	}

	want := []string{
		filepath.Join(committed[:2], committed),
		filepath.Join(raced[:2], raced),
	}
	slices.Sort(want)
	if got := files(t, dir); !slices.Equal(got, want) {
		t.Errorf("files = %q, want %q", got, want)
	}
}

func TestCleanTemp(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := newLocal(t, dir)
	old := time.Now().Add(-2 * time.Hour)

	id := blob.NewID()
	put(t, l, id, "old blob")
	age(t, filepath.Join(dir, id[:2], id), old)
	plant(t, filepath.Join(dir, id[:2], ".tmp-0123456789abcdef"), old)
	plant(t, filepath.Join(dir, id[:2], "stray"), old)
	plant(t, filepath.Join(dir, "ff", ".tmp-crashed"), old)
	plant(t, filepath.Join(dir, "ff", ".tmp-recent"), time.Now())

	// A write in progress, its temporary file fresh.
	active := blob.NewID()
	w, err := l.Create(ctx, active)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	w.Write([]byte("in progress"))

	if err := l.CleanTemp(time.Hour); err != nil {
		t.Fatalf("CleanTemp: %v", err)
	}
	got := files(t, dir)
	for _, gone := range []string{filepath.Join(id[:2], ".tmp-0123456789abcdef"), filepath.Join("ff", ".tmp-crashed")} {
		if slices.Contains(got, gone) {
			t.Errorf("CleanTemp left %s", gone)
		}
	}
	for _, kept := range []string{filepath.Join(id[:2], id), filepath.Join(id[:2], "stray"), filepath.Join("ff", ".tmp-recent")} {
		if !slices.Contains(got, kept) {
			t.Errorf("CleanTemp removed %s", kept)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit of the write in progress: %v", err)
	}
	if got := get(t, l, id); got != "old blob" {
		t.Errorf("old blob reads %q", got)
	}
	if ids := list(t, l); !slices.Equal(ids, sorted(id, active)) {
		t.Errorf("List = %q", ids)
	}
}

// TestSymlinkOutside plants symbolic links inside the blob directory pointing
// outside it, as someone with access to the disk might, and checks that no
// method follows them out.
func TestSymlinkOutside(t *testing.T) {
	ctx := context.Background()
	dir, outside := t.TempDir(), t.TempDir()
	l := newLocal(t, dir)

	// Fan-out directories linked outside, absolutely and relatively.
	rel, err := filepath.Rel(dir, outside)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"secret"} // the files that should be outside at the end
	for prefix, target := range map[string]string{"ab": outside, "cd": rel} {
		if err := os.Symlink(target, filepath.Join(dir, prefix)); err != nil {
			t.Fatal(err)
		}
		id := prefix + blob.NewID()[2:]
		w, err := l.Create(ctx, id)
		if err == nil {
			w.Write([]byte("escaped"))
			err = w.Commit()
		}
		if err == nil {
			t.Errorf("Create and Commit through %s -> %s succeeded", prefix, target)
		}
		// A file already outside, under the name the blob would have.
		victim := filepath.Join(outside, id)
		if err := os.WriteFile(victim, []byte("outside"), 0o600); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
		if r, err := l.Open(ctx, id); err == nil {
			r.Close()
			t.Errorf("Open through %s -> %s succeeded", prefix, target)
		}
		if err := l.Delete(ctx, id); err == nil {
			t.Errorf("Delete through %s -> %s succeeded", prefix, target)
		}
		if b, err := os.ReadFile(victim); err != nil || string(b) != "outside" {
			t.Errorf("file outside: %q, %v", b, err)
		}
	}

	// A blob name linked to a file outside.
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	id := "ef" + blob.NewID()[2:]
	if err := os.Mkdir(filepath.Join(dir, "ef"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "ef", id)); err != nil {
		t.Fatal(err)
	}
	if r, err := l.Open(ctx, id); err == nil {
		r.Close()
		t.Error("Open of a link to a file outside succeeded")
	}
	if ids := list(t, l); len(ids) != 0 {
		t.Errorf("List = %q, want nothing", ids)
	}
	if err := l.CleanTemp(0); err != nil {
		t.Errorf("CleanTemp: %v", err)
	}

	slices.Sort(want)
	if got := files(t, outside); !slices.Equal(got, want) {
		t.Errorf("files outside = %q, want %q", got, want)
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != "secret" {
		t.Errorf("secret: %q, %v", b, err)
	}
}

func TestNewErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := local.New(file); ferry.KindOf(err) != ferry.Internal {
		t.Errorf("New on a file: err = %v, want kind Internal", err)
	}
}

func TestClose(t *testing.T) {
	l, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := l.Create(context.Background(), blob.NewID()); err == nil {
		t.Error("Create after Close succeeded")
	}
}

func newLocal(t *testing.T, dir string) *local.Local {
	t.Helper()
	l, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

func put(t *testing.T, b blob.Backend, id, data string) {
	t.Helper()
	w, err := b.Create(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, b blob.Backend, id string) string {
	t.Helper()
	r, err := b.Open(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := make([]byte, r.Size())
	if n, err := r.ReadAt(p, 0); n != len(p) {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	return string(p)
}

func list(t *testing.T, b blob.Backend) []string {
	t.Helper()
	var ids []string
	if err := b.List(context.Background(), func(id string) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

// files returns the sorted paths, relative to dir, of everything in dir that
// is not a directory.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		names = append(names, rel)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// plant writes a file the way a crashed writer would have left it, last
// modified at mtime.
func plant(t *testing.T, name string, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	age(t, name, mtime)
}

func age(t *testing.T, name string, mtime time.Time) {
	t.Helper()
	if err := os.Chtimes(name, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}
