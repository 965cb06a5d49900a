-- Share links and folder watches (issue 7). A share link's token is only ever
-- stored as its SHA-256, its password as an argon2id hash. downloads is
-- counted by one conditional UPDATE, so max_downloads holds under
-- concurrency. folder_id is the shared folder (or the shared file's folder,
-- name the file's name): a link follows its folder when it is renamed or
-- moved and dies with it. notified is when the sharer was last mailed about a use (at
-- most one mail per link per hour).
CREATE TABLE shares (
	id TEXT PRIMARY KEY,
	org_id TEXT NOT NULL REFERENCES orgs(id),
	user_id TEXT NOT NULL REFERENCES users(id),
	path TEXT NOT NULL,
	folder_id TEXT NOT NULL,
	name TEXT NOT NULL,
	folder INTEGER NOT NULL,
	dropbox INTEGER NOT NULL,
	token_hash BYTEA NOT NULL UNIQUE,
	password_hash TEXT NOT NULL,
	max_downloads INTEGER NOT NULL,
	downloads INTEGER NOT NULL,
	allowed_ips TEXT NOT NULL,
	created BIGINT NOT NULL,
	expires BIGINT NOT NULL,
	revoked INTEGER NOT NULL,
	notified BIGINT NOT NULL
);
CREATE INDEX shares_user ON shares (user_id);
CREATE INDEX shares_org ON shares (org_id, created);
-- Every use of a link: a listing, a download, an upload, a password given.
CREATE TABLE share_uses (
	id TEXT PRIMARY KEY,
	share_id TEXT NOT NULL REFERENCES shares(id),
	created BIGINT NOT NULL,
	action TEXT NOT NULL,
	path TEXT NOT NULL,
	remote TEXT NOT NULL
);
CREATE INDEX share_uses_share ON share_uses (share_id, created);
-- A visitor who gave a link's password holds a random secret in a cookie;
-- only its SHA-256 is stored, for one link, until expires.
CREATE TABLE share_visits (
	hash BYTEA PRIMARY KEY,
	share_id TEXT NOT NULL REFERENCES shares(id),
	created BIGINT NOT NULL,
	expires BIGINT NOT NULL
);
CREATE INDEX share_visits_expires ON share_visits (expires);
-- Folder watches: last_mail is when the watcher was last mailed about the
-- folder; files arriving within the batching window wait in watch_events.
CREATE TABLE folder_watches (
	id TEXT PRIMARY KEY,
	org_id TEXT NOT NULL REFERENCES orgs(id),
	user_id TEXT NOT NULL REFERENCES users(id),
	folder_id TEXT NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
	created BIGINT NOT NULL,
	last_mail BIGINT NOT NULL,
	UNIQUE (user_id, folder_id)
);
CREATE INDEX folder_watches_folder ON folder_watches (folder_id);
CREATE TABLE watch_events (
	id TEXT PRIMARY KEY,
	watch_id TEXT NOT NULL REFERENCES folder_watches(id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	created BIGINT NOT NULL
);
CREATE INDEX watch_events_watch ON watch_events (watch_id, created);
