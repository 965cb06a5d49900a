-- Single sign-on through OpenID Connect (the authentication issue). One
-- configuration per organisation; the client secret is stored only encrypted
-- under a random key that the organisation's KEK wraps (the KEK is never in
-- this database). Email domains map a user's address to their organisation,
-- each domain to at most one. Logins in progress are kept server-side, keyed
-- by the SHA-256 of their state, and used at most once.
CREATE TABLE oidc_configs (
	org_id TEXT PRIMARY KEY REFERENCES orgs(id),
	issuer TEXT NOT NULL,
	client_id TEXT NOT NULL,
	secret_kek TEXT NOT NULL,
	secret_key BYTEA NOT NULL,
	secret_sealed BYTEA NOT NULL,
	provision TEXT NOT NULL,
	provision_party_id TEXT REFERENCES parties(id),
	enabled INTEGER NOT NULL,
	updated BIGINT NOT NULL
);
CREATE TABLE oidc_domains (
	domain TEXT PRIMARY KEY,
	org_id TEXT NOT NULL REFERENCES orgs(id)
);
CREATE INDEX oidc_domains_org ON oidc_domains (org_id);
CREATE TABLE oidc_logins (
	state_hash BYTEA PRIMARY KEY,
	org_id TEXT NOT NULL REFERENCES orgs(id),
	browser_hash BYTEA NOT NULL,
	nonce_hash BYTEA NOT NULL,
	verifier TEXT NOT NULL,
	next_path TEXT NOT NULL,
	created BIGINT NOT NULL,
	expires BIGINT NOT NULL
);
CREATE INDEX oidc_logins_expires ON oidc_logins (expires);
