package keys

import (
	"crypto/cipher"
	"errors"
	"io"

	"ferry.dev/ferry/internal/ferry"
)

// Writer encrypts a stream of plaintext into the segmented format and writes
// the ciphertext to an underlying io.Writer.
//
// It buffers up to one segment of plaintext, in memory only. A full segment is
// sealed (as not final) and written when the first byte after it arrives, so
// the final segment is always the one Close seals; a stream whose length is a
// multiple of SegmentSize therefore ends in a full final segment. Each sealed
// segment is passed to the underlying writer in a single Write call.
//
// A Writer is not safe for concurrent use. After an error from the underlying
// writer, every later call returns that error; the ciphertext written so far
// can be continued with ResumeWriter.
type Writer struct {
	w       io.Writer
	aead    cipher.AEAD
	header  [HeaderSize]byte
	nonce   [nonceSize]byte
	buf     []byte // SegmentSize+Overhead; holds n bytes of plaintext
	n       int
	index   int64 // index of the segment being filled
	written int64
	err     error // sticky
	closed  bool
}

// NewWriter writes the header of a new stream to w and returns a Writer that
// encrypts to w under key (DataKeySize bytes, used for this stream only).
// keyID identifies the key — the caller passes the blob or file id — and is
// authenticated with every segment, so a stream cannot be passed off as
// another's.
func NewWriter(w io.Writer, key []byte, keyID [KeyIDSize]byte) (*Writer, error) {
	const op = "keys.NewWriter"
	sw, err := newWriter(op, w, key, keyID, 0)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(sw.header[:]); err != nil {
		return nil, ioErr(op, err)
	}
	return sw, nil
}

// ResumeWriter continues a stream that was interrupted before Close, of which
// the header and the first segments segments (all complete and not final)
// are already stored: the caller has discarded any ciphertext after
// SegmentOffset(segments). The Writer appends to w from there, starting with
// plaintext offset segments*SegmentSize; key and keyID must be those of the
// original stream. Use CompleteSegments to find segments from the stored
// length.
//
// The plaintext written after resuming should be the same as the plaintext
// that followed the resume point originally (the client resends from that
// offset): a partially stored segment that gets rewritten with different
// content reuses its nonce.
func ResumeWriter(w io.Writer, key []byte, keyID [KeyIDSize]byte, segments int64) (*Writer, error) {
	const op = "keys.ResumeWriter"
	if segments < 0 || segments >= maxSegments {
		return nil, ferry.E(op, ferry.Invalid, "invalid segment count")
	}
	return newWriter(op, w, key, keyID, segments)
}

func newWriter(op string, w io.Writer, key []byte, keyID [KeyIDSize]byte, segments int64) (*Writer, error) {
	if w == nil {
		return nil, ferry.E(op, ferry.Invalid, "nil writer")
	}
	aead, err := newAEAD(op, key)
	if err != nil {
		return nil, err
	}
	return &Writer{
		w:       w,
		aead:    aead,
		header:  makeHeader(keyID),
		buf:     make([]byte, cipherSegment),
		index:   segments,
		written: segments * SegmentSize,
	}, nil
}

// Write encrypts p. It seals and writes every segment that fills up and is
// followed by more data; the rest stays buffered until the next Write or
// Close.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, ferry.E("keys.Writer.Write", ferry.Internal, errWriterClosed)
	}
	total := 0
	for len(p) > 0 {
		if w.n == SegmentSize {
			// More data follows, so the buffered segment is not the last.
			if err := w.seal(w.buf[:SegmentSize], false); err != nil {
				return total, err
			}
		}
		if w.n == 0 && len(p) > SegmentSize {
			// A whole non-final segment in p: seal it straight from p.
			if err := w.seal(p[:SegmentSize], false); err != nil {
				return total, err
			}
			p = p[SegmentSize:]
			total += SegmentSize
			w.written += SegmentSize
			continue
		}
		c := copy(w.buf[w.n:SegmentSize], p)
		w.n += c
		p = p[c:]
		total += c
		w.written += int64(c)
	}
	return total, nil
}

// Close seals and writes the final segment (empty if nothing is buffered, as
// for an empty stream). It does not close the underlying writer. Calling Close
// again returns the result of the first call.
func (w *Writer) Close() error {
	if w.closed || w.err != nil {
		return w.err
	}
	err := w.seal(w.buf[:w.n], true)
	w.closed = true
	clear(w.buf)
	return err
}

// Written returns the plaintext offset reached: the bytes accepted by Write,
// plus segments*SegmentSize for a resumed Writer.
func (w *Writer) Written() int64 { return w.written }

// seal encrypts plain as segment w.index into w.buf and writes it. plain is
// either w.buf[:n] (sealed in place) or a slice of the caller's data.
func (w *Writer) seal(plain []byte, final bool) error {
	if w.index >= maxSegments {
		w.err = ferry.E("keys.Writer.Write", ferry.TooLarge, "content too large")
		return w.err
	}
	segmentNonce(&w.nonce, w.index, final)
	out := w.aead.Seal(w.buf[:0], w.nonce[:], plain, w.header[:])
	w.n = 0
	w.index++
	if _, err := w.w.Write(out); err != nil {
		w.err = ioErr("keys.Writer.Write", err)
		return w.err
	}
	return nil
}

var errWriterClosed = errors.New("write after Close")
