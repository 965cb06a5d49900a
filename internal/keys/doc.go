// Package keys holds Ferry's content encryption: per-file data keys, the
// segmented AES-256-GCM stream format that file content is stored in, and the
// key-encryption-key (KEK) providers that wrap data keys (DESIGN invariants 6
// and 10).
//
// # Guarantees
//
// Content format. A stream is a 24-byte header followed by the plaintext cut
// into 64 KiB segments, each sealed with AES-256-GCM under the file's data
// key. The nonce of a segment is its index plus a flag marking the last
// segment, and the header is the additional data of every segment (the STREAM
// construction). Any change to the stored bytes — a flipped bit, segments
// reordered, duplicated, dropped, appended, or the stream cut short, even at a
// segment boundary — makes decryption fail with an error of kind
// ferry.Integrity. A Reader never returns bytes that did not authenticate, and
// it authenticates the final segment when it is opened, so a truncated blob is
// refused before any byte is served. docs/FORMAT.md describes the format byte
// by byte, with test vectors.
//
// No plaintext on disk. A Writer holds at most one segment (64 KiB) of
// plaintext, in memory; a Reader decrypts one segment at a time, in memory.
// Neither writes anything but ciphertext.
//
// Keys out of the database. A data key is random (NewDataKey), used for one
// stream only, and stored only wrapped by the organisation's KEK through a
// KEKProvider. FileKEK keeps KEKs as files under the data directory (mode
// 0600, in a 0700 directory), never in the metadata database, so the database
// and the blob store together yield no plaintext.
//
// Crypto-shredding. Once every copy of a file's wrapped data key is deleted,
// its blob — and every backup of it — cannot be decrypted by anyone, including
// a holder of the KEK.
//
// # Caller obligations
//
// A data key must encrypt exactly one stream: the nonces repeat from stream to
// stream, so reusing a key for a second stream destroys its confidentiality.
// When resuming an interrupted stream (ResumeWriter), resume after every
// complete segment that reached storage (CompleteSegments): a segment written
// twice under the same key with different content has the same problem.
//
// Segments use cipher.NewGCM with nonces this package constructs, which
// GODEBUG=fips140=on allows; fips140=only does not.
package keys
