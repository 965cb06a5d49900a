package db

import (
	"context"
	"database/sql"
	"encoding/base64"
	"strings"
	"time"
)

// Second factors: TOTP authenticators, recovery codes, passkeys and the
// server-side state of WebAuthn ceremonies. Nothing secret is stored in
// clear: a TOTP secret only wrapped by the organisation's KEK, recovery codes
// only as hashes, passkeys only as public keys.

// TOTP is a user's TOTP authenticator. Until Confirmed (a valid code was
// entered at enrolment) it is not a second factor.
type TOTP struct {
	UserID    string
	Wrapped   []byte // the secret, wrapped by the organisation's KEK
	KEKID     string
	Confirmed bool
	LastStep  int64 // the last time step accepted; codes of it or earlier are refused
	Created   time.Time
}

// PutPendingTOTP stores a new, unconfirmed TOTP authenticator for a user, in
// place of any other unconfirmed one. A user whose authenticator is already
// confirmed gets a ferry.Exist error.
func (d *DB) PutPendingTOTP(ctx context.Context, t *TOTP) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM totp_secrets WHERE user_id = $1 AND confirmed = 0`, t.UserID); err != nil {
			return dbErr("PutPendingTOTP", err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO totp_secrets (user_id, wrapped, kek_id, confirmed, last_step, created) VALUES ($1, $2, $3, 0, 0, $4)`,
			t.UserID, t.Wrapped, t.KEKID, micro(t.Created))
		return dbErr("PutPendingTOTP", err)
	})
}

// TOTPOf returns a user's TOTP authenticator, confirmed or not.
func (d *DB) TOTPOf(ctx context.Context, userID string) (*TOTP, error) {
	var t TOTP
	var confirmed int
	var created int64
	err := d.sql.QueryRowContext(ctx, `SELECT user_id, wrapped, kek_id, confirmed, last_step, created FROM totp_secrets WHERE user_id = $1`, userID).
		Scan(&t.UserID, &t.Wrapped, &t.KEKID, &confirmed, &t.LastStep, &created)
	if err != nil {
		return nil, dbErr("TOTPOf", err)
	}
	t.Confirmed, t.Created = confirmed != 0, fromMicro(created)
	return &t, nil
}

// ConfirmTOTP makes a user's pending TOTP authenticator active, with step as
// the last step used. If the user has no recovery codes (the authenticator
// is their first second factor), recoveryHashes become their recovery codes
// and recovery reports true; codes the user already has are kept. It fails
// with ferry.NotExist if nothing is pending.
func (d *DB) ConfirmTOTP(ctx context.Context, userID string, step int64, recoveryHashes [][]byte) (recovery bool, err error) {
	err = d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE totp_secrets SET confirmed = 1, last_step = $2 WHERE user_id = $1 AND confirmed = 0`, userID, step)
		if err := affectedOne("ConfirmTOTP", res, err); err != nil {
			return err
		}
		recovery, err = addRecoveryCodesIfNone(ctx, tx, userID, recoveryHashes)
		return err
	})
	return recovery && err == nil, err
}

// UseTOTPStep records that a code of time step step was accepted for the
// user, and reports false if that step (or a later one) was accepted before:
// the check and the update are one statement, so two requests racing with the
// same code cannot both succeed, on any number of nodes.
func (d *DB) UseTOTPStep(ctx context.Context, userID string, step int64) (bool, error) {
	res, err := d.sql.ExecContext(ctx, `UPDATE totp_secrets SET last_step = $2 WHERE user_id = $1 AND confirmed = 1 AND last_step < $2`, userID, step)
	if err != nil {
		return false, dbErr("UseTOTPStep", err)
	}
	n, err := res.RowsAffected()
	return n == 1, dbErr("UseTOTPStep", err)
}

// DeleteTOTP removes a user's TOTP authenticator, and reports whether there
// was one. Their recovery codes go with it only if no other second factor
// (a passkey) remains.
func (d *DB) DeleteTOTP(ctx context.Context, userID string) (bool, error) {
	var n int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM totp_secrets WHERE user_id = $1`, userID)
		if err != nil {
			return dbErr("DeleteTOTP", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return dbErr("DeleteTOTP", err)
		}
		_, err = dropOrphanRecoveryCodes(ctx, tx, userID)
		return err
	})
	return n > 0, err
}

