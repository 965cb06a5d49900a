-- The mail outbox: every email Ferry sends is first stored here, in the same
-- database as everything else, and delivered by a background loop on any
-- node. A row is claimed by setting lease_owner/lease_until in one
-- compare-and-set statement, so two nodes never send the same message.
--
-- recipients lists every address (one per line); pending the ones not yet
-- delivered, failed the ones the server rejected for good, each line
-- "address<TAB>reason". Each recipient gets a personal copy. Bodies are
-- deleted some days after the row is finished (sent or failed).
CREATE TABLE mail_outbox (
	id TEXT PRIMARY KEY,
	kind TEXT NOT NULL,
	recipients TEXT NOT NULL,
	pending TEXT NOT NULL,
	failed TEXT NOT NULL,
	subject TEXT NOT NULL,
	body_text TEXT NOT NULL,
	body_html TEXT NOT NULL,
	message_id TEXT NOT NULL,
	status TEXT NOT NULL,
	attempts INTEGER NOT NULL,
	last_error TEXT NOT NULL,
	created BIGINT NOT NULL,
	next_attempt BIGINT NOT NULL,
	lease_owner TEXT NOT NULL,
	lease_until BIGINT NOT NULL,
	finished BIGINT NOT NULL
);
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt);
CREATE INDEX mail_outbox_finished ON mail_outbox (finished);
-- Email invitations: a user created without a usable password receives a
-- single-use link; only the SHA-256 of its 256-bit token is stored. One
-- invitation per user: inviting again replaces the old link.
CREATE TABLE user_invites (
	user_id TEXT PRIMARY KEY REFERENCES users(id),
	hash BLOB NOT NULL UNIQUE,
	invited_by TEXT NOT NULL,
	created BIGINT NOT NULL,
	expires BIGINT NOT NULL
);
