// Package audit is Ferry's tamper-evident audit log (DESIGN invariant 7).
//
// Every audited action is a ferry.Event, appended as one record to a
// transparency log: a Merkle tree in the construction of
// golang.org/x/mod/sumdb/tlog (RFC 6962 hashing), stored in the metadata
// database (package db). A record is the event's canonical JSON (encoding/json
// of the struct, fixed field order) with its position in the log as "seq".
// Log appends with group commit and, at most every second while records
// arrive and at Close, signs a checkpoint — a note (golang.org/x/mod/sumdb/note,
// Ed25519) stating the log's name, size and root hash — stores it in the
// database and writes it to a file (DATA/audit/checkpoint) that operators can
// copy off the host. Verify recomputes the tree from the records and checks it
// against the checkpoints; Query searches it.
//
// # What it guarantees
//
// The signing key (keys/audit.key) is the root of trust; its public half
// (audit.pub) verifies checkpoints. Against an attacker who can write to the
// database but does not hold the signing key:
//
//   - Editing, deleting, inserting or reordering any record covered by a
//     signed checkpoint is detected by Verify, even when the attacker
//     recomputes every stored hash: the root recomputed from the records no
//     longer equals the signed one. Verify names the first bad record (or,
//     when a record was edited together with its stored hash, the smallest
//     range of records that must hold it).
//   - Truncating the log (deleting the newest records, or all of them) is
//     detected as long as a checkpoint signed after those records survives:
//     deleting the checkpoints from the database too is caught by the
//     checkpoint file, and an auditor's older copy of a checkpoint proves
//     that the log only grew (the old checkpoint's root must equal the root of
//     the log's first N records).
//   - Editing the indexed columns that queries filter on, to hide a record
//     from a query, is detected by Verify, which checks them against the
//     record's JSON. Query itself reports what the database holds: run Verify
//     to trust it.
//   - The attacker cannot produce a checkpoint: a forged or foreign one fails
//     signature verification.
//
// What it cannot do:
//
//   - Records appended after the newest checkpoint an honest party still
//     holds (normally under a second's worth, or everything since the
//     attacker also replaced the checkpoint file and the database's
//     checkpoints) can be removed without trace: keep copies of checkpoints
//     off the host, and compare with Verify's old argument.
//   - An attacker who deletes the whole database and every checkpoint copy
//     leaves an empty log; Verify then has nothing to compare with.
//   - Whoever holds audit.key (or runs code inside the server) can rewrite
//     the log and sign a new history. The key must stay out of the database
//     and its backups.
//
// Log.Open refuses a log shorter than, or inconsistent with, its newest
// checkpoint, so that the server never signs over a tampered log.
package audit
