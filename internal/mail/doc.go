// Package mail is Ferry's outgoing email: a durable outbox in the metadata
// database and the loop that delivers it over SMTP.
//
// What it guarantees:
//
//   - Nothing is sent inline. Enqueue validates a message and stores it; a
//     background loop (Run) delivers it. An SMTP outage, a restart or a crash
//     loses no mail: rows stay queued and are retried with exponential
//     back-off for a bounded time.
//   - A row is claimed with a compare-and-set lease in the database, so
//     several nodes sharing one PostgreSQL database never send the same
//     message twice; each recipient is recorded as delivered as soon as the
//     server accepts it, so a retry never resends to them.
//   - No header injection: every address is parsed with net/mail and CR or LF
//     anywhere in a subject or an address is refused (ferry.Invalid).
//   - Each recipient gets a personal copy (To: that address only), so
//     recipients of one message never learn each other's addresses, and a
//     server refusing one recipient for good does not hold up the others.
//   - Bodies are deleted some days after a row is finished (Config.Keep).
package mail
