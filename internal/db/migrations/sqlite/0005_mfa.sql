-- Second factors (the authentication issue): TOTP authenticators, recovery
-- codes, passkeys, and the server-side state of WebAuthn ceremonies.
--
-- A TOTP secret is stored only wrapped by the organisation's KEK (its kek_id
-- names the key); last_step is the last time step accepted, so a code is
-- never accepted twice. Recovery codes are stored as SHA-256 hashes only.
CREATE TABLE totp_secrets (
	user_id TEXT PRIMARY KEY REFERENCES users(id),
	wrapped BLOB NOT NULL,
	kek_id TEXT NOT NULL,
	confirmed INTEGER NOT NULL,
	last_step BIGINT NOT NULL,
	created BIGINT NOT NULL
);
CREATE TABLE recovery_codes (
	user_id TEXT NOT NULL REFERENCES users(id),
	hash BLOB NOT NULL,
	used BIGINT NOT NULL,
	PRIMARY KEY (user_id, hash)
);
CREATE TABLE passkeys (
	id TEXT PRIMARY KEY,
	user_id TEXT NOT NULL REFERENCES users(id),
	credential_id BLOB NOT NULL UNIQUE,
	public_key BLOB NOT NULL,
	attestation_type TEXT NOT NULL,
	attestation_format TEXT NOT NULL,
	transports TEXT NOT NULL,
	flags INTEGER NOT NULL,
	aaguid BLOB NOT NULL,
	sign_count BIGINT NOT NULL,
	name TEXT NOT NULL,
	created BIGINT NOT NULL,
	last_used BIGINT NOT NULL
);
CREATE INDEX passkeys_user ON passkeys (user_id);
-- A WebAuthn ceremony in progress: typed columns written by the server only,
-- found by the SHA-256 of the random id in a short-lived cookie.
CREATE TABLE webauthn_ceremonies (
	id_hash BLOB PRIMARY KEY,
	kind TEXT NOT NULL,
	user_id TEXT NOT NULL,
	session_id TEXT NOT NULL,
	challenge TEXT NOT NULL,
	rp_id TEXT NOT NULL,
	user_verification TEXT NOT NULL,
	allowed_ids TEXT NOT NULL,
	expires BIGINT NOT NULL
);
