CREATE TABLE orgs (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	retention_days INTEGER NOT NULL,
	created BIGINT NOT NULL
);
CREATE TABLE parties (
	id TEXT PRIMARY KEY,
	org_id TEXT NOT NULL REFERENCES orgs(id),
	name TEXT NOT NULL,
	created BIGINT NOT NULL,
	UNIQUE (org_id, name)
);
CREATE TABLE party_contacts (
	party_id TEXT NOT NULL REFERENCES parties(id) ON DELETE CASCADE,
	email TEXT NOT NULL,
	PRIMARY KEY (party_id, email)
);
CREATE TABLE users (
	id TEXT PRIMARY KEY,
	org_id TEXT NOT NULL REFERENCES orgs(id),
	email TEXT NOT NULL UNIQUE,
	role TEXT NOT NULL,
	party_id TEXT REFERENCES parties(id),
	password_hash TEXT NOT NULL DEFAULT '',
	server_admin INTEGER NOT NULL DEFAULT 0,
	disabled INTEGER NOT NULL DEFAULT 0,
	created BIGINT NOT NULL
);
CREATE TABLE tokens (
	id TEXT PRIMARY KEY,
	user_id TEXT NOT NULL REFERENCES users(id),
	hash BYTEA NOT NULL,
	created BIGINT NOT NULL,
	expires BIGINT NOT NULL,
	revoked INTEGER NOT NULL DEFAULT 0,
	last_used BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX tokens_user ON tokens (user_id);
CREATE TABLE ssh_keys (
	id TEXT PRIMARY KEY,
	user_id TEXT NOT NULL REFERENCES users(id),
	fingerprint TEXT NOT NULL UNIQUE,
	public_key TEXT NOT NULL,
	comment TEXT NOT NULL,
	created BIGINT NOT NULL
);
CREATE TABLE folders (
	id TEXT PRIMARY KEY,
	org_id TEXT NOT NULL REFERENCES orgs(id),
	parent_id TEXT REFERENCES folders(id),
	name TEXT NOT NULL,
	path TEXT NOT NULL,
	party_id TEXT REFERENCES parties(id),
	created BIGINT NOT NULL,
	UNIQUE (org_id, path)
);
CREATE INDEX folders_parent ON folders (parent_id);
CREATE TABLE grants (
	folder_id TEXT NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
	user_id TEXT NOT NULL REFERENCES users(id),
	perms INTEGER NOT NULL,
	PRIMARY KEY (folder_id, user_id)
);
CREATE INDEX grants_user ON grants (user_id);
CREATE TABLE files (
	id TEXT PRIMARY KEY,
	org_id TEXT NOT NULL REFERENCES orgs(id),
	folder_id TEXT NOT NULL REFERENCES folders(id),
	name TEXT NOT NULL,
	size BIGINT NOT NULL,
	sha256 BYTEA NOT NULL,
	blob_id TEXT NOT NULL UNIQUE,
	wrapped_key BYTEA NOT NULL,
	kek_id TEXT NOT NULL,
	uploader_id TEXT NOT NULL,
	party_id TEXT,
	created BIGINT NOT NULL,
	modified BIGINT NOT NULL,
	expires BIGINT NOT NULL,
	hold INTEGER NOT NULL DEFAULT 0,
	UNIQUE (folder_id, name)
);
CREATE INDEX files_expires ON files (expires);
CREATE TABLE setup_codes (
	hash BYTEA PRIMARY KEY,
	expires BIGINT NOT NULL,
	used INTEGER NOT NULL DEFAULT 0
);
