package sftpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pkg/sftp"

	"ferry.dev/ferry/internal/ferry"
)

// The reorder window of an upload. pkg/sftp hands writes to several workers,
// so they reach upload.WriteAt slightly out of order even though the client
// sent them in order; writes ahead of the next expected byte are held in
// memory (never on disk) until the gap before them is filled.
const (
	// windowBytes bounds the out-of-order data held per upload. A write that
	// does not fit waits up to windowWait for earlier data to drain it.
	windowBytes = 8 << 20
	windowWait  = 30 * time.Second
	// startWait replaces windowWait while nothing has arrived at the
	// upload's start offset.
	startWait = time.Second
	// maxAhead bounds how far past the next expected byte a write may start.
	maxAhead = 64 << 20
)

// uploadStore is what an upload needs from transfer's resumable uploads,
// bound to the session's principal (handlers implement it; tests fake it).
type uploadStore interface {
	// writeUpload stores the bytes read from r, up to EOF or a read error,
	// at offset of upload id and returns how many it stored: bytes that
	// arrived before a read error are kept.
	writeUpload(ctx context.Context, id string, offset int64, r io.Reader) (int64, error)
	// completeUpload makes the upload the file at its path.
	completeUpload(ctx context.Context, id string) error
	// cancelUpload discards the upload and what it stored.
	cancelUpload(ctx context.Context, id string) error
}

// upload is an SFTP file handle opened for writing: one session of a
// resumable upload in transfer. It streams the bytes, in order, through a
// pipe into one WriteUpload, which encrypts and stores them; Close, after a
// clean session without gaps, completes the upload, and only then does the
// new version become visible, replacing the old one. If anything goes wrong
// — a gap, a write that cannot be placed, the connection dropping — the
// bytes that reached the pipe in order stay stored, the upload stays
// resumable from there (OpenSSH's reput), and the file is untouched.
type upload struct {
	ctx   context.Context
	store uploadStore
	path  string
	id    string // the transfer upload
	start int64  // the upload's offset when the handle was opened
	// resumed: the handle continues an upload begun earlier.
	resumed bool
	// keepEmpty: closing the handle without writing creates an empty file
	// (an open with truncate, or of a file that did not exist).
	keepEmpty bool
	errf      func(error) error
	// window, wait and startWait are windowBytes, windowWait and startWait
	// (tests shrink them).
	window    int
	wait      time.Duration
	startWait time.Duration
	// shared bounds the out-of-order data of all the server's uploads
	// together (nil: no bound beyond the window).
	shared *budget
	wake   func() // wakes the upload's waiters (for shared)

	mu      sync.Mutex
	cond    sync.Cond
	pw      *io.PipeWriter   // nil until the first in-order byte arrives
	done    chan struct{}    // closed when WriteUpload has returned
	stored  int64            // WriteUpload's count, set before done closes
	werr    error            // WriteUpload's error, set before done closes
	next    int64            // offset of the next byte the pipe expects
	pending map[int64][]byte // out-of-order writes, copied
	held    int              // bytes in pending, all taken from shared
	writing bool             // a WriteAt is feeding the pipe
	err     error            // sticky: the session has failed
	closed  bool
	onClose func()
}

// newUpload returns the handle for a session of upload id, which has start
// bytes already. errf maps errors to SFTP statuses.
// shared is the server-wide budget for out-of-order data (nil: none).
func newUpload(ctx context.Context, store uploadStore, path, id string, start int64, shared *budget, errf func(error) error) *upload {
	u := &upload{ctx: ctx, store: store, path: path, id: id, start: start, next: start, errf: errf,
		pending: map[int64][]byte{}, window: windowBytes, wait: windowWait, startWait: startWait, shared: shared}
	u.cond.L = &u.mu
	u.wake = func() {
		u.mu.Lock()
		u.cond.Broadcast()
		u.mu.Unlock()
	}
	return u
}

// reserve takes room for n more bytes of out-of-order data: in the upload's
// window and in the server-wide budget. u.mu is held.
func (u *upload) reserve(n int) bool {
	return u.held+n <= u.window && u.shared.tryAcquire(int64(n), u, u.wake)
}

