package keys

import (
	"crypto/hkdf"
	crand "crypto/rand"
	"crypto/sha256"
	"io"

	"ferry.dev/ferry/internal/ferry"
)

// DataKeySize is the size in bytes of a data key: an AES-256 key.
const DataKeySize = 32

// NewDataKey returns a fresh random data key of DataKeySize bytes read from
// rand (crypto/rand.Reader when rand is nil). Each data key must encrypt one
// stream only.
func NewDataKey(rand io.Reader) ([]byte, error) {
	const op = "keys.NewDataKey"
	if rand == nil {
		rand = crand.Reader
	}
	key := make([]byte, DataKeySize)
	if _, err := io.ReadFull(rand, key); err != nil {
		return nil, ferry.E(op, ferry.Internal, "cannot generate a data key", err)
	}
	return key, nil
}

// partKeyInfo is the HKDF info prefix of part keys; the part id follows.
const partKeyInfo = "ferry part key v1\x00"

// PartKey derives the key of one part of a file that was written in several
// sessions (a resumable upload): HKDF-SHA256 over the file's data key, no
// salt, info "ferry part key v1\x00" followed by the part's 16-byte id (its
// blob id). Every part is a stream of its own under its own key, so a session
// that resumes at an offset never seals a segment index twice under one key,
// whatever the client resends; and destroying the file's wrapped data key
// shreds every part at once.
func PartKey(dek []byte, partID [KeyIDSize]byte) ([]byte, error) {
	const op = "keys.PartKey"
	if len(dek) != DataKeySize {
		return nil, ferry.E(op, ferry.Invalid, "data key must be 32 bytes")
	}
	k, err := hkdf.Key(sha256.New, dek, nil, partKeyInfo+string(partID[:]), DataKeySize)
	if err != nil {
		return nil, ferry.E(op, ferry.Internal, err)
	}
	return k, nil
}
