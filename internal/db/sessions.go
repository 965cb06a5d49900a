package db

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"ferry.dev/ferry/internal/ferry"
)

const sessionCols = `id, hash, user_id, stage, methods, created, last_seen, expires, idle_secs, remote, user_agent, revoked, plane`

func scanSession(row interface{ Scan(...any) error }) (*ferry.Session, error) {
	var s ferry.Session
	var created, lastSeen, expires, idle int64
	var revoked int
	if err := row.Scan(&s.ID, &s.Hash, &s.UserID, &s.Stage, &s.Methods, &created, &lastSeen, &expires, &idle, &s.Remote, &s.UserAgent, &revoked, &s.Plane); err != nil {
		return nil, err
	}
	s.Created, s.LastSeen, s.Expires = fromMicro(created), fromMicro(lastSeen), fromMicro(expires)
	s.Idle, s.Revoked = time.Duration(idle)*time.Second, revoked != 0
	return &s, nil
}

// CreateSession stores a new session (its secret's hash only).
func (d *DB) CreateSession(ctx context.Context, s *ferry.Session) error {
	plane := s.Plane
	if plane == "" {
		plane = ferry.PlanePublic
	}
	_, err := d.sql.ExecContext(ctx, `INSERT INTO sessions (`+sessionCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		s.ID, s.Hash, s.UserID, s.Stage, s.Methods, micro(s.Created), micro(s.LastSeen), micro(s.Expires), int64(s.Idle/time.Second),
		s.Remote, s.UserAgent, boolInt(s.Revoked), plane)
	return dbErr("CreateSession", err)
}

// SessionByHash returns the session whose secret hashes to hash.
func (d *DB) SessionByHash(ctx context.Context, hash []byte) (*ferry.Session, error) {
	s, err := scanSession(d.sql.QueryRowContext(ctx, `SELECT `+sessionCols+` FROM sessions WHERE hash = $1`, hash))
	if err != nil {
		return nil, dbErr("SessionByHash", err)
	}
	return s, nil
}