// startWrite starts the WriteUpload that the pipe feeds. u.mu is held.
func (u *upload) startWrite() {
	pr, pw := io.Pipe()
	u.pw, u.done = pw, make(chan struct{})
	go func() {
		defer close(u.done)
		u.stored, u.werr = u.store.writeUpload(u.ctx, u.id, u.start, pr)
		// Unblock a WriteAt still feeding the pipe.
		if u.werr != nil {
			pr.CloseWithError(u.werr)
		} else {
			pr.CloseWithError(errors.New("upload session already ended"))
		}
	}()
}

// fed reports whether any byte has gone into the pipe. u.mu is held.
func (u *upload) fed() bool { return u.next > u.start }

// aheadErr is the error for a write at off that can never be placed: when
// nothing has arrived at the start offset, the client is resuming an upload
// that is not there (or elsewhere). u.mu is held.
func (u *upload) aheadErr(off int64) error {
	if u.fed() {
		return errTooFarAhead
	}
	if !u.resumed {
		return &statusError{sftp.ErrSSHFxOpUnsupported, fmt.Sprintf("nothing to resume at offset %d: upload the whole file", off)}
	}
	return &statusError{sftp.ErrSSHFxFailure, fmt.Sprintf("the unfinished upload continues at offset %d, not %d", u.start, off)}
}

// behindErr is the error for a write at off before the next expected byte.
// u.mu is held.
func (u *upload) behindErr(off int64) error {
	if u.resumed && off < u.start {
		return &statusError{sftp.ErrSSHFxFailure, fmt.Sprintf(
			"an unfinished upload of this file continues at offset %d: resume from there (reput), or open it with truncate (put) to start again", u.start)}
	}
	return errNotSequential
}

// lowestPending is the offset of the first write held. u.mu is held.
func (u *upload) lowestPending() int64 {
	low := int64(-1)
	for off := range u.pending {
		if low < 0 || off < low {
			low = off
		}
	}
	return low
}

// WriteAt implements io.WriterAt.
func (u *upload) WriteAt(p []byte, off int64) (n int, err error) {
	defer recoverTo(&err)
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err != nil {
		return 0, u.err
	}
	switch {
	case off < u.next:
		return 0, u.fail(u.behindErr(off))
	case off == u.next && !u.writing:
		return u.feed(p)
	}
	return u.hold(p, off)
}

// feed writes p, which starts at u.next, into the pipe, then whatever
// pending data follows it. u.mu is held, but not while writing to the pipe,
// which blocks until WriteUpload has taken the bytes.
func (u *upload) feed(p []byte) (int, error) {
	if u.pw == nil {
		u.startWrite()
	}
	pw := u.pw
	chunk := p
	u.writing = true
	defer func() {
		u.writing = false
		u.cond.Broadcast()
	}()
	for {
		u.next += int64(len(chunk))
		u.mu.Unlock()
		_, err := pw.Write(chunk)
		u.mu.Lock()
		if err != nil {
			return 0, u.fail(u.errf(err))
		}
		if u.err != nil {
			return 0, u.err
		}
		var ok bool
		if chunk, ok = u.pending[u.next]; !ok {
			return len(p), nil
		}
		delete(u.pending, u.next)
		u.held -= len(chunk)
		u.shared.release(int64(len(chunk)))
		u.cond.Broadcast()
	}
}

// hold keeps a copy of a write that arrived ahead of the next expected byte
// (or while the pipe is being fed), waiting for room if the window or the
// server-wide budget is full. u.mu is held.
func (u *upload) hold(p []byte, off int64) (int, error) {
	if off-u.next > maxAhead {
		return 0, u.fail(u.aheadErr(off))
	}
	if _, dup := u.pending[off]; dup {
		return 0, u.fail(errNotSequential)
	}
	reserved := u.reserve(len(p))
	if !reserved {
		wait := u.wait
		if !u.fed() && u.held+len(p) > u.window {
			// The window is full and nothing has arrived where the
			// upload starts: most likely the client began past it (a
			// resume with nothing to resume), so give up soon. The
			// filter's bound on requests in flight keeps pipelining from
			// reordering this much.
			wait = min(wait, u.startWait)
		}
		var err error
		if reserved, err = u.waitRoom(len(p), off, wait); err != nil {
			return 0, err
		}
	}
	switch {
	case off < u.next:
		u.unreserve(reserved, len(p))
		return 0, u.fail(u.behindErr(off))
	case off == u.next && !u.writing:
		u.unreserve(reserved, len(p))
		return u.feed(p)
	}
	u.pending[off] = append([]byte(nil), p...)
	u.held += len(p)
	return len(p), nil
}

