-- Resumable uploads (tus over HTTPS, SFTP resume). Every piece of an upload's
-- state is a typed column, so any node can continue it.
ALTER TABLE files ADD COLUMN parts INTEGER NOT NULL DEFAULT 0;
CREATE TABLE uploads (
	id TEXT PRIMARY KEY,
	org_id TEXT NOT NULL REFERENCES orgs(id),
	owner TEXT NOT NULL,
	path TEXT NOT NULL,
	size BIGINT NOT NULL,
	received BIGINT NOT NULL,
	parts INTEGER NOT NULL,
	expect_sha256 BLOB NOT NULL,
	hash_state BLOB NOT NULL,
	file_id TEXT NOT NULL UNIQUE,
	wrapped_key BLOB NOT NULL,
	kek_id TEXT NOT NULL,
	protocol TEXT NOT NULL,
	created BIGINT NOT NULL,
	updated BIGINT NOT NULL,
	expires BIGINT NOT NULL
);
CREATE INDEX uploads_owner ON uploads (owner, path);
CREATE INDEX uploads_expires ON uploads (expires);
-- The parts of a file written in several sessions, each its own encrypted
-- stream (docs/FORMAT.md, multi-part files). file_id is the upload's file_id
-- while it is in progress and the file's id once complete.
CREATE TABLE file_parts (
	file_id TEXT NOT NULL,
	idx INTEGER NOT NULL,
	blob_id TEXT NOT NULL UNIQUE,
	plain_offset BIGINT NOT NULL,
	plain_size BIGINT NOT NULL,
	PRIMARY KEY (file_id, idx)
);
