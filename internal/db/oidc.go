package db

import (
	"context"
	"database/sql"
	"time"

	"ferry.dev/ferry/internal/ferry"
)

// OIDCConfig is an organisation's single-sign-on (OpenID Connect)
// configuration as stored. The client secret is never stored in clear:
// SecretSealed is it encrypted under a random key, and SecretKey is that key
// wrapped by the organisation's KEK SecretKEK (internal/auth does both).
type OIDCConfig struct {
	OrgID        string
	Issuer       string
	ClientID     string
	SecretKEK    string
	SecretKey    []byte
	SecretSealed []byte
	// Domains are the email domains (lower case) whose users sign in
	// through this configuration; each belongs to at most one organisation.
	Domains []string
	// Provision is what happens to a verified user unknown to Ferry: "off"
	// (refused), or the role of a user created for them ("user",
	// "external" with ProvisionPartyID as their party).
	Provision        string
	ProvisionPartyID string
	Enabled          bool
	Updated          time.Time
}

// OIDCLogin is a single-sign-on login in progress: what the callback needs
// to check the answer of the identity provider. It is keyed by the SHA-256
// of the state parameter, so the state itself is never stored.
type OIDCLogin struct {
	StateHash   []byte
	OrgID       string
	BrowserHash []byte // SHA-256 of the browser-binding cookie's value
	NonceHash   []byte // SHA-256 of the nonce sent to the provider
	Verifier    string // PKCE code verifier
	Next        string // local path to go to after signing in
	Created     time.Time
	Expires     time.Time
}

const oidcCols = `org_id, issuer, client_id, secret_kek, secret_key, secret_sealed, provision, provision_party_id, enabled, updated`

// SetOIDCConfig creates or replaces an organisation's single-sign-on
// configuration and its email domains, in one transaction. A domain already
// claimed by another organisation is ferry.Exist.
func (d *DB) SetOIDCConfig(ctx context.Context, c *OIDCConfig) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO oidc_configs (`+oidcCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (org_id) DO UPDATE SET issuer = excluded.issuer, client_id = excluded.client_id, secret_kek = excluded.secret_kek,
			secret_key = excluded.secret_key, secret_sealed = excluded.secret_sealed, provision = excluded.provision,
			provision_party_id = excluded.provision_party_id, enabled = excluded.enabled, updated = excluded.updated`,
			c.OrgID, c.Issuer, c.ClientID, c.SecretKEK, c.SecretKey, c.SecretSealed, c.Provision, nullStr(c.ProvisionPartyID), boolInt(c.Enabled), micro(c.Updated))
		if err != nil {
			return dbErr("SetOIDCConfig", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM oidc_domains WHERE org_id = $1`, c.OrgID); err != nil {
			return dbErr("SetOIDCConfig", err)
		}
		for _, dom := range c.Domains {
			if _, err := tx.ExecContext(ctx, `INSERT INTO oidc_domains (domain, org_id) VALUES ($1, $2)`, dom, c.OrgID); err != nil {
				if err := dbErr("SetOIDCConfig", err); ferry.KindOf(err) == ferry.Exist {
					return ferry.Errorf("db.SetOIDCConfig", ferry.Exist, "the email domain %s already belongs to another organisation (or is repeated)", dom)
				}
				return dbErr("SetOIDCConfig", err)
			}
		}
		return nil
	})
}

// OIDCConfig returns an organisation's single-sign-on configuration, or
// ferry.NotExist if it has none.
func (d *DB) OIDCConfig(ctx context.Context, orgID string) (*OIDCConfig, error) {
	var c OIDCConfig
	var party sql.NullString
	var enabled int
	var updated int64
	err := d.sql.QueryRowContext(ctx, `SELECT `+oidcCols+` FROM oidc_configs WHERE org_id = $1`, orgID).Scan(
		&c.OrgID, &c.Issuer, &c.ClientID, &c.SecretKEK, &c.SecretKey, &c.SecretSealed, &c.Provision, &party, &enabled, &updated)
	if err != nil {
		return nil, dbErr("OIDCConfig", err)
	}
	c.ProvisionPartyID, c.Enabled, c.Updated = party.String, enabled != 0, fromMicro(updated)
	rows, err := d.sql.QueryContext(ctx, `SELECT domain FROM oidc_domains WHERE org_id = $1 ORDER BY domain`, orgID)
	if err != nil {
		return nil, dbErr("OIDCConfig", err)
	}
	defer rows.Close()
	for rows.Next() {
		var dom string
		if err := rows.Scan(&dom); err != nil {
			return nil, dbErr("OIDCConfig", err)
		}
		c.Domains = append(c.Domains, dom)
	}
	return &c, dbErr("OIDCConfig", rows.Err())
}

// OIDCOrgByDomain returns the id of the organisation that claimed an email
// domain (lower case) for single sign-on, or ferry.NotExist.
func (d *DB) OIDCOrgByDomain(ctx context.Context, domain string) (string, error) {
	var orgID string
	err := d.sql.QueryRowContext(ctx, `SELECT org_id FROM oidc_domains WHERE domain = $1`, domain).Scan(&orgID)
	return orgID, dbErr("OIDCOrgByDomain", err)
}

// CreateOIDCLogin stores a login in progress.
func (d *DB) CreateOIDCLogin(ctx context.Context, l *OIDCLogin) error {
	_, err := d.sql.ExecContext(ctx, `INSERT INTO oidc_logins (state_hash, org_id, browser_hash, nonce_hash, verifier, next_path, created, expires)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		l.StateHash, l.OrgID, l.BrowserHash, l.NonceHash, l.Verifier, l.Next, micro(l.Created), micro(l.Expires))
	return dbErr("CreateOIDCLogin", err)
}

// TakeOIDCLogin deletes and returns the login in progress whose state hashes
// to stateHash: each is usable once, whatever the outcome. An unknown (or
// already used) state is ferry.NotExist; expiry is the caller's to check.
func (d *DB) TakeOIDCLogin(ctx context.Context, stateHash []byte) (*OIDCLogin, error) {
	var l OIDCLogin
	var created, expires int64
	err := d.sql.QueryRowContext(ctx, `DELETE FROM oidc_logins WHERE state_hash = $1
		RETURNING state_hash, org_id, browser_hash, nonce_hash, verifier, next_path, created, expires`, stateHash).Scan(
		&l.StateHash, &l.OrgID, &l.BrowserHash, &l.NonceHash, &l.Verifier, &l.Next, &created, &expires)
	if err != nil {
		return nil, dbErr("TakeOIDCLogin", err)
	}
	l.Created, l.Expires = fromMicro(created), fromMicro(expires)
	return &l, nil
}

// DeleteExpiredOIDCLogins deletes logins in progress that expired before
// now and returns how many.
func (d *DB) DeleteExpiredOIDCLogins(ctx context.Context, now time.Time) (int64, error) {
	res, err := d.sql.ExecContext(ctx, `DELETE FROM oidc_logins WHERE expires < $1`, micro(now))
	if err != nil {
		return 0, dbErr("DeleteExpiredOIDCLogins", err)
	}
	n, err := res.RowsAffected()
	return n, dbErr("DeleteExpiredOIDCLogins", err)
}
