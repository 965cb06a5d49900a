package keys

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"ferry.dev/ferry/internal/ferry"
)

func newFileKEK(t *testing.T, dir string) *FileKEK {
	t.Helper()
	k, err := NewFileKEK(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

func TestFileKEK(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "keys")
	k := newFileKEK(t, dir)

	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("key directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
	dek, _ := NewDataKey(nil)
	aad := []byte("file-0001")

	if _, _, err := k.Wrap(ctx, "acme", dek, aad); ferry.KindOf(err) != ferry.NotExist {
		t.Errorf("Wrap before Ensure: %v, want NotExist", err)
	}
	for range 2 { // Ensure is idempotent
		if err := k.Ensure(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.Ensure(ctx, "globex"); err != nil {
		t.Fatal(err)
	}

	wrapped, kekID, err := k.Wrap(ctx, "acme", dek, aad)
	if err != nil {
		t.Fatal(err)
	}
	if kekID != "file:acme:1" {
		t.Errorf("kekID = %q", kekID)
	}
	if bytes.Contains(wrapped, dek) {
		t.Error("wrapped key contains the data key")
	}
	got, err := k.Unwrap(ctx, "acme", kekID, wrapped, aad)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("Unwrap = %x, %v; want %x", got, err, dek)
	}
	w2, _, err := k.Wrap(ctx, "acme", dek, aad)
	if err != nil || bytes.Equal(w2, wrapped) {
		t.Errorf("wrapping twice gave the same bytes (nonce reuse?): %v", err)
	}

	// Every mismatch is an Integrity failure.
	flipped := bytes.Clone(wrapped)
	flipped[len(flipped)-1] ^= 1
	for _, tt := range []struct {
		name         string
		org, kekID   string
		wrapped, aad []byte
	}{
		{"wrong aad", "acme", kekID, wrapped, []byte("file-0002")},
		{"empty aad", "acme", kekID, wrapped, nil},
		{"wrong org", "globex", kekID, wrapped, aad},
		{"wrong org's key", "globex", "file:globex:1", wrapped, aad},
		{"tampered", "acme", kekID, flipped, aad},
		{"truncated", "acme", kekID, wrapped[:len(wrapped)-1], aad},
		{"empty", "acme", kekID, nil, aad},
	} {
		got, err := k.Unwrap(ctx, tt.org, tt.kekID, tt.wrapped, tt.aad)
		if ferry.KindOf(err) != ferry.Integrity || got != nil {
			t.Errorf("%s: Unwrap = %x, %v; want an Integrity error", tt.name, got, err)
		}
	}
	if _, err := k.Unwrap(ctx, "acme", "file:acme:2", wrapped, aad); ferry.KindOf(err) != ferry.NotExist {
		t.Errorf("unknown version: %v, want NotExist", err)
	}
	for _, id := range []string{"", "acme", "file:acme", "file:acme:0", "file:acme:01", "file:acme:x", "vault:acme:1", "file:../x:1"} {
		if _, err := k.Unwrap(ctx, "acme", id, wrapped, aad); ferry.KindOf(err) != ferry.Invalid {
			t.Errorf("kekID %q: %v, want Invalid", id, err)
		}
	}
	if _, _, err := k.Wrap(ctx, "acme", dek[:16], aad); ferry.KindOf(err) != ferry.Invalid {
		t.Errorf("Wrap of a 16-byte key: %v, want Invalid", err)
	}

	// Key files: mode 0600, nothing else left behind.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		fi, err := e.Info()
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", e.Name(), fi.Mode(), err)
		}
	}
	if strings.Join(names, " ") != "acme.1.kek globex.1.kek" {
		t.Errorf("key directory holds %q", names)
	}

	// Keys persist: a new FileKEK on the same directory unwraps.
	k2 := newFileKEK(t, dir)
	if err := k2.Ensure(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	got, err = k2.Unwrap(ctx, "acme", kekID, wrapped, aad)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("Unwrap after reopening = %x, %v", got, err)
	}

	// Rotation: new wraps use version 2, version 1 still unwraps.
	id2, err := k2.Rotate(ctx, "acme")
	if err != nil || id2 != "file:acme:2" {
		t.Fatalf("Rotate = %q, %v", id2, err)
	}
	w3, id3, err := k2.Wrap(ctx, "acme", dek, aad)
	if err != nil || id3 != id2 {
		t.Fatalf("Wrap after Rotate: %q, %v", id3, err)
	}
	for _, k := range []*FileKEK{k2, newFileKEK(t, dir)} {
		if got, err := k.Unwrap(ctx, "acme", kekID, wrapped, aad); err != nil || !bytes.Equal(got, dek) {
			t.Errorf("Unwrap with version 1 after rotation: %v", err)
		}
		if got, err := k.Unwrap(ctx, "acme", id3, w3, aad); err != nil || !bytes.Equal(got, dek) {
			t.Errorf("Unwrap with version 2: %v", err)
		}
	}
	if _, err := k2.Unwrap(ctx, "acme", kekID, w3, aad); ferry.KindOf(err) != ferry.Integrity {
		t.Errorf("version 2 wrap under version 1 id: %v, want Integrity", err)
	}
}

func TestFileKEKBadOrgIDs(t *testing.T) {
	ctx := context.Background()
	k := newFileKEK(t, t.TempDir())
	dek := make([]byte, DataKeySize)
	for _, org := range []string{
		"", ".", "..", "../etc", "a/b", `a\b`, "a.b", "a b", "a:b", "a\x00b", "é",
		strings.Repeat("a", 65),
	} {
		if err := k.Ensure(ctx, org); ferry.KindOf(err) != ferry.Invalid {
			t.Errorf("Ensure(%q): %v, want Invalid", org, err)
		}
		if _, _, err := k.Wrap(ctx, org, dek, nil); ferry.KindOf(err) != ferry.Invalid {
			t.Errorf("Wrap(%q): %v, want Invalid", org, err)
		}
		if _, err := k.Unwrap(ctx, org, "file:"+org+":1", []byte{1}, nil); ferry.KindOf(err) != ferry.Invalid {
			t.Errorf("Unwrap(%q): %v, want Invalid", org, err)
		}
	}
	for _, org := range []string{"a", "A-b_9", strings.Repeat("z", 64), "0123e4567-e89b-12d3-a456-426614174000"} {
		if err := k.Ensure(ctx, org); err != nil {
			t.Errorf("Ensure(%q): %v", org, err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := k.Ensure(cancelled, "a"); err == nil {
		t.Error("Ensure with a cancelled context succeeded")
	}
}

// TestFileKEKConcurrent creates and uses keys from many goroutines and two
// FileKEKs on one directory; every wrap must unwrap afterwards.
func TestFileKEKConcurrent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ks := []*FileKEK{newFileKEK(t, dir), newFileKEK(t, dir)}
	type result struct {
		org, id string
		wrapped []byte
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
	)
	dek := bytes.Repeat([]byte{9}, DataKeySize)
	for g := range 8 {
		wg.Go(func() {
			k := ks[g%2]
			for i := range 20 {
				org := []string{"o1", "o2", "o3"}[i%3]
				if err := k.Ensure(ctx, org); err != nil {
					t.Error(err)
					return
				}
				w, id, err := k.Wrap(ctx, org, dek, []byte(org))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				results = append(results, result{org, id, w})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	k := newFileKEK(t, dir)
	for _, r := range results {
		if got, err := k.Unwrap(ctx, r.org, r.id, r.wrapped, []byte(r.org)); err != nil || !bytes.Equal(got, dek) {
			t.Fatalf("Unwrap(%s, %s): %v", r.org, r.id, err)
		}
	}
}

func TestFileKEKCorruptFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "acme.1.kek"), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	k := newFileKEK(t, dir)
	if err := k.Ensure(ctx, "acme"); err != nil {
		t.Fatal(err) // the file exists; Ensure does not replace it
	}
	if _, _, err := k.Wrap(ctx, "acme", make([]byte, DataKeySize), nil); ferry.KindOf(err) != ferry.Integrity {
		t.Errorf("Wrap with a corrupt key file: %v, want Integrity", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "acme.1.kek")); string(b) != "short" {
		t.Error("corrupt key file was replaced")
	}
}
