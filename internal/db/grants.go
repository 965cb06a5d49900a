package db

import (
	"context"

	"ferry.dev/ferry/internal/ferry"
)

// SetGrant gives a user exactly perms on a folder, replacing an earlier grant
// on the same folder; perms of 0 removes the grant.
func (d *DB) SetGrant(ctx context.Context, g ferry.Grant) error {
	if g.Perms == 0 {
		_, err := d.sql.ExecContext(ctx, `DELETE FROM grants WHERE folder_id = $1 AND user_id = $2`, g.FolderID, g.UserID)
		return dbErr("SetGrant", err)
	}
	_, err := d.sql.ExecContext(ctx, `INSERT INTO grants (folder_id, user_id, perms) VALUES ($1, $2, $3)
		ON CONFLICT (folder_id, user_id) DO UPDATE SET perms = excluded.perms`, g.FolderID, g.UserID, int(g.Perms))
	return dbErr("SetGrant", err)
}

// PathGrant is a grant together with the path of its folder.
type PathGrant struct {
	Path  string
	Perms ferry.Perm
}

// GrantsForUser returns every grant a user holds, with folder paths.
func (d *DB) GrantsForUser(ctx context.Context, userID string) ([]PathGrant, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT f.path, g.perms FROM grants g JOIN folders f ON f.id = g.folder_id WHERE g.user_id = $1`, userID)
	if err != nil {
		return nil, dbErr("GrantsForUser", err)
	}
	defer rows.Close()
	var out []PathGrant
	for rows.Next() {
		var g PathGrant
		var p int
		if err := rows.Scan(&g.Path, &p); err != nil {
			return nil, dbErr("GrantsForUser", err)
		}
		if g.Perms, err = storedPerm("db.GrantsForUser", p); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, dbErr("GrantsForUser", rows.Err())
}
