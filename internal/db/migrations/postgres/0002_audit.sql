-- The tamper-evident audit log (internal/audit).
CREATE TABLE audit_records (
	seq BIGINT PRIMARY KEY,
	time BIGINT NOT NULL,
	action TEXT NOT NULL,
	actor TEXT NOT NULL,
	org TEXT NOT NULL,
	org_id TEXT NOT NULL,
	party TEXT NOT NULL,
	party_id TEXT NOT NULL,
	path TEXT NOT NULL,
	data BYTEA NOT NULL
);
CREATE INDEX audit_records_time ON audit_records (time);
CREATE INDEX audit_records_actor ON audit_records (actor, time);
CREATE TABLE audit_hashes (
	idx BIGINT PRIMARY KEY,
	hash BYTEA NOT NULL
);
CREATE TABLE audit_checkpoints (
	size BIGINT PRIMARY KEY,
	time BIGINT NOT NULL,
	note TEXT NOT NULL
);
