// Package blob stores Ferry's file content: opaque, already-encrypted blobs
// kept under random ids by a [Backend] (the local file system, S3 later).
//
// What every Backend guarantees, and blobtest.Run checks:
//
//   - Names are ids, never user input. An id is 32 lower-case hex characters
//     from [NewID]; any other string is rejected with a ferry.Invalid error
//     before it reaches storage. File names chosen by users live only in the
//     database (DESIGN invariant 3).
//   - A blob appears atomically. Nothing is visible under an id until
//     Writer.Commit returns nil; an aborted, failed or interrupted write
//     leaves nothing behind under that id (DESIGN invariant 9).
//   - A blob is never replaced. Creating an id that exists fails with
//     ferry.Exist and the existing content is kept.
//   - Errors carry a ferry.Kind: NotExist for a missing blob, Exist, Invalid,
//     NoSpace when the storage is full, Internal otherwise.
//
// Blobs are ciphertext (DESIGN invariant 6): a Backend never sees plaintext or
// keys, and encrypts nothing itself.
//
// Cross-cutting concerns such as metrics, quotas or retries are decorators that
// wrap a Backend (see [WithMetrics]) rather than code inside each backend.
package blob
