// Package sftpd is Ferry's SFTP server: SSH from golang.org/x/crypto/ssh and
// SFTP v3 from github.com/pkg/sftp's RequestServer, translated onto
// internal/transfer, the one path for file content (DESIGN invariant 1).
//
// Guarantees:
//
//   - Only the "sftp" subsystem is served: no shell, no exec, no port or agent
//     forwarding, no other channel type (DESIGN invariant 3).
//   - Users log in with their email and either their password (the same
//     argon2id hash as the web) or a public key registered with `ferry admin
//     sshkey add`; every attempt is audited by internal/auth. Failed logins
//     feed auth.Limiter: an address that fails too often is refused before any
//     credential is checked, so it cannot slow other users down.
//   - Every file operation is a transfer call with the user's principal, so
//     grants, encryption, retention and audit are those of the REST API. An
//     invisible folder answers NO_SUCH_FILE, a visible one without the
//     permission PERMISSION_DENIED. Paths are resolved by SFTP's own rules
//     against the organisation's root ("/.." is "/"), then validated by
//     transfer (NUL, control characters, overlong names: FAILURE).
//   - A write handle is one session of a resumable upload in transfer: the
//     bytes are written, in order, into one part (transfer.UploadPart), which
//     encrypts and stores each write as it comes, and the file becomes visible only when the client closes the handle after a
//     complete, gap-free session. A dropped connection, a gap, or any error
//     leaves the previous version untouched; the bytes stored in order stay
//     resumable (OpenSSH's reput: stat shows the unfinished upload's size,
//     and an open without truncate continues it). Out-of-order writes are
//     reordered in a bounded in-memory window (buffers reused); no
//     plaintext is written to disk.
//   - A download opens one audited stream per contiguous range read.
//   - A malformed packet gets an error status or closes that session only;
//     a panic in a handler becomes an error status.
//
// Not yet: quotas in statvfs.
package sftpd
