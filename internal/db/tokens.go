package db

import (
	"context"
	"time"

	"ferry.dev/ferry/internal/ferry"
)

// CreateToken stores an API token (its hash only).
func (d *DB) CreateToken(ctx context.Context, t *ferry.Token) error {
	_, err := d.sql.ExecContext(ctx, `INSERT INTO tokens (id, user_id, hash, created, expires, revoked, last_used) VALUES ($1, $2, $3, $4, $5, 0, 0)`,
		t.ID, t.UserID, t.Hash, micro(t.Created), micro(t.Expires))
	return dbErr("CreateToken", err)
}

// TokenByID returns a token by id.
func (d *DB) TokenByID(ctx context.Context, id string) (*ferry.Token, error) {
	var t ferry.Token
	var created, expires, lastUsed int64
	var revoked int
	err := d.sql.QueryRowContext(ctx, `SELECT id, user_id, hash, created, expires, revoked, last_used FROM tokens WHERE id = $1`, id).
		Scan(&t.ID, &t.UserID, &t.Hash, &created, &expires, &revoked, &lastUsed)
	if err != nil {
		return nil, dbErr("TokenByID", err)
	}
	t.Created, t.Expires, t.Revoked, t.LastUsed = fromMicro(created), fromMicro(expires), revoked != 0, fromMicro(lastUsed)
	return &t, nil
}

// RevokeToken marks a token revoked.
func (d *DB) RevokeToken(ctx context.Context, id string) error {
	res, err := d.sql.ExecContext(ctx, `UPDATE tokens SET revoked = 1 WHERE id = $1`, id)
	return affectedOne("RevokeToken", res, err)
}

// TouchToken records the last use of a token.
func (d *DB) TouchToken(ctx context.Context, id string, when time.Time) error {
	_, err := d.sql.ExecContext(ctx, `UPDATE tokens SET last_used = $1 WHERE id = $2`, micro(when), id)
	return dbErr("TouchToken", err)
}
