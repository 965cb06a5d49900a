// Package guard is Ferry's exfiltration circuit breaker: it stops bulk
// theft while it happens and tells the administrators.
//
// internal/transfer consults it before every read of file content, whatever
// the protocol (REST, web, SFTP, share links, packages). The guard
// guarantees that
//
//   - a principal (a user with all their tokens and sessions, a share link,
//     a package guest) that is frozen reads nothing: every read is refused
//     with a ferry.Permission error, and internal/auth refuses the user's
//     sessions and tokens, until an administrator unfreezes it;
//   - a freeze is stored in the database before the read that caused it is
//     refused, so a restart (or another node, within its refresh interval)
//     keeps it;
//   - a principal that reads more distinct files (or bytes) in the policy's
//     sliding window than its organisation's policy allows, or more than a
//     multiple of its own 30-day peak, is frozen by the read that crosses
//     the limit: that read is refused, and no read after it succeeds. The
//     same holds per source address. Per organisation the guard alerts only;
//   - any read of a canary file freezes the reader within that request (the
//     read is refused), and so does sharing one or a folder holding one;
//   - in "monitor only" mode nothing is frozen, but every alert is raised;
//   - every freeze, canary touch and unfreeze is an audit record; every
//     alert.* audit record (freeze, canary, new administrator or privilege
//     raise, sign-in from a new address range, a token used from two distant
//     ranges, audit verification failure) is delivered by email to the
//     organisation's administrators and, when configured, to the
//     organisation's webhook, signed with HMAC-SHA256, through a durable
//     outbox with retries;
//   - the decision for a read is O(1): a few map operations and a sum over
//     at most 60 per-minute buckets under one mutex, no database access once
//     the organisation's policy and the principal's peak are cached.
//
// Counters live in memory on each node; what must survive a restart (freezes,
// canaries, daily peaks, seen address ranges, the webhook outbox, the alert
// cursor) lives in the database (migration 0011_guard).
package guard
