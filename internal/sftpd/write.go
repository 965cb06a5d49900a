package sftpd

import (
	"context"
	"errors"
	"fmt"
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
	// beginPart begins a part of upload id at offset: what is written to
	// the part is encrypted and stored at once, and recorded when the part
	// is finished.
	beginPart(ctx context.Context, id string, offset int64) (uploadPart, error)
	// completeUpload makes the upload the file at its path.
	completeUpload(ctx context.Context, id string) error
	// cancelUpload discards the upload and what it stored.
	cancelUpload(ctx context.Context, id string) error
}

// uploadPart is one part of a resumable upload (transfer.UploadPart).
type uploadPart interface {
	Write(p []byte) (int, error)
	// finish records the part and returns the bytes stored. cause is why
	// the session ended early, or nil: the bytes written before it are kept
	// all the same, so that the upload can resume after them.
	finish(cause error) (int64, error)
}

// upload is an SFTP file handle opened for writing: one session of a
// resumable upload in transfer. It writes the bytes, in order, into one
// part, which encrypts and stores them as they come; Close, after a
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

	mu   sync.Mutex
	cond sync.Cond
	// part is opened by the first in-order write; only the WriteAt that
	// is writing (writing set) uses it, and finishPart ends it once.
	part      uploadPart
	opened    bool              // part was opened (and must be finished)
	finished  bool              // finishPart has run: no more writes
	finishing bool              // finishPart is recording the part (u.mu released)
	stored    int64             // the part's count, once finished
	werr      error             // the part's error (opening, writing or finishing)
	next      int64             // offset of the next byte to write
	pending   map[int64]*[]byte // out-of-order writes, copied (getHold)
	held      int               // bytes in pending, all taken from shared
	writing   bool              // a WriteAt is writing to the part
	err       error             // sticky: the session has failed
	closed    bool
	onClose   func()
}

// newUpload returns the handle for a session of upload id, which has start
// bytes already. errf maps errors to SFTP statuses.
// shared is the server-wide budget for out-of-order data (nil: none).
func newUpload(ctx context.Context, store uploadStore, path, id string, start int64, shared *budget, errf func(error) error) *upload {
	u := &upload{ctx: ctx, store: store, path: path, id: id, start: start, next: start, errf: errf,
		pending: map[int64]*[]byte{}, window: windowBytes, wait: windowWait, startWait: startWait, shared: shared}
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

// write stores chunk, the next bytes of the upload, opening the part on
// the first. It is called with u.writing set and u.mu not held.
func (u *upload) write(chunk []byte) error {
	if u.part == nil {
		if u.finished {
			return errors.New("upload session already ended")
		}
		part, err := u.store.beginPart(u.ctx, u.id, u.start)
		if err != nil {
			u.werr = err
			return err
		}
		u.part, u.opened = part, true
	}
	_, err := u.part.Write(chunk)
	return err
}

// finishPart ends the part, once, keeping what it stored (cause: why the
// session ended early, or nil), and returns the count and the part's error.
// u.mu is held and nobody is writing; it is released while the part is
// recorded. A second caller (Close while abort is recording) waits for
// the first to finish, so that it sees the part's true count and does not
// discard an upload whose bytes are being recorded.
func (u *upload) finishPart(cause error) (int64, error) {
	for u.finishing {
		u.cond.Wait()
	}
	if u.finished {
		return u.stored, u.werr
	}
	u.finished = true
	part := u.part
	u.part = nil
	if part == nil {
		return 0, u.werr
	}
	u.finishing = true
	u.mu.Unlock()
	n, err := part.finish(cause)
	u.mu.Lock()
	u.finishing = false
	u.cond.Broadcast()
	u.stored = n
	if u.werr == nil {
		u.werr = err
	}
	return u.stored, u.werr
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

// feed writes p, which starts at u.next, then whatever pending data follows
// it. u.mu is held, but not while writing.
func (u *upload) feed(p []byte) (int, error) {
	chunk := p
	var held *[]byte // chunk's buffer when it was held
	u.writing = true
	defer func() {
		u.writing = false
		u.cond.Broadcast()
	}()
	for {
		u.next += int64(len(chunk))
		u.mu.Unlock()
		err := u.write(chunk)
		// The part has encrypted and stored the bytes: the buffer is free.
		if held != nil {
			putHold(held)
			held = nil
		}
		u.mu.Lock()
		if err != nil {
			return 0, u.fail(u.errf(err))
		}
		if u.err != nil {
			return 0, u.err
		}
		var ok bool
		if held, ok = u.pending[u.next]; !ok {
			return len(p), nil
		}
		chunk = *held
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
	u.pending[off] = getHold(p)
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
		for _, b := range u.pending {
			putHold(b)
		}
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

// abort fails the session (the connection is going away): the bytes
// already written are recorded, and the upload stays resumable from there.
func (u *upload) abort() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.fail(errUploadAborted)
	for u.writing {
		u.cond.Wait()
	}
	u.finishPart(u.err)
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
	err, fed := u.err, u.next-u.start
	stored, werr := u.finishPart(err)
	opened := u.opened
	u.mu.Unlock()
	if u.onClose != nil {
		defer u.onClose()
	}
	if opened {
		if err == nil && werr != nil {
			err = u.errf(werr)
		} else if err == nil && stored != fed {
			err = u.errf(ferry.Errorf("sftpd.upload", ferry.Internal, "stored %d of the %d bytes written", stored, fed))
		}
	} else if err == nil && werr != nil {
		err = u.errf(werr)
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
