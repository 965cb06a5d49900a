package db

import (
	"context"
	"time"

	"ferry.dev/ferry/internal/ferry"
)

// CreateToken stores an API token (its hash only). A zero scope is stored as
// every scope.
func (d *DB) CreateToken(ctx context.Context, t *ferry.Token) error {
	if t.Scope == 0 {
		t.Scope = ferry.ScopeAll
	}
	_, err := d.sql.ExecContext(ctx, `INSERT INTO tokens (id, user_id, hash, created, expires, revoked, last_used, scope, name) VALUES ($1, $2, $3, $4, $5, 0, 0, $6, $7)`,
		t.ID, t.UserID, t.Hash, micro(t.Created), micro(t.Expires), t.Scope.String(), t.Name)
	return dbErr("CreateToken", err)
}

// TokenByID returns a token by id.
func (d *DB) TokenByID(ctx context.Context, id string) (*ferry.Token, error) {
	t, err := scanToken(d.sql.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM tokens WHERE id = $1`, id))
	if err != nil {
		return nil, dbErr("TokenByID", err)
	}
	return t, nil
}

const tokenCols = `id, user_id, hash, created, expires, revoked, last_used, scope, name`

func scanToken(row interface{ Scan(...any) error }) (*ferry.Token, error) {
	var t ferry.Token
	var created, expires, lastUsed int64
	var revoked int
	var scope string
	if err := row.Scan(&t.ID, &t.UserID, &t.Hash, &created, &expires, &revoked, &lastUsed, &scope, &t.Name); err != nil {
		return nil, err
	}
	sc, err := ferry.ParseScope(scope)
	if err != nil {
		return nil, err
	}
	t.Created, t.Expires, t.Revoked, t.LastUsed, t.Scope = fromMicro(created), fromMicro(expires), revoked != 0, fromMicro(lastUsed), sc
	return &t, nil
}

// TokensOfUser lists a user's tokens that are not revoked, newest first.
func (d *DB) TokensOfUser(ctx context.Context, userID string) ([]*ferry.Token, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+tokenCols+` FROM tokens WHERE user_id = $1 AND revoked = 0 ORDER BY created DESC LIMIT 1000`, userID)
	if err != nil {
		return nil, dbErr("TokensOfUser", err)
	}
	defer rows.Close()
	var out []*ferry.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, dbErr("TokensOfUser", err)
		}
		out = append(out, t)
	}
	return out, dbErr("TokensOfUser", rows.Err())
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
