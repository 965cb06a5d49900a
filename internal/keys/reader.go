package keys

import (
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"sync"

	"ferry.dev/ferry/internal/ferry"
)

// Reader decrypts a stream stored in an io.ReaderAt. It implements
// io.ReaderAt, io.ReadSeeker and io.WriterTo, decrypting only the segments a
// read touches, so that ranges (http.ServeContent) cost at most two segments
// more than the bytes served.
//
// Every segment is authenticated before any of its bytes are returned; a
// segment that fails yields an error of kind ferry.Integrity, and the bytes
// returned before it are those of earlier, authenticated segments.
//
// ReadAt may be called concurrently. Read, Seek and WriteTo share an offset
// and, like those of any io.Reader, must not be called concurrently.
type Reader struct {
	r      io.ReaderAt
	aead   cipher.AEAD
	header [HeaderSize]byte
	size   int64 // plaintext bytes
	csize  int64 // ciphertext bytes
	nseg   int64 // number of segments, at least 1
	off    int64 // offset for Read, Seek and WriteTo

	mu     sync.Mutex // guards the cache
	cache  *segBuf
	cached int64 // segment whose plaintext is cache.b[:cLen], or -1
	cLen   int
}

// segBuf is the memory one segment is decrypted in.
type segBuf struct {
	nonce [nonceSize]byte
	b     []byte // SegmentSize+Overhead bytes
}

func newSegBuf() *segBuf { return &segBuf{b: make([]byte, cipherSegment)} }

// NewReader opens the stream of cipherSize bytes in r, encrypted under key
// for keyID. It checks the header and authenticates the final segment, so a
// stream that is truncated, extended, or not encrypted for keyID and key fails
// here, with kind ferry.Integrity.
func NewReader(r io.ReaderAt, cipherSize int64, key []byte, keyID [KeyIDSize]byte) (*Reader, error) {
	const op = "keys.NewReader"
	if r == nil {
		return nil, ferry.E(op, ferry.Invalid, "nil reader")
	}
	aead, err := newAEAD(op, key)
	if err != nil {
		return nil, err
	}
	size, nseg, err := layout(cipherSize)
	if err != nil {
		return nil, ferry.E(op, err)
	}
	sr := &Reader{
		r:      r,
		aead:   aead,
		header: makeHeader(keyID),
		size:   size,
		csize:  cipherSize,
		nseg:   nseg,
		cache:  newSegBuf(),
		cached: -1,
	}
	var h [HeaderSize]byte
	if err := sr.readFull(op, h[:], 0); err != nil {
		return nil, err
	}
	if h != sr.header {
		return nil, ferry.E(op, ferry.Integrity, msgAuth, headerError(h, sr.header))
	}
	if _, err := sr.segmentLocked(op, sr.nseg-1); err != nil {
		return nil, err
	}
	return sr, nil
}

// msgAuth is the client-safe message of every authentication failure.
const msgAuth = "encrypted content failed authentication"

// headerError says how header h differs from the expected one, for logs.
func headerError(h, want [HeaderSize]byte) error {
	switch {
	case string(h[0:4]) != magic:
		return errors.New("not a Ferry encrypted stream (bad magic)")
	case h[4] != formatVersion:
		return fmt.Errorf("unsupported format version %d", h[4])
	case h[5] != segmentShift:
		return fmt.Errorf("unsupported segment size 2^%d", h[5])
	case h[6] != 0 || h[7] != 0:
		return errors.New("reserved header bytes are not zero")
	}
	return fmt.Errorf("stream is for key id %x, want %x", h[8:], want[8:])
}

// Size returns the plaintext size of the stream.
func (r *Reader) Size() int64 { return r.size }

// ReadAt implements io.ReaderAt. It decrypts the segments covering
// [off, off+len(p)), keeping the last one decrypted for the next call.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	const op = "keys.Reader.ReadAt"
	if off < 0 {
		return 0, ferry.E(op, ferry.Invalid, "negative offset")
	}
	if off >= r.size {
		return 0, io.EOF
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for n < len(p) && off < r.size {
		i := off / SegmentSize
		seg, err := r.segmentLocked(op, i)
		if err != nil {
			return n, err
		}
		c := copy(p[n:], seg[off-i*SegmentSize:])
		n += c
		off += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.ReadAt(p, r.off)
	r.off += int64(n)
	if n > 0 && err == io.EOF {
		err = nil
	}
	return n, err
}

// Seek implements io.Seeker. Seeking past the end is allowed; reads there
// return io.EOF.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	const op = "keys.Reader.Seek"
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.off + offset
	case io.SeekEnd:
		abs = r.size + offset
	default:
		return 0, ferry.E(op, ferry.Invalid, "invalid whence")
	}
	if abs < 0 {
		return 0, ferry.E(op, ferry.Invalid, "negative position")
	}
	r.off = abs
	return abs, nil
}

// WriteTo implements io.WriterTo: it writes the plaintext from the current
// offset to the end into w, one decrypted segment per Write, and advances the
// offset. It uses a buffer of its own, so concurrent ReadAt calls are not held
// up by a slow w.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	const op = "keys.Reader.WriteTo"
	var total int64
	if r.off >= r.size {
		return 0, nil
	}
	buf := newSegBuf()
	for r.off < r.size {
		i := r.off / SegmentSize
		seg, err := r.open(op, buf, i)
		if err != nil {
			return total, err
		}
		chunk := seg[r.off-i*SegmentSize:]
		n, err := w.Write(chunk)
		r.off += int64(n)
		total += int64(n)
		if err == nil && n < len(chunk) {
			err = io.ErrShortWrite
		}
		if err != nil {
			return total, ioErr(op, err)
		}
	}
	return total, nil
}

// segmentLocked returns the plaintext of segment i from the cache, decrypting
// it first if needed. r.mu must be held (or r not yet shared).
func (r *Reader) segmentLocked(op string, i int64) ([]byte, error) {
	if r.cached == i {
		return r.cache.b[:r.cLen], nil
	}
	r.cached = -1
	seg, err := r.open(op, r.cache, i)
	if err != nil {
		return nil, err
	}
	r.cached, r.cLen = i, len(seg)
	return seg, nil
}

// open reads segment i into buf and decrypts it in place, returning its
// plaintext.
func (r *Reader) open(op string, buf *segBuf, i int64) ([]byte, error) {
	start := SegmentOffset(i)
	end := min(start+cipherSegment, r.csize)
	ct := buf.b[:end-start]
	if err := r.readFull(op, ct, start); err != nil {
		return nil, err
	}
	segmentNonce(&buf.nonce, i, i == r.nseg-1)
	plain, err := r.aead.Open(ct[:0], buf.nonce[:], ct, r.header[:])
	if err != nil {
		return nil, ferry.E(op, ferry.Integrity, msgAuth, fmt.Errorf("segment %d of %d: %w", i, r.nseg, err))
	}
	return plain, nil
}

// readFull reads len(p) bytes at off from the underlying reader. A short read
// means the stored stream is shorter than its recorded size: an Integrity
// failure.
func (r *Reader) readFull(op string, p []byte, off int64) error {
	n, err := r.r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return ferry.E(op, ferry.Integrity, "encrypted content is truncated",
			fmt.Errorf("read %d of %d bytes at offset %d", n, len(p), off))
	}
	return ioErr(op, err)
}