// dropOrphanRecoveryCodes deletes a user's recovery codes if they have no
// second factor left (no confirmed TOTP authenticator, no passkey), and
// reports whether it deleted any. Recovery codes stand in for a second
// factor; without one they have nothing to recover.
func dropOrphanRecoveryCodes(ctx context.Context, tx *sql.Tx, userID string) (bool, error) {
	res, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE user_id = $1
		AND NOT EXISTS (SELECT 1 FROM totp_secrets WHERE user_id = $1 AND confirmed = 1)
		AND NOT EXISTS (SELECT 1 FROM passkeys WHERE user_id = $1)`, userID)
	if err != nil {
		return false, dbErr("dropOrphanRecoveryCodes", err)
	}
	n, err := res.RowsAffected()
	return n > 0, dbErr("dropOrphanRecoveryCodes", err)
}

// addRecoveryCodesIfNone stores hashes as the user's recovery codes if they
// have none (used or not), and reports whether it did.
func addRecoveryCodesIfNone(ctx context.Context, tx *sql.Tx, userID string, hashes [][]byte) (bool, error) {
	if len(hashes) == 0 {
		return false, nil
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1`, userID).Scan(&n); err != nil {
		return false, dbErr("addRecoveryCodesIfNone", err)
	}
	if n > 0 {
		return false, nil
	}
	return true, setRecoveryCodes(ctx, tx, userID, hashes)
}

// SetRecoveryCodes replaces a user's recovery codes (their hashes).
func (d *DB) SetRecoveryCodes(ctx context.Context, userID string, hashes [][]byte) error {
	return d.tx(ctx, func(tx *sql.Tx) error { return setRecoveryCodes(ctx, tx, userID, hashes) })
}

func setRecoveryCodes(ctx context.Context, tx *sql.Tx, userID string, hashes [][]byte) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE user_id = $1`, userID); err != nil {
		return dbErr("SetRecoveryCodes", err)
	}
	for _, h := range hashes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO recovery_codes (user_id, hash, used) VALUES ($1, $2, 0)`, userID, h); err != nil {
			return dbErr("SetRecoveryCodes", err)
		}
	}
	return nil
}

// UseRecoveryCode marks the user's unused recovery code with the given hash
// as used, and reports false if there is none (unknown or already used).
func (d *DB) UseRecoveryCode(ctx context.Context, userID string, hash []byte, now time.Time) (bool, error) {
	res, err := d.sql.ExecContext(ctx, `UPDATE recovery_codes SET used = $3 WHERE user_id = $1 AND hash = $2 AND used = 0`, userID, hash, micro(now))
	if err != nil {
		return false, dbErr("UseRecoveryCode", err)
	}
	n, err := res.RowsAffected()
	return n == 1, dbErr("UseRecoveryCode", err)
}

// RecoveryCodesLeft counts a user's unused recovery codes.
func (d *DB) RecoveryCodesLeft(ctx context.Context, userID string) (int, error) {
	var n int
	err := d.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used = 0`, userID).Scan(&n)
	return n, dbErr("RecoveryCodesLeft", err)
}

// SecondFactors reports whether a user has a confirmed TOTP authenticator,
// and how many passkeys.
func (d *DB) SecondFactors(ctx context.Context, userID string) (totp bool, passkeys int, err error) {
	var t int
	err = d.sql.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM totp_secrets WHERE user_id = $1 AND confirmed = 1), (SELECT COUNT(*) FROM passkeys WHERE user_id = $1)`, userID).
		Scan(&t, &passkeys)
	return t > 0, passkeys, dbErr("SecondFactors", err)
}

