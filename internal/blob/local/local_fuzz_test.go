package local_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ferry.dev/ferry/internal/blob"
	"ferry.dev/ferry/internal/blob/local"
)

// outsideTree lists every file under dir except under skip.
func outsideTree(t *testing.T, dir, skip string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !strings.HasPrefix(p, skip+string(filepath.Separator)) {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// FuzzBlobID (path traversal, issue 9): no blob id, however hostile, makes
// the local store create, read or delete anything outside its directory:
// invalid ids are refused, valid ones stay inside (os.Root).
func FuzzBlobID(f *testing.F) {
	for _, s := range []string{"../x", "../../etc/passwd", "/etc/passwd", "ab/../../x", "..", ".", "", "ab", strings.Repeat("a", 32),
		strings.Repeat("a", 31) + "/", "ab\x00cd", "AB" + strings.Repeat("0", 30), strings.Repeat("0", 30) + "..", blob.NewID()} {
		f.Add(s)
	}
	base := f.TempDir()
	store := filepath.Join(base, "blobs")
	l, err := local.New(store)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { l.Close() })
	if err := os.WriteFile(filepath.Join(base, "secret"), []byte("outside"), 0o600); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id string) {
		ctx := context.Background()
		w, err := l.Create(ctx, id)
		if err == nil {
			if !blob.ValidID(id) {
				t.Fatalf("Create(%q) accepted an invalid id", id)
			}
			w.Write([]byte("x"))
			w.Commit()
		}
		if r, err := l.Open(ctx, id); err == nil {
			b, _ := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
			r.Close()
			if string(b) == "outside" || !blob.ValidID(id) {
				t.Fatalf("Open(%q) read %q", id, b)
			}
		}
		l.Delete(ctx, id)
		if got := outsideTree(t, base, store); len(got) != 1 || got[0] != filepath.Join(base, "secret") {
			t.Fatalf("after id %q, files outside the store: %v", id, got)
		}
	})
}

// TestRootRefusesEscapes: a symlink planted in the blob directory (a fan-out
// directory or a blob file pointing outside) is not followed out of it:
// os.Root refuses, so neither reads nor writes reach the target.
func TestRootRefusesEscapes(t *testing.T) {
	base := t.TempDir()
	store := filepath.Join(base, "blobs")
	outside := filepath.Join(base, "outside")
	os.MkdirAll(outside, 0o700)
	l, err := local.New(store)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	id := "ab" + strings.Repeat("0", 30)
	if !blob.ValidID(id) {
		t.Fatalf("test id %q is not valid", id)
	}
	// The fan-out directory "ab" is a symlink to outside, where a file of
	// the blob's name waits.
	os.WriteFile(filepath.Join(outside, id), []byte("planted outside"), 0o600)
	if err := os.Symlink(outside, filepath.Join(store, "ab")); err != nil {
		t.Fatal(err)
	}
	if r, err := l.Open(ctx, id); err == nil {
		r.Close()
		t.Fatal("Open followed a symlinked fan-out directory out of the store")
	}
	id2 := "ab" + strings.Repeat("1", 30)
	if w, err := l.Create(ctx, id2); err == nil {
		w.Write([]byte("escaped"))
		if w.Commit() == nil {
			if _, err := os.Stat(filepath.Join(outside, id2)); err == nil {
				t.Fatal("Create wrote through a symlinked fan-out directory")
			}
		}
	}
	if err := l.Delete(ctx, id); err == nil {
		if _, err := os.Stat(filepath.Join(outside, id)); err != nil {
			t.Fatal("Delete removed a file outside the store")
		}
	}
	// A blob file that is itself a symlink to a file outside.
	id3 := "cd" + strings.Repeat("2", 30)
	os.MkdirAll(filepath.Join(store, "cd"), 0o700)
	os.WriteFile(filepath.Join(base, "target"), []byte("target outside"), 0o600)
	os.Symlink(filepath.Join(base, "target"), filepath.Join(store, "cd", id3))
	if r, err := l.Open(ctx, id3); err == nil {
		b, _ := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
		r.Close()
		t.Fatalf("Open followed a symlinked blob out of the store: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, id)); string(b) != "planted outside" {
		t.Fatalf("the file outside changed: %q", b)
	}
}