// SessionByID returns a session by its public id.
func (d *DB) SessionByID(ctx context.Context, id string) (*ferry.Session, error) {
	s, err := scanSession(d.sql.QueryRowContext(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = $1`, id))
	if err != nil {
		return nil, dbErr("SessionByID", err)
	}
	return s, nil
}

// SessionsOfUser lists a user's sessions that are neither revoked nor past
// their absolute end, newest first.
func (d *DB) SessionsOfUser(ctx context.Context, userID string, now time.Time) ([]*ferry.Session, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+sessionCols+` FROM sessions WHERE user_id = $1 AND revoked = 0 AND expires > $2 ORDER BY created DESC LIMIT 1000`, userID, micro(now))
	if err != nil {
		return nil, dbErr("SessionsOfUser", err)
	}
	defer rows.Close()
	var out []*ferry.Session
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, dbErr("SessionsOfUser", err)
		}
		out = append(out, s)
	}
	return out, dbErr("SessionsOfUser", rows.Err())
}

// TouchSession records a session's last use.
func (d *DB) TouchSession(ctx context.Context, id string, when time.Time) error {
	_, err := d.sql.ExecContext(ctx, `UPDATE sessions SET last_seen = $1 WHERE id = $2`, micro(when), id)
	return dbErr("TouchSession", err)
}

// RevokeSession ends a session.
func (d *DB) RevokeSession(ctx context.Context, id string) error {
	res, err := d.sql.ExecContext(ctx, `UPDATE sessions SET revoked = 1 WHERE id = $1`, id)
	return affectedOne("RevokeSession", res, err)
}

// RevokeUserSessions ends every session of a user and returns how many.
func (d *DB) RevokeUserSessions(ctx context.Context, userID string) (int64, error) {
	res, err := d.sql.ExecContext(ctx, `UPDATE sessions SET revoked = 1 WHERE user_id = $1 AND revoked = 0`, userID)
	if err != nil {
		return 0, dbErr("RevokeUserSessions", err)
	}
	n, err := res.RowsAffected()
	return n, dbErr("RevokeUserSessions", err)
}

// DeleteDeadSessions deletes sessions revoked or past their end before
// cutoff, and returns how many.
func (d *DB) DeleteDeadSessions(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := d.sql.ExecContext(ctx, `DELETE FROM sessions WHERE expires < $1 OR (revoked = 1 AND last_seen < $1)`, micro(cutoff))
	if err != nil {
		return 0, dbErr("DeleteDeadSessions", err)
	}
	n, err := res.RowsAffected()
	return n, dbErr("DeleteDeadSessions", err)
}

// Policy returns an organisation's policy, or the default policy if it has
// not set one.
func (d *DB) Policy(ctx context.Context, orgID string) (*ferry.Policy, error) {
	var p ferry.Policy
	var mfa, sso, keysOnly int
	var idle, max, updated int64
	var cidrs string
	err := d.sql.QueryRowContext(ctx, `SELECT org_id, min_password_len, mfa_required, passkeys, sso_required, session_idle_secs, session_max_secs, allowed_cidrs, sftp_keys_only, updated
		FROM org_policies WHERE org_id = $1`, orgID).Scan(&p.OrgID, &p.MinPasswordLen, &mfa, &p.Passkeys, &sso, &idle, &max, &cidrs, &keysOnly, &updated)
	if ferry.KindOf(dbErr("Policy", err)) == ferry.NotExist {
		return ferry.DefaultPolicy(orgID), nil
	} else if err != nil {
		return nil, dbErr("Policy", err)
	}
	p.MFARequired, p.SSORequired, p.SFTPKeysOnly = mfa != 0, sso != 0, keysOnly != 0
	p.SessionIdle, p.SessionMax, p.Updated = time.Duration(idle)*time.Second, time.Duration(max)*time.Second, fromMicro(updated)
	for _, c := range strings.Split(cidrs, ",") {
		if c == "" {
			continue
		}
		pfx, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, ferry.E("db.Policy", ferry.Internal, "stored address range is malformed", err)
		}
		p.AllowedCIDRs = append(p.AllowedCIDRs, pfx)
	}
	return &p, nil
}

// SetPolicy stores an organisation's policy.
func (d *DB) SetPolicy(ctx context.Context, p *ferry.Policy) error {
	cidrs := make([]string, len(p.AllowedCIDRs))
	for i, c := range p.AllowedCIDRs {
		cidrs[i] = c.String()
	}
	args := []any{p.OrgID, p.MinPasswordLen, boolInt(p.MFARequired), p.Passkeys, boolInt(p.SSORequired), int64(p.SessionIdle / time.Second),
		int64(p.SessionMax / time.Second), strings.Join(cidrs, ","), boolInt(p.SFTPKeysOnly), micro(p.Updated)}
	res, err := d.sql.ExecContext(ctx, `UPDATE org_policies SET min_password_len = $2, mfa_required = $3, passkeys = $4, sso_required = $5,
		session_idle_secs = $6, session_max_secs = $7, allowed_cidrs = $8, sftp_keys_only = $9, updated = $10 WHERE org_id = $1`, args...)
	if err != nil {
		return dbErr("SetPolicy", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return dbErr("SetPolicy", err)
	}
	_, err = d.sql.ExecContext(ctx, `INSERT INTO org_policies (org_id, min_password_len, mfa_required, passkeys, sso_required, session_idle_secs,
		session_max_secs, allowed_cidrs, sftp_keys_only, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, args...)
	return dbErr("SetPolicy", err)
}

// SetPasswordHash replaces a user's password hash (a new password, or the
// same one rehashed with stronger parameters).
func (d *DB) SetPasswordHash(ctx context.Context, userID, hash string) error {
	res, err := d.sql.ExecContext(ctx, `UPDATE users SET password_hash = $1 WHERE id = $2`, hash, userID)
	return affectedOne("SetPasswordHash", res, err)
}