// Passkey is a WebAuthn credential registered by a user: the credential
// record of the WebAuthn specification, with a name and times.
type Passkey struct {
	ID                string // public id, names it in pages and audit records
	UserID            string
	CredentialID      []byte
	PublicKey         []byte // COSE
	AttestationType   string
	AttestationFormat string
	Transports        []string
	Flags             byte // user present/verified, backup eligible/state
	AAGUID            []byte
	SignCount         uint32
	Name              string
	Created           time.Time
	LastUsed          time.Time
}

const passkeyCols = `id, user_id, credential_id, public_key, attestation_type, attestation_format, transports, flags, aaguid, sign_count, name, created, last_used`

func scanPasskey(row interface{ Scan(...any) error }) (*Passkey, error) {
	var p Passkey
	var transports string
	var flags, count, created, used int64
	if err := row.Scan(&p.ID, &p.UserID, &p.CredentialID, &p.PublicKey, &p.AttestationType, &p.AttestationFormat, &transports, &flags, &p.AAGUID,
		&count, &p.Name, &created, &used); err != nil {
		return nil, err
	}
	if transports != "" {
		p.Transports = strings.Split(transports, ",")
	}
	var err error
	if p.Flags, err = storedUint8("db.scanPasskey", "passkey flags", flags); err != nil {
		return nil, err
	}
	if p.SignCount, err = storedUint32("db.scanPasskey", "passkey signature count", count); err != nil {
		return nil, err
	}
	p.Created, p.LastUsed = fromMicro(created), fromMicro(used)
	return &p, nil
}

// AddPasskey stores a new passkey. Credential ids are unique. If the user
// has no recovery codes (the passkey is their first second factor),
// recoveryHashes become their recovery codes and recovery reports true;
// codes the user already has are kept. Pass no hashes to add none.
func (d *DB) AddPasskey(ctx context.Context, p *Passkey, recoveryHashes [][]byte) (recovery bool, err error) {
	err = d.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO passkeys (`+passkeyCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			p.ID, p.UserID, p.CredentialID, p.PublicKey, p.AttestationType, p.AttestationFormat, strings.Join(p.Transports, ","), int64(p.Flags),
			nonNil(p.AAGUID), int64(p.SignCount), p.Name, micro(p.Created), micro(p.LastUsed))
		if err != nil {
			return dbErr("AddPasskey", err)
		}
		recovery, err = addRecoveryCodesIfNone(ctx, tx, p.UserID, recoveryHashes)
		return err
	})
	return recovery && err == nil, err
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// PasskeysOf lists a user's passkeys, oldest first.
func (d *DB) PasskeysOf(ctx context.Context, userID string) ([]*Passkey, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+passkeyCols+` FROM passkeys WHERE user_id = $1 ORDER BY created, id LIMIT 100`, userID)
	if err != nil {
		return nil, dbErr("PasskeysOf", err)
	}
	defer rows.Close()
	var out []*Passkey
	for rows.Next() {
		p, err := scanPasskey(rows)
		if err != nil {
			return nil, dbErr("PasskeysOf", err)
		}
		out = append(out, p)
	}
	return out, dbErr("PasskeysOf", rows.Err())
}

// PasskeyByCredentialID returns the passkey with a WebAuthn credential id.
func (d *DB) PasskeyByCredentialID(ctx context.Context, credID []byte) (*Passkey, error) {
	p, err := scanPasskey(d.sql.QueryRowContext(ctx, `SELECT `+passkeyCols+` FROM passkeys WHERE credential_id = $1`, credID))
	if err != nil {
		return nil, dbErr("PasskeyByCredentialID", err)
	}
	return p, nil
}

// UsePasskey records a successful assertion: the new signature counter and
// flags, and the time. The counter only moves forward: an update that would
// not raise it (other than an authenticator that keeps it at zero) changes
// nothing and reports false.
func (d *DB) UsePasskey(ctx context.Context, id string, signCount uint32, flags byte, when time.Time) (bool, error) {
	res, err := d.sql.ExecContext(ctx, `UPDATE passkeys SET sign_count = $2, flags = $3, last_used = $4 WHERE id = $1 AND (sign_count < $2 OR (sign_count = 0 AND $2 = 0))`,
		id, int64(signCount), int64(flags), micro(when))
	if err != nil {
		return false, dbErr("UsePasskey", err)
	}
	n, err := res.RowsAffected()
	return n == 1, dbErr("UsePasskey", err)
}

// DeletePasskey removes one of a user's passkeys by its public id. If it
// was their last second factor (no other passkey, no confirmed TOTP
// authenticator), their recovery codes go with it and recovery reports true.
func (d *DB) DeletePasskey(ctx context.Context, userID, id string) (recovery bool, err error) {
	err = d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM passkeys WHERE id = $1 AND user_id = $2`, id, userID)
		if err := affectedOne("DeletePasskey", res, err); err != nil {
			return err
		}
		recovery, err = dropOrphanRecoveryCodes(ctx, tx, userID)
		return err
	})
	return recovery && err == nil, err
}

