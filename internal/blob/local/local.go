package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"ferry.dev/ferry/internal/blob"
	"ferry.dev/ferry/internal/ferry"
)

// tempPrefix starts the name of every temporary file. It cannot start an id.
const tempPrefix = ".tmp-"

// Local is a blob.Backend storing blobs as files under one directory. It is
// safe for concurrent use.
type Local struct {
	root *os.Root
}

var _ blob.Backend = (*Local)(nil)

// New returns a Local storing blobs under dir, creating dir (mode 0700) if it
// is missing. Call CleanTemp once at start-up, and Close when done.
func New(dir string) (*Local, error) {
	const op = "local.New"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, ferry.E(op, ferry.Internal, "cannot create the blob directory", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, ferry.E(op, ferry.Internal, "cannot open the blob directory", err)
	}
	return &Local{root: root}, nil
}

// Close releases the blob directory. Writers and Readers still open keep
// their files but can no longer commit.
func (l *Local) Close() error {
	if err := l.root.Close(); err != nil {
		return ferry.E("local.Close", ferry.Internal, err)
	}
	return nil
}

// Create implements blob.Backend.
func (l *Local) Create(ctx context.Context, id string) (blob.Writer, error) {
	const op = "local.Create"
	if err := check(op, ctx, id); err != nil {
		return nil, err
	}
	dir, name := paths(id)
	if err := l.mkdir(dir); err != nil {
		return nil, wrap(op, err)
	}
	// Fail early when the blob exists; Commit checks again, atomically.
	if _, err := l.root.Lstat(name); err == nil {
		return nil, ferry.E(op, ferry.Exist, "blob already exists", fmt.Errorf("blob %s", id))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, wrap(op, err)
	}
	tmp := filepath.Join(dir, tempPrefix+randomHex())
	f, err := l.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, wrap(op, err)
	}
	return &writer{l: l, ctx: ctx, dir: dir, name: name, tmp: tmp, f: f}, nil
}

// Open implements blob.Backend.
func (l *Local) Open(ctx context.Context, id string) (blob.Reader, error) {
	const op = "local.Open"
	if err := check(op, ctx, id); err != nil {
		return nil, err
	}
	_, name := paths(id)
	f, err := l.root.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ferry.E(op, ferry.NotExist, "blob not found", err)
	}
	if err != nil {
		return nil, wrap(op, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", name)
	}
	if err != nil {
		f.Close()
		return nil, wrap(op, err)
	}
	return &reader{f: f, size: fi.Size()}, nil
}

// Delete implements blob.Backend.
func (l *Local) Delete(ctx context.Context, id string) error {
	const op = "local.Delete"
	if err := check(op, ctx, id); err != nil {
		return err
	}
	dir, name := paths(id)
	err := l.root.Remove(name)
	if errors.Is(err, fs.ErrNotExist) {
		return ferry.E(op, ferry.NotExist, "blob not found", err)
	}
	if err != nil {
		return wrap(op, err)
	}
	if err := l.syncDir(dir); err != nil {
		return wrap(op, err)
	}
	return nil
}

