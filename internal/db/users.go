package db

import (
	"context"
	"database/sql"

	"ferry.dev/ferry/internal/ferry"
)

// CreateUser stores a new user. Emails are unique across the server.
func (d *DB) CreateUser(ctx context.Context, u *ferry.User) error {
	return createUser(ctx, d.sql, u)
}

func createUser(ctx context.Context, ex execer, u *ferry.User) error {
	_, err := ex.ExecContext(ctx, `INSERT INTO users (id, org_id, email, role, party_id, password_hash, server_admin, disabled, created)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		u.ID, u.OrgID, u.Email, string(u.Role), nullStr(u.PartyID), u.PasswordHash, boolInt(u.ServerAdmin), boolInt(u.Disabled), micro(u.Created))
	return dbErr("CreateUser", err)
}

const userCols = `id, org_id, email, role, party_id, password_hash, server_admin, disabled, created`

func scanUser(row interface{ Scan(...any) error }) (*ferry.User, error) {
	var u ferry.User
	var role string
	var party sql.NullString
	var admin, disabled int
	var created int64
	if err := row.Scan(&u.ID, &u.OrgID, &u.Email, &role, &party, &u.PasswordHash, &admin, &disabled, &created); err != nil {
		return nil, err
	}
	u.Role, u.PartyID, u.ServerAdmin, u.Disabled, u.Created = ferry.Role(role), party.String, admin != 0, disabled != 0, fromMicro(created)
	return &u, nil
}

// UserByEmail returns the user with the given (lower-case) email.
func (d *DB) UserByEmail(ctx context.Context, email string) (*ferry.User, error) {
	u, err := scanUser(d.sql.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE email = $1`, email))
	if err != nil {
		return nil, dbErr("UserByEmail", err)
	}
	return u, nil
}

// UserByID returns the user with the given id.
func (d *DB) UserByID(ctx context.Context, id string) (*ferry.User, error) {
	u, err := scanUser(d.sql.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id))
	if err != nil {
		return nil, dbErr("UserByID", err)
	}
	return u, nil
}

// SetUserDisabled disables or re-enables a user.
func (d *DB) SetUserDisabled(ctx context.Context, id string, disabled bool) error {
	res, err := d.sql.ExecContext(ctx, `UPDATE users SET disabled = $1 WHERE id = $2`, boolInt(disabled), id)
	return affectedOne("SetUserDisabled", res, err)
}

// CountServerAdmins returns how many enabled server administrators exist.
func (d *DB) CountServerAdmins(ctx context.Context) (int, error) {
	var n int
	err := d.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE server_admin = 1 AND disabled = 0`).Scan(&n)
	return n, dbErr("CountServerAdmins", err)
}

// affectedOne turns an update that touched no row into a NotExist error.
func affectedOne(op string, res sql.Result, err error) error {
	if err != nil {
		return dbErr(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return dbErr(op, err)
	}
	if n == 0 {
		return ferry.E("db."+op, ferry.NotExist, "not found")
	}
	return nil
}

// SetUserRole changes a user's role.
func (d *DB) SetUserRole(ctx context.Context, id string, role ferry.Role) error {
	res, err := d.sql.ExecContext(ctx, `UPDATE users SET role = $1 WHERE id = $2`, string(role), id)
	return affectedOne("SetUserRole", res, err)
}
