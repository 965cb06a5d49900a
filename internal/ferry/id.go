package ferry

import (
	"crypto/rand"
	"encoding/hex"
	"io"
)

// NewID returns a new random identifier: 32 lower-case hex characters holding
// 128 bits read from r (crypto/rand.Reader when r is nil).
func NewID(r io.Reader) string {
	if r == nil {
		r = rand.Reader
	}
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		panic("ferry: reading random bytes: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}
