package sftpd

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

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
	// maxAhead bounds how far past the next expected byte a write may start.
	maxAhead = 64 << 20
)

// putFunc stores the content read from r as the file at path; it is
// transfer.Service.Put bound to a principal.
type putFunc func(ctx context.Context, path string, r io.Reader) (*ferry.File, error)

// upload is an SFTP file handle opened for writing. It streams the bytes, in
// order, through a pipe into one transfer Put, which encrypts them and makes
// the new version visible only when Close commits it. Any failure — a gap, a
// write that cannot be placed, the connection dropping — aborts the Put, and
// the previous version stays as it was.
//
// A future resumable-upload API in transfer (create an upload for a path,
// write sequential bytes, commit; resume at the acknowledged offset) slots in
// here: only start and Close change.
type upload struct {
	path string
	pw   *io.PipeWriter
	done chan struct{} // closed when Put has returned
	file *ferry.File   // Put's result, set before done closes
	perr error         // Put's error, set before done closes
	errf func(error) error
	// window and wait are windowBytes and windowWait (tests shrink them).
	window int
	wait   time.Duration

	mu      sync.Mutex
	cond    sync.Cond
	next    int64            // offset of the next byte the pipe expects
	pending map[int64][]byte // out-of-order writes, copied
	held    int              // bytes in pending
	writing bool             // a WriteAt is feeding the pipe
	err     error            // sticky: the upload has failed
	closed  bool
	onClose func()
}

// startUpload starts a Put of path and returns once Put is reading (every
// check passed: permission, parent folder) or has failed. errf maps errors to
// SFTP statuses.
func startUpload(ctx context.Context, put putFunc, path string, errf func(error) error) (*upload, error) {
	pr, pw := io.Pipe()
	u := &upload{path: path, pw: pw, done: make(chan struct{}), pending: map[int64][]byte{}, errf: errf, window: windowBytes, wait: windowWait}
	u.cond.L = &u.mu
	reading := make(chan struct{})
	go func() {
		defer close(u.done)
		u.file, u.perr = put(ctx, path, &startReader{r: pr, started: reading})
		// Unblock a WriteAt still feeding the pipe.
		if u.perr != nil {
			pr.CloseWithError(u.perr)
		} else {
			pr.CloseWithError(errors.New("upload already complete"))
		}
	}()
	select {
	case <-reading:
		return u, nil
	case <-u.done:
		if u.perr == nil { // cannot happen: Put reads before it succeeds
			u.perr = ferry.E("sftpd.upload", ferry.Internal, "upload finished before it started")
		}
		return nil, errf(u.perr)
	}
}

// startReader closes started on the first Read, which Put makes only once
// every check has passed.
type startReader struct {
	r       io.Reader
	started chan struct{}
	once    sync.Once
}

func (s *startReader) Read(p []byte) (int, error) {
	s.once.Do(func() { close(s.started) })
	return s.r.Read(p)
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
	case off == resumeOffset:
		return 0, u.fail(errResume)
	case off < u.next:
		return 0, u.fail(errNotSequential)
	case off == u.next && !u.writing:
		return u.feed(p)
	}
	return u.hold(p, off)
}

// feed writes p, which starts at u.next, into the pipe, then whatever
// pending data follows it. u.mu is held, but not while writing to the pipe,
// which blocks until Put has taken the bytes.
func (u *upload) feed(p []byte) (int, error) {
	chunk := p
	u.writing = true
	defer func() {
		u.writing = false
		u.cond.Broadcast()
	}()
	for {
		u.next += int64(len(chunk))
		u.mu.Unlock()
		_, err := u.pw.Write(chunk)
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
		u.cond.Broadcast()
	}
}

// hold keeps a copy of a write that arrived ahead of the next expected byte
// (or while the pipe is being fed), waiting for room in the window if it is
// full. u.mu is held.
func (u *upload) hold(p []byte, off int64) (int, error) {
	if off-u.next > maxAhead {
		return 0, u.fail(errTooFarAhead)
	}
	if _, dup := u.pending[off]; dup {
		return 0, u.fail(errNotSequential)
	}
	if u.held+len(p) > u.window {
		if err := u.waitRoom(len(p), off); err != nil {
			return 0, err
		}
	}
	switch {
	case off < u.next:
		return 0, u.fail(errNotSequential)
	case off == u.next && !u.writing:
		return u.feed(p)
	}
	u.pending[off] = append([]byte(nil), p...)
	u.held += len(p)
	return len(p), nil
}

// waitRoom waits until n more bytes fit in the window, the write at off has
// become the next one and nobody feeds the pipe, or u.wait has passed.
// u.mu is held.
func (u *upload) waitRoom(n int, off int64) error {
	deadline := time.Now().Add(u.wait)
	t := time.AfterFunc(u.wait, func() {
		u.mu.Lock()
		u.cond.Broadcast()
		u.mu.Unlock()
	})
	defer t.Stop()
	for u.held+n > u.window {
		switch {
		case u.err != nil:
			return u.err
		case off < u.next:
			return u.fail(errNotSequential)
		case off == u.next && !u.writing:
			return nil
		case !time.Now().Before(deadline):
			return u.fail(errTooFarAhead)
		}
		u.cond.Wait()
	}
	return u.err
}

// fail records the upload's first error and returns it. u.mu is held.
func (u *upload) fail(err error) error {
	if u.err == nil {
		u.err = err
		u.pending, u.held = nil, 0
		u.cond.Broadcast()
	}
	return u.err
}

// TransferError implements sftp.TransferError: the session ended with the
// handle open, so the upload must not be committed.
func (u *upload) TransferError(err error) {
	u.mu.Lock()
	u.fail(errUploadAborted)
	u.mu.Unlock()
}

// abort fails the upload (the session is going away) without waiting.
func (u *upload) abort() {
	u.mu.Lock()
	u.fail(errUploadAborted)
	u.mu.Unlock()
	u.pw.CloseWithError(errUploadAborted)
}

// Close commits the upload: the new version becomes visible and replaces the
// old one, unless anything went wrong, in which case nothing changes and the
// error is returned.
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
		u.fail(errNotSequential)
	}
	err = u.err
	u.mu.Unlock()
	if err != nil {
		u.pw.CloseWithError(err)
	} else {
		u.pw.Close()
	}
	<-u.done
	if u.onClose != nil {
		u.onClose()
	}
	if err != nil {
		return err
	}
	if u.perr != nil {
		return u.errf(u.perr)
	}
	return nil
}
