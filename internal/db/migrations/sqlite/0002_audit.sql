-- The tamper-evident audit log (internal/audit). INTEGER PRIMARY KEY makes the
-- key SQLite's rowid (64-bit): no separate index, appends in key order.
CREATE TABLE audit_records (
	seq INTEGER PRIMARY KEY,
	time BIGINT NOT NULL,
	action TEXT NOT NULL,
	actor TEXT NOT NULL,
	org TEXT NOT NULL,
	org_id TEXT NOT NULL,
	party TEXT NOT NULL,
	party_id TEXT NOT NULL,
	path TEXT NOT NULL,
	data BLOB NOT NULL
);
CREATE INDEX audit_records_time ON audit_records (time);
CREATE INDEX audit_records_actor ON audit_records (actor, time);
CREATE TABLE audit_hashes (
	idx INTEGER PRIMARY KEY,
	hash BLOB NOT NULL
);
CREATE TABLE audit_checkpoints (
	size INTEGER PRIMARY KEY,
	time BIGINT NOT NULL,
	note TEXT NOT NULL
);
