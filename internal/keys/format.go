package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"math"

	"ferry.dev/ferry/internal/ferry"
)

// The stream format. docs/FORMAT.md is the full description.
const (
	// SegmentSize is the number of plaintext bytes in every segment but the
	// last, which holds 0 to SegmentSize bytes.
	SegmentSize = 1 << segmentShift

	// Overhead is the number of bytes a segment's ciphertext adds to its
	// plaintext: the AES-GCM tag.
	Overhead = 16

	// HeaderSize is the size of the stream header in bytes.
	HeaderSize = 24

	// KeyIDSize is the size of the key id recorded in the header.
	KeyIDSize = 16

	magic         = "FRY1"
	formatVersion = 1
	segmentShift  = 16 // log2(SegmentSize), stored in the header
	nonceSize     = 12
	cipherSegment = SegmentSize + Overhead // ciphertext bytes of a full segment

	// maxSegments bounds the segment count so that every size computed from
	// it fits in an int64.
	maxSegments = (math.MaxInt64 - HeaderSize) / cipherSegment
)

// makeHeader returns the header of a stream whose data key is identified by
// keyID.
//
//	0..3   magic "FRY1"
//	4      format version, 1
//	5      log2 of the segment size, 16
//	6..7   reserved, zero
//	8..23  key id
func makeHeader(keyID [KeyIDSize]byte) [HeaderSize]byte {
	var h [HeaderSize]byte
	copy(h[0:4], magic)
	h[4] = formatVersion
	h[5] = segmentShift
	copy(h[8:], keyID[:])
	return h
}

// segmentNonce writes the nonce of segment i into n: three zero bytes, the
// index as a big-endian uint64, and 1 for the final segment or 0 otherwise.
func segmentNonce(n *[nonceSize]byte, i int64, final bool) {
	n[0], n[1], n[2] = 0, 0, 0
	binary.BigEndian.PutUint64(n[3:11], uint64(i)) // #nosec G115 -- 0 <= i < maxSegments (Writer.seal checks; Reader derives i from an offset >= 0), and int64 to uint64 is one-to-one anyway: distinct segments keep distinct nonces
	n[11] = 0
	if final {
		n[11] = 1
	}
}

// newAEAD returns AES-256-GCM under key.
func newAEAD(op string, key []byte) (cipher.AEAD, error) {
	if len(key) != DataKeySize {
		return nil, ferry.E(op, ferry.Invalid, "data key must be 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, ferry.E(op, ferry.Internal, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, ferry.E(op, ferry.Internal, err)
	}
	return aead, nil
}

// CiphertextSize returns the size of the stream that encrypts plain bytes of
// plaintext, header included, or -1 if plain is negative or too large.
func CiphertextSize(plain int64) int64 {
	if plain < 0 {
		return -1
	}
	segs := (plain + SegmentSize - 1) / SegmentSize
	if segs == 0 {
		segs = 1 // an empty plaintext is one empty final segment
	}
	if segs > maxSegments || plain > math.MaxInt64-HeaderSize-segs*Overhead {
		return -1
	}
	return HeaderSize + plain + segs*Overhead
}

// PlaintextSize returns the size of the plaintext of a complete stream of
// cipher bytes. It fails with kind ferry.Integrity for a size no stream can
// have: shorter than a header and one tag, or ending in a segment shorter than
// a tag, or in an empty segment after full ones. It is the inverse of
// CiphertextSize.
func PlaintextSize(cipher int64) (int64, error) {
	plain, _, err := layout(cipher)
	return plain, err
}

// layout returns the plaintext size and the number of segments of a complete
// stream of cipher bytes.
func layout(cipher int64) (plain, segments int64, err error) {
	const op = "keys.PlaintextSize"
	if cipher < HeaderSize+Overhead {
		return 0, 0, ferry.E(op, ferry.Integrity, "encrypted content is truncated", errImpossibleSize)
	}
	body := cipher - HeaderSize
	full, rest := body/cipherSegment, body%cipherSegment
	switch {
	case rest == 0: // the final segment is full
		return full * SegmentSize, full, nil
	case rest < Overhead || rest == Overhead && full > 0:
		return 0, 0, ferry.E(op, ferry.Integrity, "encrypted content is truncated", errImpossibleSize)
	}
	return full*SegmentSize + rest - Overhead, full + 1, nil
}

// CompleteSegments returns how many whole segments an interrupted stream of
// cipherLen bytes (header included) holds: the segments argument of
// ResumeWriter. It returns -1 when not even the header is complete; the
// caller then discards everything and starts again with NewWriter.
//
// A stream whose Writer was closed holds its final segment too, and a final
// segment can be full: a caller that cannot tell whether Close completed
// should first try NewReader, which succeeds only on a complete stream.
func CompleteSegments(cipherLen int64) int64 {
	if cipherLen < HeaderSize {
		return -1
	}
	return (cipherLen - HeaderSize) / cipherSegment
}

// SegmentOffset returns the ciphertext offset at which segment i starts,
// header included: the length to keep when resuming after i segments.
func SegmentOffset(i int64) int64 {
	return HeaderSize + i*cipherSegment
}

var errImpossibleSize = errors.New("size is not that of any stream")

// ioErr wraps an error from the underlying reader or writer, keeping its kind
// (a blob backend may report NoSpace or Unavailable) and defaulting to
// Internal.
func ioErr(op string, err error) error {
	kind := ferry.KindOf(err)
	if kind == ferry.Other {
		kind = ferry.Internal
	}
	return ferry.E(op, kind, err)
}