// Ceremony is the server-side state of a WebAuthn registration or
// assertion in progress, found by the hash of a random id that only the
// browser's cookie holds. Every field is set by the server.
type Ceremony struct {
	IDHash           []byte
	Kind             string // "register", "login" (passwordless) or "mfa"
	UserID           string // "" for a passwordless login: the passkey names the user
	SessionID        string // the session that began it ("" for a passwordless login)
	Challenge        string // base64url, as go-webauthn keeps it
	RPID             string
	UserVerification string
	AllowedIDs       [][]byte // credential ids the assertion may use; none = any
	Expires          time.Time
}

// PutCeremony stores a new ceremony.
func (d *DB) PutCeremony(ctx context.Context, c *Ceremony) error {
	ids := make([]string, len(c.AllowedIDs))
	for i, id := range c.AllowedIDs {
		ids[i] = base64.RawURLEncoding.EncodeToString(id)
	}
	_, err := d.sql.ExecContext(ctx, `INSERT INTO webauthn_ceremonies (id_hash, kind, user_id, session_id, challenge, rp_id, user_verification, allowed_ids, expires)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		c.IDHash, c.Kind, c.UserID, c.SessionID, c.Challenge, c.RPID, c.UserVerification, strings.Join(ids, ","), micro(c.Expires))
	return dbErr("PutCeremony", err)
}

// TakeCeremony removes and returns the ceremony with the given id hash, so
// each is used at most once. An expired ceremony is removed and reported as
// ferry.NotExist, like an unknown one.
func (d *DB) TakeCeremony(ctx context.Context, idHash []byte, now time.Time) (*Ceremony, error) {
	var c Ceremony
	var ids string
	var expires int64
	err := d.sql.QueryRowContext(ctx, `DELETE FROM webauthn_ceremonies WHERE id_hash = $1
		RETURNING id_hash, kind, user_id, session_id, challenge, rp_id, user_verification, allowed_ids, expires`, idHash).
		Scan(&c.IDHash, &c.Kind, &c.UserID, &c.SessionID, &c.Challenge, &c.RPID, &c.UserVerification, &ids, &expires)
	if err != nil {
		return nil, dbErr("TakeCeremony", err)
	}
	c.Expires = fromMicro(expires)
	if !now.Before(c.Expires) {
		return nil, dbErr("TakeCeremony", sql.ErrNoRows)
	}
	for _, s := range strings.Split(ids, ",") {
		if s == "" {
			continue
		}
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			return nil, dbErr("TakeCeremony", err)
		}
		c.AllowedIDs = append(c.AllowedIDs, b)
	}
	return &c, nil
}

// DeleteExpiredCeremonies removes ceremonies that ended before now, and
// returns how many.
func (d *DB) DeleteExpiredCeremonies(ctx context.Context, now time.Time) (int64, error) {
	res, err := d.sql.ExecContext(ctx, `DELETE FROM webauthn_ceremonies WHERE expires <= $1`, micro(now))
	if err != nil {
		return 0, dbErr("DeleteExpiredCeremonies", err)
	}
	n, err := res.RowsAffected()
	return n, dbErr("DeleteExpiredCeremonies", err)
}
