package keys

import (
	crand "crypto/rand"
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