// unreserve gives back room taken by reserve and not used. u.mu is held.
func (u *upload) unreserve(reserved bool, n int) {
	if reserved {
		u.shared.release(int64(n))
	}
}

// waitRoom waits until n more bytes fit in the window and the server-wide
// budget (and reserves them: reserved), the write at off has become the next
// one and nobody feeds the pipe, or wait has passed. u.mu is held.
func (u *upload) waitRoom(n int, off int64, wait time.Duration) (reserved bool, err error) {
	deadline := time.Now().Add(wait)
	t := time.AfterFunc(wait, u.wake)
	defer t.Stop()
	for {
		switch {
		case u.err != nil:
			return false, u.err
		case off < u.next:
			return false, u.fail(u.behindErr(off))
		case off == u.next && !u.writing:
			return false, nil
		case u.reserve(n):
			return true, nil
		case !time.Now().Before(deadline):
			if !u.fed() {
				off = min(off, u.lowestPending())
			}
			return false, u.fail(u.aheadErr(off))
		}
		u.cond.Wait()
	}
}

// fail records the session's first error and returns it. u.mu is held.
func (u *upload) fail(err error) error {
	if u.err == nil {
		u.err = err
		u.shared.release(int64(u.held))
		u.pending, u.held = nil, 0
		u.cond.Broadcast()
	}
	return u.err
}

// TransferError implements sftp.TransferError: the session ended with the
// handle open, so the upload must not be completed.
func (u *upload) TransferError(err error) {
	u.mu.Lock()
	u.fail(errUploadAborted)
	u.mu.Unlock()
}

// abort fails the session (the connection is going away) without waiting:
// the bytes already in the pipe are stored, and the upload stays resumable.
func (u *upload) abort() {
	u.mu.Lock()
	u.fail(errUploadAborted)
	pw := u.pw
	u.mu.Unlock()
	if pw != nil {
		pw.CloseWithError(errUploadAborted)
	}
}

// Close ends the session. After a clean one that wrote every byte from the
// upload's offset on, it completes the upload: the new version becomes
// visible and replaces the old one. Otherwise the file stays as it was, the
// bytes stored stay resumable, and the error is returned.
func (u *upload) Close() (err error) {
	defer recoverTo(&err)
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil
	}
	u.closed = true
	for u.writing {
		u.cond.Wait()
	}
	if u.err == nil && len(u.pending) > 0 {
		if u.fed() {
			u.fail(errNotSequential)
		} else {
			u.fail(u.aheadErr(u.lowestPending()))
		}
	}
	err, pw, done, fed := u.err, u.pw, u.done, u.next-u.start
	u.mu.Unlock()
	if u.onClose != nil {
		defer u.onClose()
	}
	var stored int64
	if pw != nil {
		if err != nil {
			pw.CloseWithError(err)
		} else {
			pw.Close()
		}
		<-done
		stored = u.stored
		if err == nil && u.werr != nil {
			err = u.errf(u.werr)
		} else if err == nil && stored != fed {
			err = u.errf(ferry.Errorf("sftpd.upload", ferry.Internal, "stored %d of the %d bytes written", stored, fed))
		}
	}
	// A detached context: the client may be gone, and what was stored must
	// be completed or tidied up all the same.
	ctx := context.WithoutCancel(u.ctx)
	switch {
	case err != nil:
		if !u.resumed && stored == 0 {
			// Nothing to resume: leave nothing behind.
			u.store.cancelUpload(ctx, u.id)
		}
		return err
	case fed == 0 && u.resumed:
		// Opened and closed without a write: the unfinished upload stays
		// as it was (completing it here would publish a partial file).
		return nil
	case fed == 0 && !u.keepEmpty:
		// Opened without truncate and closed without a write: the file
		// stays as it was.
		return u.errf(u.store.cancelUpload(ctx, u.id))
	}
	return u.errf(u.store.completeUpload(ctx, u.id))
}