// List implements blob.Backend. It lists regular files with valid ids in
// their fan-out directory, and skips everything else (temporary files,
// symbolic links, stray names).
func (l *Local) List(ctx context.Context, fn func(id string) error) error {
	const op = "local.List"
	if err := ctx.Err(); err != nil {
		return ferry.E(op, ferry.Internal, err)
	}
	var fnErr error // fn's error, returned unchanged
	err := l.eachEntry(".", func(d fs.DirEntry) error {
		dir := d.Name()
		if !d.IsDir() || !isFanout(dir) {
			return nil
		}
		return l.eachEntry(dir, func(e fs.DirEntry) error {
			id := e.Name()
			if !e.Type().IsRegular() || !blob.ValidID(id) || id[:2] != dir {
				return nil
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(id); err != nil {
				fnErr = err
				return err
			}
			return nil
		})
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return wrap(op, err)
	}
	return nil
}

// CleanTemp removes temporary files left by writes that never finished (a
// crash, a lost Commit) and last modified more than olderThan ago. Call it at
// start-up; olderThan guards the temporary files of writers still running, so
// make it longer than any upload may stall.
func (l *Local) CleanTemp(olderThan time.Duration) error {
	const op = "local.CleanTemp"
	// File times come from the system clock, so compare with it.
	cutoff := time.Now().Add(-olderThan)
	var stale []string
	err := l.eachEntry(".", func(d fs.DirEntry) error {
		dir := d.Name()
		if !d.IsDir() || !isFanout(dir) {
			return nil
		}
		return l.eachEntry(dir, func(e fs.DirEntry) error {
			if !strings.HasPrefix(e.Name(), tempPrefix) {
				return nil
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil // committed or aborted meanwhile
			}
			if err != nil {
				return err
			}
			if fi.ModTime().Before(cutoff) {
				stale = append(stale, filepath.Join(dir, e.Name()))
			}
			return nil
		})
	})
	errs := []error{err}
	for _, name := range stale {
		if err := l.root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return ferry.E(op, ferry.Internal, "cannot remove temporary files", err)
	}
	return nil
}

// mkdir creates the fan-out directory dir if it is missing, durably.
func (l *Local) mkdir(dir string) error {
	err := l.root.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return l.syncDir(".")
}

// syncDir fsyncs the directory dir, making the names in it durable.
func (l *Local) syncDir(dir string) error {
	f, err := l.root.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// eachEntry calls fn for each entry of dir, reading it in batches.
func (l *Local) eachEntry(dir string, fn func(fs.DirEntry) error) error {
	f, err := l.root.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		entries, err := f.ReadDir(1024)
		for _, e := range entries {
			if err := fn(e); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// writer writes a blob to a temporary file until Commit.
type writer struct {
	l     *Local
	ctx   context.Context
	dir   string   // fan-out directory
	name  string   // final name
	tmp   string   // temporary name, in dir
	f     *os.File // open temporary file, until Commit, Abort or a failure
	err   error    // the first failure; the temporary file is gone once set
	ended bool     // Commit or Abort was called
}

// Write implements io.Writer.
func (w *writer) Write(p []byte) (int, error) {
	const op = "local.Write"
	if w.ended {
		return 0, ferry.E(op, ferry.Internal, "write after Commit or Abort")
	}
	if w.err != nil {
		return 0, w.err
	}
	if err := w.ctx.Err(); err != nil {
		w.fail(ferry.E(op, ferry.Internal, err))
		return 0, w.err
	}
	n, err := w.f.Write(p)
	if err != nil {
		w.fail(wrap(op, err))
		return n, w.err
	}
	return n, nil
}

// Commit implements blob.Writer.
func (w *writer) Commit() error {
	const op = "local.Commit"
	if w.ended {
		return ferry.E(op, ferry.Internal, "Commit after Commit or Abort")
	}
	w.ended = true
	if w.err != nil {
		return w.err
	}
	if err := w.ctx.Err(); err != nil {
		w.fail(ferry.E(op, ferry.Internal, err))
		return w.err
	}
	if err := w.f.Sync(); err != nil {
		w.fail(wrap(op, err))
		return w.err
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		w.fail(wrap(op, err))
		return w.err
	}
	// A hard link, unlike rename, fails if the final name exists: the check
	// and the publication are one atomic step.
	err = w.l.root.Link(w.tmp, w.name)
	// Whatever happened, the temporary name goes. Should removing it fail,
	// the blob is still committed and CleanTemp removes the leftover.
	w.l.root.Remove(w.tmp)
	if errors.Is(err, fs.ErrExist) {
		return ferry.E(op, ferry.Exist, "blob already exists", err)
	}
	if err != nil {
		return wrap(op, err)
	}
	if err := w.l.syncDir(w.dir); err != nil {
		// Not known to be durable: take it back, so that a failed Commit
		// leaves nothing visible. Should that fail too, the error says
		// so: the blob stays under its id although Commit failed.
		if rerr := w.l.root.Remove(w.name); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("the uncommitted blob could not be removed and stays: %w", rerr))
		}
		return wrap(op, err)
	}
	return nil
}

// Abort implements blob.Writer.
func (w *writer) Abort() error {
	if w.ended {
		return nil
	}
	w.ended = true
	if w.err != nil {
		return nil // already discarded
	}
	w.f.Close()
	w.f = nil
	if err := w.l.root.Remove(w.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return wrap("local.Abort", err)
	}
	return nil
}

// fail records err as the writer's failure and discards the temporary file,
// giving its space back at once.
func (w *writer) fail(err error) {
	w.err = err
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	w.l.root.Remove(w.tmp) // a leftover is removed by CleanTemp
}

// reader reads a committed blob from its open file.
type reader struct {
	f    *os.File
	size int64
}

// ReadAt implements io.ReaderAt.
func (r *reader) ReadAt(p []byte, off int64) (int, error) {
	const op = "local.ReadAt"
	if off < 0 {
		return 0, ferry.E(op, ferry.Invalid, "negative offset")
	}
	n, err := r.f.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = wrap(op, err)
	}
	return n, err
}

// Size implements blob.Reader.
func (r *reader) Size() int64 { return r.size }

// Close implements io.Closer.
func (r *reader) Close() error {
	if err := r.f.Close(); err != nil {
		return wrap("local.Close", err)
	}
	return nil
}

// check validates id and ctx, the first step of every method.
func check(op string, ctx context.Context, id string) error {
	if !blob.ValidID(id) {
		return ferry.E(op, ferry.Invalid, "invalid blob id", fmt.Errorf("id %q", id))
	}
	if err := ctx.Err(); err != nil {
		return ferry.E(op, ferry.Internal, err)
	}
	return nil
}

// wrap classifies a file system error: NoSpace for a full disk or an
// exhausted quota, Internal otherwise.
func wrap(op string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return ferry.E(op, ferry.NoSpace, "storage is full", err)
	}
	return ferry.E(op, ferry.Internal, err)
}

// paths returns the fan-out directory and the file name of a valid id.
func paths(id string) (dir, name string) {
	return id[:2], filepath.Join(id[:2], id)
}

// isFanout reports whether name is a fan-out directory: two lower-case hex
// characters.
func isFanout(name string) bool {
	return len(name) == 2 && isHex(name[0]) && isHex(name[1])
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

// randomHex returns 16 random hex characters for a temporary name.
func randomHex() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
