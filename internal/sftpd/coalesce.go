package sftpd

import (
	"net"
	"sync"
	"time"
)

// coalesceMax bounds the bytes a coalescer holds.
const coalesceMax = 128 << 10

// coalescer batches the small writes that golang.org/x/crypto/ssh makes — a
// flush per SSH packet, each split in two by its 4 KiB bufio.Writer — into
// fewer, larger ones: Write copies into a buffer that a flusher goroutine
// writes out as soon as it runs, so that packets produced while a write is
// in the kernel leave together. Measured on downloads: fewer system calls on
// both ends, a few per cent more throughput. Write blocks while the buffer is
// full; a write error is returned by the next Write.
type coalescer struct {
	net.Conn
	mu     sync.Mutex
	cond   sync.Cond
	buf    []byte
	spare  []byte
	err    error
	closed bool
	done   chan struct{} // the flusher has exited
}

func newCoalescer(c net.Conn) *coalescer {
	w := &coalescer{Conn: c, done: make(chan struct{})}
	w.cond.L = &w.mu
	go w.flusher()
	return w
}

// Write implements io.Writer.
func (w *coalescer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.buf) > 0 && len(w.buf)+len(p) > coalesceMax && w.err == nil && !w.closed {
		w.cond.Wait()
	}
	switch {
	case w.err != nil:
		return 0, w.err
	case w.closed:
		return 0, net.ErrClosed
	}
	w.buf = append(w.buf, p...)
	w.cond.Broadcast()
	return len(p), nil
}

func (w *coalescer) flusher() {
	defer close(w.done)
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		for len(w.buf) == 0 && !w.closed {
			w.cond.Wait()
		}
		if len(w.buf) == 0 {
			return // closed and flushed
		}
		b := w.buf
		w.buf = w.spare[:0]
		w.mu.Unlock()
		_, err := w.Conn.Write(b)
		w.mu.Lock()
		w.spare = b[:0]
		if err != nil && w.err == nil {
			w.err = err
		}
		w.cond.Broadcast()
		if w.err != nil {
			w.buf = nil
			return
		}
	}
}

// Close flushes what is buffered (for up to a second) and closes the
// connection.
func (w *coalescer) Close() error {
	w.mu.Lock()
	w.closed = true
	w.cond.Broadcast()
	w.mu.Unlock()
	select {
	case <-w.done:
	case <-time.After(time.Second):
	}
	return w.Conn.Close()
}
