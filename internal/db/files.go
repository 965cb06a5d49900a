package db

import (
	"context"
	"database/sql"
	"time"

	"ferry.dev/ferry/internal/ferry"
)

const fileCols = `f.id, f.org_id, f.folder_id, f.name, fo.path, f.size, f.sha256, f.blob_id, f.wrapped_key, f.kek_id, f.uploader_id, f.party_id, f.created, f.modified, f.expires, f.hold, f.parts`

func scanFile(row interface{ Scan(...any) error }) (*ferry.File, error) {
	var f ferry.File
	var folderPath string
	var party sql.NullString
	var created, modified, expires int64
	var hold int
	if err := row.Scan(&f.ID, &f.OrgID, &f.FolderID, &f.Name, &folderPath, &f.Size, &f.SHA256, &f.BlobID, &f.WrappedKey, &f.KEKID,
		&f.UploaderID, &party, &created, &modified, &expires, &hold, &f.Parts); err != nil {
		return nil, err
	}
	if f.Size < 0 {
		return nil, ferry.Errorf("db.scanFile", ferry.Internal, "stored size %d of file %s is negative", f.Size, f.ID)
	}
	if folderPath == "/" {
		f.Path = "/" + f.Name
	} else {
		f.Path = folderPath + "/" + f.Name
	}
	f.PartyID, f.Created, f.Modified, f.Expires, f.Hold = party.String, fromMicro(created), fromMicro(modified), fromMicro(expires), hold != 0
	return &f, nil
}

// FileByName returns the file called name in a folder.
func (d *DB) FileByName(ctx context.Context, folderID, name string) (*ferry.File, error) {
	f, err := scanFile(d.sql.QueryRowContext(ctx, `SELECT `+fileCols+` FROM files f JOIN folders fo ON fo.id = f.folder_id WHERE f.folder_id = $1 AND f.name = $2`, folderID, name))
	if err != nil {
		return nil, dbErr("FileByName", err)
	}
	return f, nil
}

// FileByID returns a file by id.
func (d *DB) FileByID(ctx context.Context, id string) (*ferry.File, error) {
	f, err := scanFile(d.sql.QueryRowContext(ctx, `SELECT `+fileCols+` FROM files f JOIN folders fo ON fo.id = f.folder_id WHERE f.id = $1`, id))
	if err != nil {
		return nil, dbErr("FileByID", err)
	}
	return f, nil
}

// FilesInFolder lists the files directly inside a folder, by name.
func (d *DB) FilesInFolder(ctx context.Context, folderID string) ([]*ferry.File, error) {
	return d.files(ctx, "FilesInFolder", `SELECT `+fileCols+` FROM files f JOIN folders fo ON fo.id = f.folder_id WHERE f.folder_id = $1 ORDER BY f.name`, folderID)
}

// ExpiredFiles returns up to limit files whose expiry has passed and that are
// not on hold.
func (d *DB) ExpiredFiles(ctx context.Context, now time.Time, limit int) ([]*ferry.File, error) {
	return d.files(ctx, "ExpiredFiles", `SELECT `+fileCols+` FROM files f JOIN folders fo ON fo.id = f.folder_id WHERE f.expires <= $1 AND f.hold = 0 ORDER BY f.expires LIMIT $2`, micro(now), limit)
}

func (d *DB) files(ctx context.Context, op, query string, args ...any) ([]*ferry.File, error) {
	// sqllint: reviewed — query is always one of the constant strings of this file's callers
	rows, err := d.sql.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	var out []*ferry.File
	for rows.Next() {
		f, err := scanFile(rows)
		if err != nil {
			return nil, dbErr(op, err)
		}
		out = append(out, f)
	}
	return out, dbErr(op, rows.Err())
}

// PutFile makes f the current file at its folder and name, atomically: either
// the old file (if any) stays, or f replaces it. The replaced file's row, and
// with it its wrapped data key, is gone when PutFile returns; the caller
// deletes its blob. A folder of the same name refuses the write with Exist.
func (d *DB) PutFile(ctx context.Context, f *ferry.File, folderPath string) (replaced *ferry.File, blobs []string, err error) {
	err = d.tx(ctx, func(tx *sql.Tx) error {
		return putFile(ctx, tx, f, &replaced, &blobs)
	})
	return replaced, blobs, err
}

