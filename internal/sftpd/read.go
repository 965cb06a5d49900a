package sftpd

import (
	"context"
	"io"
	"sync"
	"time"
)

// How a download puts reads back in order (see download).
const (
	// waitAhead: a read up to this far past the stream's position waits for
	// the reads before it; one further ahead reopens the stream there.
	waitAhead = 16 << 20
	// waitOrder bounds that wait; past it the stream is reopened.
	waitOrder = time.Second
)

// reader is the part of transfer.Download that a download uses.
type reader interface {
	Read(ctx context.Context, offset, length int64) (io.ReadCloser, error)
}

// download is an SFTP file handle opened for reading. transfer audits each
// ranged read it opens, so instead of one read per SFTP request (255 KiB),
// the handle opens one stream from the first offset asked for to the end of
// the file and serves sequential requests from it: a whole download is one
// audit record, a resumed one (reget) one record starting at its offset.
//
// pkg/sftp hands pipelined reads to several workers, which call ReadAt
// slightly out of order; a read ahead of the stream waits (briefly, and
// holding no data) for the ones before it. A read elsewhere — backwards, far
// ahead, or after the wait — opens a new stream there, and so a new audit
// record.
type download struct {
	ctx  context.Context
	dl   reader
	size int64
	errf func(error) error
	wait time.Duration // waitOrder (tests shrink it)

	mu      sync.Mutex
	cond    sync.Cond
	rc      io.ReadCloser // current stream, or nil
	pos     int64         // offset of the next byte rc returns
	opened  bool          // a stream was opened (the read was audited)
	closed  bool
	onClose func()
}

func newDownload(ctx context.Context, dl reader, size int64, errf func(error) error, onClose func()) *download {
	d := &download{ctx: ctx, dl: dl, size: size, errf: errf, wait: waitOrder, onClose: onClose}
	d.cond.L = &d.mu
	return d
}

// ReadAt implements io.ReaderAt.
func (d *download) ReadAt(p []byte, off int64) (n int, err error) {
	defer recoverTo(&err)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0, io.ErrClosedPipe
	}
	if off < 0 {
		return 0, errNotSequential
	}
	if off >= d.size {
		if d.size == 0 && !d.opened {
			// Audit the download of an empty file.
			if err := d.open(0); err != nil {
				return 0, err
			}
		}
		return 0, io.EOF
	}
	if d.rc != nil && off > d.pos && off-d.pos <= waitAhead {
		d.waitFor(off)
	}
	if d.closed {
		return 0, io.ErrClosedPipe
	}
	if d.rc == nil || off != d.pos {
		if err := d.open(off); err != nil {
			return 0, err
		}
	}
	want := int(min(int64(len(p)), d.size-off))
	n, err = io.ReadFull(d.rc, p[:want])
	d.pos += int64(n)
	d.cond.Broadcast()
	if err != nil {
		d.rc.Close()
		d.rc = nil
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return n, errShortContent
		}
		return n, d.errf(err)
	}
	return n, nil
}

// waitFor waits until the stream reaches off, moves past it, is gone, or
// d.wait has passed. d.mu is held.
func (d *download) waitFor(off int64) {
	deadline := time.Now().Add(d.wait)
	t := time.AfterFunc(d.wait, func() {
		d.mu.Lock()
		d.cond.Broadcast()
		d.mu.Unlock()
	})
	defer t.Stop()
	for d.rc != nil && off > d.pos && !d.closed && time.Now().Before(deadline) {
		d.cond.Wait()
	}
}

// open starts a new stream at off, audited by transfer as a read of the
// range [off, size).
func (d *download) open(off int64) error {
	if d.rc != nil {
		d.rc.Close()
		d.rc = nil
	}
	rc, err := d.dl.Read(d.ctx, off, d.size-off)
	if err != nil {
		return d.errf(err)
	}
	d.rc, d.pos, d.opened = rc, off, true
	d.cond.Broadcast()
	return nil
}

// Close ends the download; transfer audits it as interrupted if the stream
// was not read to its end.
func (d *download) Close() (err error) {
	defer recoverTo(&err)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.cond.Broadcast()
	if d.rc != nil {
		err = d.rc.Close()
		d.rc = nil
	}
	if d.onClose != nil {
		d.onClose()
	}
	if err != nil {
		return d.errf(err)
	}
	return nil
}
