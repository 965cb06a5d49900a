package db

import (
	"context"
	"database/sql"
	"time"
)

// Invite is a pending email invitation (migration 0008): the SHA-256 of a
// single-use link's token, for one user, until Expires.
type Invite struct {
	UserID    string
	Hash      []byte
	InvitedBy string // the inviting user's id ("" for the operator)
	Created   time.Time
	Expires   time.Time
}

// PutInvite stores an invitation in place of any earlier one of the same
// user, so that inviting again makes the old link useless. Invitations of
// anyone that expired before inv.Created are deleted on the way.
func (d *DB) PutInvite(ctx context.Context, inv *Invite) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM user_invites WHERE user_id = $1 OR expires < $2`, inv.UserID, micro(inv.Created)); err != nil {
			return dbErr("PutInvite", err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO user_invites (user_id, hash, invited_by, created, expires) VALUES ($1, $2, $3, $4, $5)`,
			inv.UserID, inv.Hash, inv.InvitedBy, micro(inv.Created), micro(inv.Expires))
		return dbErr("PutInvite", err)
	})
}

// InviteByHash returns the invitation whose token hashes to hash, if it has
// not expired by now (ferry.NotExist otherwise).
func (d *DB) InviteByHash(ctx context.Context, hash []byte, now time.Time) (*Invite, error) {
	var inv Invite
	var created, expires int64
	err := d.sql.QueryRowContext(ctx, `SELECT user_id, hash, invited_by, created, expires FROM user_invites WHERE hash = $1 AND expires > $2`, hash, micro(now)).
		Scan(&inv.UserID, &inv.Hash, &inv.InvitedBy, &created, &expires)
	if err != nil {
		return nil, dbErr("InviteByHash", err)
	}
	inv.Created, inv.Expires = fromMicro(created), fromMicro(expires)
	return &inv, nil
}

// ConsumeInvite deletes the unexpired invitation whose token hashes to hash
// and sets its user's password hash, in one transaction. The delete is the
// check: of two requests racing with one link, only one succeeds; the other
// (and any later use) gets ferry.NotExist.
func (d *DB) ConsumeInvite(ctx context.Context, hash []byte, now time.Time, userID, passwordHash string) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM user_invites WHERE hash = $1 AND user_id = $2 AND expires > $3`, hash, userID, micro(now))
		if err := affectedOne("ConsumeInvite", res, err); err != nil {
			return err
		}
		res, err = tx.ExecContext(ctx, `UPDATE users SET password_hash = $1 WHERE id = $2`, passwordHash, userID)
		return affectedOne("ConsumeInvite", res, err)
	})
}
