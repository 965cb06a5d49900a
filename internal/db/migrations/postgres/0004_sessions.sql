-- Web sessions, organisation policies and scoped API tokens (the
-- authentication issue). A session's secret is only ever stored as its
-- SHA-256; the public id names it in listings and audit records.
CREATE TABLE sessions (
	id TEXT PRIMARY KEY,
	hash BYTEA NOT NULL UNIQUE,
	user_id TEXT NOT NULL REFERENCES users(id),
	stage TEXT NOT NULL,
	methods TEXT NOT NULL,
	created BIGINT NOT NULL,
	last_seen BIGINT NOT NULL,
	expires BIGINT NOT NULL,
	idle_secs BIGINT NOT NULL,
	remote TEXT NOT NULL,
	user_agent TEXT NOT NULL,
	revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE TABLE org_policies (
	org_id TEXT PRIMARY KEY REFERENCES orgs(id),
	min_password_len INTEGER NOT NULL,
	mfa_required INTEGER NOT NULL,
	passkeys TEXT NOT NULL,
	sso_required INTEGER NOT NULL,
	session_idle_secs BIGINT NOT NULL,
	session_max_secs BIGINT NOT NULL,
	allowed_cidrs TEXT NOT NULL,
	sftp_keys_only INTEGER NOT NULL,
	updated BIGINT NOT NULL
);
ALTER TABLE tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'read,write,share';
ALTER TABLE tokens ADD COLUMN name TEXT NOT NULL DEFAULT '';
