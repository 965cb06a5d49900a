-- The impact report (docs/IMPACT.md): who read whose files, found through
-- indexes rather than by scanning the log. token, session and remote_ip are
-- copies of fields of the record's canonical JSON (data), which alone is
-- hashed: adding them changes no hash. remote_ip is the remote address as 16
-- bytes (IPv4 mapped into IPv6), so that a CIDR is a range of it; empty when
-- the remote is not an IP address ("unix", "system"); NULL until the rows
-- written before this migration are backfilled (db.BackfillAuditImpact).
ALTER TABLE audit_records ADD COLUMN token TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_records ADD COLUMN session TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_records ADD COLUMN remote_ip BLOB;
-- Reads only (partial indexes): a read index costs nothing on the other
-- actions, which are most of the log. The query names the action as the
-- same constant, which is what lets SQLite use them.
CREATE INDEX audit_reads_time ON audit_records (time) WHERE action = 'file.read';
CREATE INDEX audit_reads_org ON audit_records (org_id, time) WHERE action = 'file.read';
CREATE INDEX audit_reads_actor ON audit_records (actor, time) WHERE action = 'file.read';
CREATE INDEX audit_reads_token ON audit_records (token, time) WHERE action = 'file.read';
CREATE INDEX audit_reads_session ON audit_records (session, time) WHERE action = 'file.read';
CREATE INDEX audit_reads_ip ON audit_records (remote_ip, time) WHERE action = 'file.read';
CREATE INDEX audit_reads_party ON audit_records (party_id, time) WHERE action = 'file.read';
CREATE INDEX audit_backfill ON audit_records (seq) WHERE remote_ip IS NULL;
-- Notifications drafted from an impact report, one per party, reviewed and
-- sent by an administrator.
CREATE TABLE impact_drafts (
	id TEXT PRIMARY KEY,
	report TEXT NOT NULL,
	org_id TEXT NOT NULL,
	party_id TEXT NOT NULL,
	party TEXT NOT NULL,
	recipients TEXT NOT NULL,
	subject TEXT NOT NULL,
	body TEXT NOT NULL,
	state TEXT NOT NULL,
	checkpoint BIGINT NOT NULL,
	created BIGINT NOT NULL,
	created_by TEXT NOT NULL,
	sent BIGINT NOT NULL DEFAULT 0,
	sent_by TEXT NOT NULL DEFAULT ''
);
CREATE INDEX impact_drafts_report ON impact_drafts (report);
CREATE INDEX impact_drafts_org ON impact_drafts (org_id, created);
