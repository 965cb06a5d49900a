-- Packages (ad hoc transfer): a message with files sent to Ferry users or
-- email addresses. The files live in a system-managed folder per package
-- (folder_id) and replies in a sub-folder (reply_folder_id), so every byte
-- goes through internal/transfer. Link secrets, one-time codes and guest
-- session secrets are stored only as SHA-256 hashes.
CREATE TABLE packages (
	id TEXT PRIMARY KEY,
	org_id TEXT NOT NULL REFERENCES orgs(id),
	sender_id TEXT NOT NULL REFERENCES users(id),
	subject TEXT NOT NULL,
	message TEXT NOT NULL,
	status TEXT NOT NULL,
	party_id TEXT REFERENCES parties(id),
	folder_id TEXT NOT NULL REFERENCES folders(id),
	reply_folder_id TEXT NOT NULL REFERENCES folders(id),
	expires BIGINT NOT NULL,
	max_downloads INTEGER NOT NULL,
	require_signin INTEGER NOT NULL,
	notify INTEGER NOT NULL,
	allow_reply INTEGER NOT NULL,
	created BIGINT NOT NULL,
	sent BIGINT NOT NULL,
	recalled BIGINT NOT NULL,
	expiry_noticed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX packages_sender ON packages (sender_id, created);
CREATE INDEX packages_expires ON packages (status, expires);
CREATE TABLE package_recipients (
	id TEXT PRIMARY KEY,
	package_id TEXT NOT NULL REFERENCES packages(id),
	email TEXT NOT NULL,
	user_id TEXT REFERENCES users(id),
	token_hash BYTEA NOT NULL UNIQUE,
	created BIGINT NOT NULL,
	opened BIGINT NOT NULL,
	UNIQUE (package_id, email)
);
CREATE INDEX package_recipients_email ON package_recipients (email);
CREATE INDEX package_recipients_user ON package_recipients (user_id);
CREATE TABLE package_downloads (
	recipient_id TEXT NOT NULL REFERENCES package_recipients(id),
	file_id TEXT NOT NULL,
	count INTEGER NOT NULL,
	PRIMARY KEY (recipient_id, file_id)
);
CREATE TABLE package_receipts (
	id TEXT PRIMARY KEY,
	package_id TEXT NOT NULL REFERENCES packages(id),
	recipient_id TEXT NOT NULL REFERENCES package_recipients(id),
	email TEXT NOT NULL,
	file_id TEXT NOT NULL,
	file_name TEXT NOT NULL,
	bytes BIGINT NOT NULL,
	remote TEXT NOT NULL,
	created BIGINT NOT NULL
);
CREATE INDEX package_receipts_package ON package_receipts (package_id, created);
CREATE TABLE package_codes (
	id TEXT PRIMARY KEY,
	recipient_id TEXT NOT NULL REFERENCES package_recipients(id),
	hash BYTEA NOT NULL,
	expires BIGINT NOT NULL,
	tries INTEGER NOT NULL,
	used INTEGER NOT NULL,
	created BIGINT NOT NULL
);
CREATE INDEX package_codes_recipient ON package_codes (recipient_id, created);
CREATE TABLE package_replies (
	id TEXT PRIMARY KEY,
	package_id TEXT NOT NULL REFERENCES packages(id),
	recipient_id TEXT NOT NULL REFERENCES package_recipients(id),
	email TEXT NOT NULL,
	file_id TEXT NOT NULL,
	name TEXT NOT NULL,
	size BIGINT NOT NULL,
	created BIGINT NOT NULL
);
CREATE INDEX package_replies_package ON package_replies (package_id, created);
CREATE TABLE guest_sessions (
	id TEXT PRIMARY KEY,
	hash BYTEA NOT NULL UNIQUE,
	recipient_id TEXT NOT NULL REFERENCES package_recipients(id),
	package_id TEXT NOT NULL REFERENCES packages(id),
	created BIGINT NOT NULL,
	expires BIGINT NOT NULL,
	revoked INTEGER NOT NULL DEFAULT 0
);
