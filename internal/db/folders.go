package db

import (
	"context"
	"database/sql"

	"ferry.dev/ferry/internal/ferry"
)

const folderCols = `id, org_id, parent_id, name, path, party_id, created`

func scanFolder(row interface{ Scan(...any) error }) (*ferry.Folder, error) {
	var f ferry.Folder
	var parent, party sql.NullString
	var created int64
	if err := row.Scan(&f.ID, &f.OrgID, &parent, &f.Name, &f.Path, &party, &created); err != nil {
		return nil, err
	}
	f.ParentID, f.PartyID, f.Created = parent.String, party.String, fromMicro(created)
	return &f, nil
}

// CreateFolder stores a new folder under f.ParentID. It fails with Exist when
// a folder or file of that name is already there.
func (d *DB) CreateFolder(ctx context.Context, f *ferry.Folder) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM files WHERE folder_id = $1 AND name = $2`, f.ParentID, f.Name).Scan(&n); err != nil {
			return dbErr("CreateFolder", err)
		}
		if n > 0 {
			return ferry.E("db.CreateFolder", ferry.Exist, "a file of that name exists")
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO folders (id, org_id, parent_id, name, path, party_id, created) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			f.ID, f.OrgID, nullStr(f.ParentID), f.Name, f.Path, nullStr(f.PartyID), micro(f.Created))
		return dbErr("CreateFolder", err)
	})
}

// FolderByPath returns an organisation's folder by its clean path ("/" is the
// root).
func (d *DB) FolderByPath(ctx context.Context, orgID, path string) (*ferry.Folder, error) {
	f, err := scanFolder(d.sql.QueryRowContext(ctx, `SELECT `+folderCols+` FROM folders WHERE org_id = $1 AND path = $2`, orgID, path))
	if err != nil {
		return nil, dbErr("FolderByPath", err)
	}
	return f, nil
}

// FolderByID returns a folder by id.
func (d *DB) FolderByID(ctx context.Context, id string) (*ferry.Folder, error) {
	f, err := scanFolder(d.sql.QueryRowContext(ctx, `SELECT `+folderCols+` FROM folders WHERE id = $1`, id))
	if err != nil {
		return nil, dbErr("FolderByID", err)
	}
	return f, nil
}

// ChildFolders lists the folders directly inside a folder, by name.
func (d *DB) ChildFolders(ctx context.Context, parentID string) ([]*ferry.Folder, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+folderCols+` FROM folders WHERE parent_id = $1 ORDER BY name`, parentID)
	if err != nil {
		return nil, dbErr("ChildFolders", err)
	}
	defer rows.Close()
	var out []*ferry.Folder
	for rows.Next() {
		f, err := scanFolder(rows)
		if err != nil {
			return nil, dbErr("ChildFolders", err)
		}
		out = append(out, f)
	}
	return out, dbErr("ChildFolders", rows.Err())
}

// DeleteFolder removes an empty folder and its grants. A folder that still
// holds files or folders is refused with Exist.
func (d *DB) DeleteFolder(ctx context.Context, id string) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM files WHERE folder_id = $1) + (SELECT COUNT(*) FROM folders WHERE parent_id = $1)`, id).Scan(&n); err != nil {
			return dbErr("DeleteFolder", err)
		}
		if n > 0 {
			return ferry.E("db.DeleteFolder", ferry.Exist, "folder is not empty")
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM grants WHERE folder_id = $1`, id); err != nil {
			return dbErr("DeleteFolder", err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM folders WHERE id = $1 AND parent_id IS NOT NULL`, id)
		return affectedOne("DeleteFolder", res, err)
	})
}

// MoveFolder moves a folder (and everything below it) to a new parent and
// name. The target must not exist as a folder or file.
func (d *DB) MoveFolder(ctx context.Context, f *ferry.Folder, newParentID, newName, newPath string) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM files WHERE folder_id = $1 AND name = $2`, newParentID, newName).Scan(&n); err != nil {
			return dbErr("MoveFolder", err)
		}
		if n > 0 {
			return ferry.E("db.MoveFolder", ferry.Exist, "a file of that name exists")
		}
		if _, err := tx.ExecContext(ctx, `UPDATE folders SET parent_id = $1, name = $2 WHERE id = $3`, newParentID, newName, f.ID); err != nil {
			return dbErr("MoveFolder", err)
		}
		// Rewrite the path of the folder and of every descendant: the old
		// prefix is replaced by the new one.
		old := f.Path
		_, err := tx.ExecContext(ctx, `UPDATE folders SET path = $1 || substr(path, $2)
			WHERE org_id = $3 AND (path = $4 OR substr(path, 1, $5) = $6)`,
			newPath, len(old)+1, f.OrgID, old, len(old)+1, old+"/")
		return dbErr("MoveFolder", err)
	})
}
