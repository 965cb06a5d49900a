package db

import (
	"context"
	"database/sql"
	"time"

	"ferry.dev/ferry/internal/ferry"
)

// AddSetupCode stores the hash of a first-administrator setup code.
func (d *DB) AddSetupCode(ctx context.Context, hash []byte, expires time.Time) error {
	_, err := d.sql.ExecContext(ctx, `INSERT INTO setup_codes (hash, expires, used) VALUES ($1, $2, 0)`, hash, micro(expires))
	return dbErr("AddSetupCode", err)
}

// UseSetupCode marks the code with the given hash used, in the same
// transaction as fn (which creates the first administrator). It fails with
// NotExist when the code is unknown, used or expired, and with Exist when a
// server administrator already exists.
func (d *DB) UseSetupCode(ctx context.Context, hash []byte, now time.Time, fn func(tx *Tx) error) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE setup_codes SET used = 1 WHERE hash = $1 AND used = 0 AND expires > $2`, hash, micro(now))
		if err != nil {
			return dbErr("UseSetupCode", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ferry.E("db.UseSetupCode", ferry.NotExist, "setup code unknown, used or expired")
		}
		var admins int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE server_admin = 1`).Scan(&admins); err != nil {
			return dbErr("UseSetupCode", err)
		}
		if admins > 0 {
			return ferry.E("db.UseSetupCode", ferry.Exist, "an administrator already exists")
		}
		return fn(&Tx{tx: tx, ctx: ctx})
	})
}

// Tx is a transaction handed to callers that must do several things
// atomically.
type Tx struct {
	tx  *sql.Tx
	ctx context.Context
}

// CreateOrg stores an organisation and its root folder inside the transaction.
func (t *Tx) CreateOrg(o *ferry.Org, rootFolderID string) error {
	return createOrg(t.ctx, t.tx, o, rootFolderID)
}

// CreateUser stores a user inside the transaction.
func (t *Tx) CreateUser(u *ferry.User) error { return createUser(t.ctx, t.tx, u) }

// OrgByName looks an organisation up inside the transaction.
func (t *Tx) OrgByName(name string) (*ferry.Org, error) { return orgByName(t.ctx, t.tx, name) }
