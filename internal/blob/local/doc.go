// Package local is the blob.Backend on a local directory, the default of a
// single-node Ferry.
//
// It guarantees:
//
//   - Every file access goes through an os.Root opened on the blob directory:
//     no name, and no symbolic link planted inside the directory, can reach a
//     file outside it. The only names used are validated ids (blob.ValidID),
//     two-character fan-out directories made from them, and temporary names
//     it generates itself.
//   - Layout: ab/abcdef… (fan-out by the first two hex characters), files
//     0600, directories 0700.
//   - Atomic, durable, no-replace writes: bytes go to a temporary file
//     (".tmp-" + random) in the blob's own directory, which Commit fsyncs,
//     closes, hard-links to the final name (failing if it exists), removes,
//     and then fsyncs the directory. A crash leaves either no blob or the
//     whole blob, plus perhaps a temporary file that CleanTemp removes.
//   - A full disk (ENOSPC, EDQUOT) is a ferry.NoSpace error and the temporary
//     file is removed at once, giving its space back.
//
// The directory must be on a file system with hard links (any Linux local file
// system, NFS; not FAT).
package local
