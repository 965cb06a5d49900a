-- The exfiltration guard (internal/guard): per-organisation read limits,
-- frozen principals, canary files, each principal's daily peak, the address
-- prefixes each user signed in from, per-organisation alert webhooks and
-- their durable outbox, and the alert dispatcher's position in the audit log.
CREATE TABLE guard_policies (
	org_id TEXT PRIMARY KEY REFERENCES orgs(id),
	window_secs BIGINT NOT NULL,
	max_files INTEGER NOT NULL,
	max_bytes BIGINT NOT NULL,
	addr_max_files INTEGER NOT NULL,
	org_max_files INTEGER NOT NULL,
	peak_factor INTEGER NOT NULL,
	monitor INTEGER NOT NULL,
	updated BIGINT NOT NULL
);
CREATE TABLE guard_freezes (
	subject TEXT PRIMARY KEY,
	org_id TEXT NOT NULL,
	user_id TEXT NOT NULL,
	name TEXT NOT NULL,
	reason TEXT NOT NULL,
	detail TEXT NOT NULL,
	frozen BIGINT NOT NULL
);
CREATE TABLE guard_canaries (
	file_id TEXT PRIMARY KEY,
	org_id TEXT NOT NULL,
	decoy INTEGER NOT NULL,
	created BIGINT NOT NULL,
	created_by TEXT NOT NULL
);
CREATE INDEX guard_canaries_org ON guard_canaries (org_id);
CREATE TABLE guard_peaks (
	subject TEXT NOT NULL,
	day BIGINT NOT NULL,
	peak INTEGER NOT NULL,
	PRIMARY KEY (subject, day)
);
CREATE TABLE guard_seen_addrs (
	user_id TEXT NOT NULL,
	prefix TEXT NOT NULL,
	first_seen BIGINT NOT NULL,
	PRIMARY KEY (user_id, prefix)
);
CREATE TABLE guard_webhooks (
	org_id TEXT PRIMARY KEY REFERENCES orgs(id),
	url TEXT NOT NULL,
	secret TEXT NOT NULL,
	updated BIGINT NOT NULL
);
CREATE TABLE guard_outbox (
	id TEXT PRIMARY KEY,
	org_id TEXT NOT NULL,
	body BLOB NOT NULL,
	created BIGINT NOT NULL,
	attempts INTEGER NOT NULL,
	next_try BIGINT NOT NULL,
	delivered BIGINT NOT NULL,
	last_error TEXT NOT NULL
);
CREATE INDEX guard_outbox_due ON guard_outbox (delivered, next_try);
CREATE TABLE guard_cursor (
	name TEXT PRIMARY KEY,
	seq BIGINT NOT NULL
);