// putFile is PutFile inside a transaction; it sets *replaced and *blobs when
// it replaces a file.
func putFile(ctx context.Context, tx *sql.Tx, f *ferry.File, replaced **ferry.File, blobs *[]string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM folders WHERE parent_id = $1 AND name = $2`, f.FolderID, f.Name).Scan(&n); err != nil {
		return dbErr("PutFile", err)
	}
	if n > 0 {
		return ferry.E("db.PutFile", ferry.Exist, "a folder of that name exists")
	}
	old, err := scanFile(tx.QueryRowContext(ctx, `SELECT `+fileCols+` FROM files f JOIN folders fo ON fo.id = f.folder_id WHERE f.folder_id = $1 AND f.name = $2`, f.FolderID, f.Name))
	switch {
	case err == nil:
		*replaced = old
		if *blobs, err = deleteFileRow(ctx, tx, old); err != nil {
			return dbErr("PutFile", err)
		}
	case err != sql.ErrNoRows:
		return dbErr("PutFile", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO files (id, org_id, folder_id, name, size, sha256, blob_id, wrapped_key, kek_id, uploader_id, party_id, created, modified, expires, hold, parts)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		f.ID, f.OrgID, f.FolderID, f.Name, f.Size, f.SHA256, f.BlobID, f.WrappedKey, f.KEKID, f.UploaderID, nullStr(f.PartyID),
		micro(f.Created), micro(f.Modified), micro(f.Expires), boolInt(f.Hold), f.Parts)
	return dbErr("PutFile", err)
}

// deleteFileRow deletes a file's row and its parts' rows, and returns the
// ids of the blobs that held its content, for the caller to delete once the
// transaction commits.
func deleteFileRow(ctx context.Context, tx execer, f *ferry.File) ([]string, error) {
	blobs := []string{f.BlobID}
	if f.Parts > 0 {
		var err error
		if blobs, err = partBlobs(ctx, tx, f.ID); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM file_parts WHERE file_id = $1`, f.ID); err != nil {
			return nil, err
		}
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM files WHERE id = $1`, f.ID)
	return blobs, err
}

func partBlobs(ctx context.Context, q execer, fileID string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT blob_id FROM file_parts WHERE file_id = $1 ORDER BY idx`, fileID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// DeleteFile removes a file's row, destroying its wrapped data key
// (crypto-shredding), and returns the ids of the blobs that held its content
// for the caller to delete.
func (d *DB) DeleteFile(ctx context.Context, f *ferry.File) (blobs []string, err error) {
	err = d.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM files WHERE id = $1`, f.ID).Scan(&n); err != nil {
			return dbErr("DeleteFile", err)
		}
		if n == 0 {
			return ferry.E("db.DeleteFile", ferry.NotExist, "no such file")
		}
		blobs, err = deleteFileRow(ctx, tx, f)
		return dbErr("DeleteFile", err)
	})
	return blobs, err
}

// MoveFile renames or moves a file. The target must not exist.
func (d *DB) MoveFile(ctx context.Context, id, newFolderID, newName string, modified time.Time) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM folders WHERE parent_id = $1 AND name = $2) + (SELECT COUNT(*) FROM files WHERE folder_id = $1 AND name = $2)`,
			newFolderID, newName).Scan(&n); err != nil {
			return dbErr("MoveFile", err)
		}
		if n > 0 {
			return ferry.E("db.MoveFile", ferry.Exist, "the target already exists")
		}
		res, err := tx.ExecContext(ctx, `UPDATE files SET folder_id = $1, name = $2, modified = $3 WHERE id = $4`, newFolderID, newName, micro(modified), id)
		return affectedOne("MoveFile", res, err)
	})
}

// ReplaceFile moves a file to a new folder and name, atomically replacing a
// file already there (whose row, and wrapped data key, is deleted in the same
// transaction and returned so the caller can delete its blob). A folder at the
// target refuses the move with Exist.
func (d *DB) ReplaceFile(ctx context.Context, id, newFolderID, newName string, modified time.Time) (replaced *ferry.File, blobs []string, err error) {
	err = d.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM folders WHERE parent_id = $1 AND name = $2`, newFolderID, newName).Scan(&n); err != nil {
			return dbErr("ReplaceFile", err)
		}
		if n > 0 {
			return ferry.E("db.ReplaceFile", ferry.Exist, "a folder of that name exists")
		}
		old, err := scanFile(tx.QueryRowContext(ctx, `SELECT `+fileCols+` FROM files f JOIN folders fo ON fo.id = f.folder_id WHERE f.folder_id = $1 AND f.name = $2`, newFolderID, newName))
		switch {
		case err == nil && old.ID == id:
			return nil // renaming a file onto itself
		case err == nil:
			replaced = old
			if blobs, err = deleteFileRow(ctx, tx, old); err != nil {
				return dbErr("ReplaceFile", err)
			}
		case err != sql.ErrNoRows:
			return dbErr("ReplaceFile", err)
		}
		res, err := tx.ExecContext(ctx, `UPDATE files SET folder_id = $1, name = $2, modified = $3 WHERE id = $4`, newFolderID, newName, micro(modified), id)
		return affectedOne("ReplaceFile", res, err)
	})
	return replaced, blobs, err
}

// SetHold sets or clears a file's legal hold.
func (d *DB) SetHold(ctx context.Context, id string, hold bool) error {
	res, err := d.sql.ExecContext(ctx, `UPDATE files SET hold = $1 WHERE id = $2`, boolInt(hold), id)
	return affectedOne("SetHold", res, err)
}

// BlobInUse reports whether a file row references the blob id; the orphan
// sweeper uses it.
func (d *DB) BlobInUse(ctx context.Context, blobID string) (bool, error) {
	var n int
	err := d.sql.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM files WHERE blob_id = $1) + (SELECT COUNT(*) FROM file_parts WHERE blob_id = $1)`, blobID).Scan(&n)
	return n > 0, dbErr("BlobInUse", err)
}
