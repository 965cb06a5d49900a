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
	// waitOrder bounds that wait while the stream makes no progress; past
	// it the stream is reopened. As long as the stream moves (the reads
	// before are being served, however slowly on a loaded server), the
	// read keeps waiting: reopening would cost an audit record for the new
	// range and one for the interrupted stream, both waiting for a commit,
	// and, by breaking the order, more reopens after it.
	waitOrder = time.Second
	// firstWait: the first read of a handle, if it is not at offset 0,
	// waits this long for reads before it (pkg/sftp's workers race for
	// the handle, so the read at 0 may come second), and the stream opens
	// at the lowest offset asked for. A resumed download (reget) pays it
	// once.
	firstWait = 200 * time.Millisecond
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
	// firstWait is firstWait (tests change it).
	firstWait time.Duration

	mu     sync.Mutex
	cond   sync.Cond
	rc     io.ReadCloser // current stream, or nil
	pos    int64         // offset of the next byte rc returns
	opened bool          // a stream was opened (the read was audited)
	// firstLow is the lowest offset asked for before the first stream
	// opened, or -1.
	firstLow int64
	closed   bool
	onClose  func()
}

func newDownload(ctx context.Context, dl reader, size int64, errf func(error) error, onClose func()) *download {
	d := &download{ctx: ctx, dl: dl, size: size, errf: errf, wait: waitOrder, firstWait: firstWait, firstLow: -1, onClose: onClose}
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
	if err := d.seek(off); err != nil {
		return 0, err
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

// seek makes the stream be at off: it waits for the reads before off if the
// stream is a little behind (see waitFor), or opens a new one. d.mu is held.
func (d *download) seek(off int64) error {
	waited, graced := false, false
	for {
		switch {
		case d.closed:
			return io.ErrClosedPipe
		case d.rc != nil && off == d.pos:
			return nil
		case d.rc != nil && off > d.pos && off-d.pos <= waitAhead && !waited:
			waited = true
			d.waitFor(off)
			continue
		case !d.opened && off > 0 && !graced:
			graced = true
			d.waitFirst(off)
			continue
		}
		start := off
		if !d.opened && d.firstLow >= 0 && d.firstLow < off {
			// Open where the earliest read asked, and wait for the
			// stream to get here.
			start, waited = d.firstLow, false
		}
		if err := d.open(start); err != nil {
			return err
		}
	}
}

// waitFirst registers off as asked for before the first stream opened, and
// waits until a stream is open or d.firstWait has passed. d.mu is held.
func (d *download) waitFirst(off int64) {
	if d.firstLow < 0 || off < d.firstLow {
		d.firstLow = off
	}
	deadline := time.Now().Add(d.firstWait)
	t := time.AfterFunc(d.firstWait, d.wake)
	defer t.Stop()
	for !d.opened && !d.closed && time.Now().Before(deadline) {
		d.cond.Wait()
	}
}

// waitFor waits until the stream reaches off, moves past it, is gone, or
// has not moved for d.wait. d.mu is held.
func (d *download) waitFor(off int64) {
	deadline := time.Now().Add(d.wait)
	t := time.AfterFunc(d.wait, d.wake)
	defer t.Stop()
	for pos := d.pos; d.rc != nil && off > d.pos && !d.closed; d.cond.Wait() {
		if d.pos != pos {
			// The stream moved: the reads before off are being served.
			pos = d.pos
			deadline = time.Now().Add(d.wait)
			t.Reset(d.wait)
		}
		if !time.Now().Before(deadline) {
			return
		}
	}
}

// wake wakes the reads waiting in waitFor.
func (d *download) wake() {
	d.mu.Lock()
	d.cond.Broadcast()
	d.mu.Unlock()
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
