package db

import (
	"context"
	"database/sql"

	"ferry.dev/ferry/internal/ferry"
)

// Listings of an organisation's users, parties, folders, grants and tokens,
// for the admin UI. Each returns at most 5,000 rows.

// UsersOfOrg lists an organisation's users by email.
func (d *DB) UsersOfOrg(ctx context.Context, orgID string) ([]*ferry.User, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+userCols+` FROM users WHERE org_id = $1 ORDER BY email LIMIT 5000`, orgID)
	if err != nil {
		return nil, dbErr("UsersOfOrg", err)
	}
	defer rows.Close()
	var out []*ferry.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, dbErr("UsersOfOrg", err)
		}
		out = append(out, u)
	}
	return out, dbErr("UsersOfOrg", rows.Err())
}

// PartiesOfOrg lists an organisation's parties by name, with their contacts.
func (d *DB) PartiesOfOrg(ctx context.Context, orgID string) ([]*ferry.Party, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT id, org_id, name, created FROM parties WHERE org_id = $1 ORDER BY name LIMIT 5000`, orgID)
	if err != nil {
		return nil, dbErr("PartiesOfOrg", err)
	}
	var out []*ferry.Party
	for rows.Next() {
		var p ferry.Party
		var created int64
		if err := rows.Scan(&p.ID, &p.OrgID, &p.Name, &created); err != nil {
			rows.Close()
			return nil, dbErr("PartiesOfOrg", err)
		}
		p.Created = fromMicro(created)
		out = append(out, &p)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, dbErr("PartiesOfOrg", err)
	}
	// Contacts after the rows are closed: SQLite runs on one connection.
	for _, p := range out {
		if err := d.partyContacts(ctx, p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// FoldersOfOrg lists an organisation's folders by path.
func (d *DB) FoldersOfOrg(ctx context.Context, orgID string) ([]*ferry.Folder, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+folderCols+` FROM folders WHERE org_id = $1 ORDER BY path LIMIT 5000`, orgID)
	if err != nil {
		return nil, dbErr("FoldersOfOrg", err)
	}
	defer rows.Close()
	var out []*ferry.Folder
	for rows.Next() {
		f, err := scanFolder(rows)
		if err != nil {
			return nil, dbErr("FoldersOfOrg", err)
		}
		out = append(out, f)
	}
	return out, dbErr("FoldersOfOrg", rows.Err())
}

// GrantsOfOrg lists every grant on an organisation's folders.
func (d *DB) GrantsOfOrg(ctx context.Context, orgID string) ([]ferry.Grant, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT g.folder_id, g.user_id, g.perms FROM grants g JOIN folders f ON f.id = g.folder_id
		WHERE f.org_id = $1 LIMIT 50000`, orgID)
	if err != nil {
		return nil, dbErr("GrantsOfOrg", err)
	}
	defer rows.Close()
	var out []ferry.Grant
	for rows.Next() {
		var g ferry.Grant
		var p int
		if err := rows.Scan(&g.FolderID, &g.UserID, &p); err != nil {
			return nil, dbErr("GrantsOfOrg", err)
		}
		if g.Perms, err = storedPerm("db.GrantsOfOrg", p); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, dbErr("GrantsOfOrg", rows.Err())
}

// TokensOfOrg lists the API tokens of an organisation's users that are not
// revoked, newest first.
func (d *DB) TokensOfOrg(ctx context.Context, orgID string) ([]*ferry.Token, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT t.id, t.user_id, t.hash, t.created, t.expires, t.revoked, t.last_used, t.scope, t.name
		FROM tokens t JOIN users u ON u.id = t.user_id WHERE u.org_id = $1 AND t.revoked = 0 ORDER BY t.created DESC LIMIT 5000`, orgID)
	if err != nil {
		return nil, dbErr("TokensOfOrg", err)
	}
	defer rows.Close()
	var out []*ferry.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, dbErr("TokensOfOrg", err)
		}
		out = append(out, t)
	}
	return out, dbErr("TokensOfOrg", rows.Err())
}

// DeletePasskeys removes every passkey of a user and returns how many;
// their recovery codes go too unless a TOTP authenticator remains.
func (d *DB) DeletePasskeys(ctx context.Context, userID string) (int64, error) {
	var n int64
	err := d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM passkeys WHERE user_id = $1`, userID)
		if err != nil {
			return dbErr("DeletePasskeys", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return dbErr("DeletePasskeys", err)
		}
		_, err = dropOrphanRecoveryCodes(ctx, tx, userID)
		return err
	})
	return n, err
}
