package blob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
)

// Backend stores opaque, already-encrypted blobs under random ids.
//
// Implementations are safe for concurrent use. Every method rejects an id for
// which ValidID is false with a ferry.Invalid error, and fails if ctx is
// already done.
type Backend interface {
	// Create starts a new blob. Nothing is visible under id until Commit
	// returns nil. ctx governs the whole write: once it is done, Write and
	// Commit fail and nothing is committed.
	Create(ctx context.Context, id string) (Writer, error)
	// Open opens a committed blob for random-access reads. It returns a
	// ferry.NotExist error if no blob is committed under id. Backends that
	// fetch lazily may use ctx for later reads, so keep it alive until the
	// Reader is closed.
	Open(ctx context.Context, id string) (Reader, error)
	// Delete removes a committed blob. Deleting a missing blob returns a
	// NotExist error.
	Delete(ctx context.Context, id string) error
	// List calls fn with the id of every committed blob, in no particular
	// order. Blobs being written are not listed. If fn returns an error, List
	// stops and returns that error unchanged.
	List(ctx context.Context, fn func(id string) error) error
}

// Writer receives a blob's bytes. Exactly one of Commit or Abort must be
// called; calling Abort after Commit does nothing and returns nil, so callers
// may defer Abort. A Writer is not safe for concurrent use.
//
// A failed Write discards the blob: later Writes and Commit return the same
// error, and Abort returns nil.
type Writer interface {
	io.Writer
	// Commit makes the blob durable and visible atomically, replacing
	// nothing: Create on an existing id fails with ferry.Exist at Create or
	// at Commit. When Commit returns an error, nothing is visible under id
	// (unless another writer committed it).
	Commit() error
	// Abort discards everything written.
	Abort() error
}

// Reader reads a committed blob. ReadAt follows the io.ReaderAt contract
// (io.EOF at the end, safe for parallel calls); a negative offset is a
// ferry.Invalid error.
type Reader interface {
	io.ReaderAt
	io.Closer
	// Size returns the blob's length in bytes.
	Size() int64
}

// idLen is the length of an id: 128 bits in hex.
const idLen = 32

// NewID returns a new random blob id: 32 lower-case hex characters (128 bits
// from crypto/rand).
func NewID() string {
	var b [idLen / 2]byte
	rand.Read(b[:]) // never fails; crashes the program if the system cannot supply randomness
	return hex.EncodeToString(b[:])
}

// ValidID reports whether id has the form NewID returns: exactly 32 lower-case
// hex characters. Only such ids can reach a Backend's storage, so an id can
// never be a path, a separator or a dot-name.
func ValidID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
