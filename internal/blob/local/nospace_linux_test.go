package local_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"ferry.dev/ferry/internal/blob"
	"ferry.dev/ferry/internal/ferry"
)

// TestNoSpace fills a small tmpfs and checks that the writer that hits the
// limit gets a NoSpace error, its temporary file goes, and the other blobs
// are intact. It needs to mount (root, or CAP_SYS_ADMIN); in CI it must run.
func TestNoSpace(t *testing.T) {
	ctx := context.Background()
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=256k,mode=0700"); err != nil {
		if errors.Is(err, syscall.EPERM) && os.Getenv("CI") == "" {
			t.Skipf("cannot mount a tmpfs (%v); CI runs this test as root", err)
		}
		t.Fatalf("mount tmpfs on %s: %v", mnt, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	dir := filepath.Join(mnt, "blobs")
	l := newLocal(t, dir)

	kept := blob.NewID()
	keptData := strings.Repeat("k", 20<<10)
	put(t, l, kept, keptData)

	big := blob.NewID()
	w, err := l.Create(ctx, big)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for written := 0; written < 1<<20; written += len(chunk) {
		if _, err = w.Write(chunk); err != nil {
			break
		}
	}
	if err != nil {
		// A failed Write discards the blob; Commit repeats the error.
		if cerr := w.Commit(); cerr != err {
			t.Errorf("Commit after the failed Write = %v, want %v", cerr, err)
		}
	} else {
		err = w.Commit() // some file systems report ENOSPC only at fsync
	}
	if ferry.KindOf(err) != ferry.NoSpace {
		t.Fatalf("writing 1 MiB to 256 KiB: err = %v, want kind NoSpace", err)
	}
	if msg := ferry.Message(err); msg != "storage is full" {
		t.Errorf("Message = %q", msg)
	}
	if err := w.Abort(); err != nil {
		t.Errorf("Abort: %v", err)
	}

	if got := files(t, dir); !slices.Equal(got, []string{filepath.Join(kept[:2], kept)}) {
		t.Errorf("files = %q, want only the kept blob", got)
	}
	if got := get(t, l, kept); got != keptData {
		t.Error("kept blob changed")
	}
	if got := list(t, l); !slices.Equal(got, []string{kept}) {
		t.Errorf("List = %q, want [%s]", got, kept)
	}
	// The space of the failed write is back.
	after := blob.NewID()
	put(t, l, after, keptData)
	if got := get(t, l, after); got != keptData {
		t.Error("blob written after the failure reads back wrong")
	}
}
