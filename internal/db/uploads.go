package db

import (
	"context"
	"database/sql"
	"time"

	"ferry.dev/ferry/internal/ferry"
)

// Part is one part of a file written in several sessions: its own encrypted
// stream in blob BlobID, holding Size plaintext bytes from Offset.
type Part struct {
	Index  int
	BlobID string
	Offset int64
	Size   int64
}

const uploadCols = `id, org_id, owner, path, size, received, parts, expect_sha256, hash_state, file_id, wrapped_key, kek_id, protocol, created, updated, expires`

func scanUpload(row interface{ Scan(...any) error }) (*ferry.Upload, error) {
	var u ferry.Upload
	var created, updated, expires int64
	if err := row.Scan(&u.ID, &u.OrgID, &u.Owner, &u.Path, &u.Size, &u.Received, &u.Parts, &u.ExpectSHA256, &u.HashState,
		&u.FileID, &u.WrappedKey, &u.KEKID, &u.Protocol, &created, &updated, &expires); err != nil {
		return nil, err
	}
	if len(u.ExpectSHA256) == 0 {
		u.ExpectSHA256 = nil
	}
	u.Created, u.Updated, u.Expires = fromMicro(created), fromMicro(updated), fromMicro(expires)
	return &u, nil
}

// CreateUpload records a new upload.
func (d *DB) CreateUpload(ctx context.Context, u *ferry.Upload) error {
	expect := u.ExpectSHA256
	if expect == nil {
		expect = []byte{}
	}
	_, err := d.sql.ExecContext(ctx, `INSERT INTO uploads (`+uploadCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		u.ID, u.OrgID, u.Owner, u.Path, u.Size, u.Received, u.Parts, expect, u.HashState, u.FileID, u.WrappedKey, u.KEKID, u.Protocol,
		micro(u.Created), micro(u.Updated), micro(u.Expires))
	return dbErr("CreateUpload", err)
}

// UploadByID returns an upload by id.
func (d *DB) UploadByID(ctx context.Context, id string) (*ferry.Upload, error) {
	u, err := scanUpload(d.sql.QueryRowContext(ctx, `SELECT `+uploadCols+` FROM uploads WHERE id = $1`, id))
	if err != nil {
		return nil, dbErr("UploadByID", err)
	}
	return u, nil
}

// UploadsByOwner lists an owner's uploads in an organisation, newest first;
// with path set, only those to that destination.
func (d *DB) UploadsByOwner(ctx context.Context, orgID, owner, path string) ([]*ferry.Upload, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+uploadCols+` FROM uploads WHERE org_id = $1 AND owner = $2 AND ($3 = '' OR path = $3) ORDER BY created DESC LIMIT 1000`, orgID, owner, path)
	if err != nil {
		return nil, dbErr("UploadsByOwner", err)
	}
	return scanUploads(rows, "UploadsByOwner")
}

// ExpiredUploads returns up to limit uploads whose expiry has passed.
func (d *DB) ExpiredUploads(ctx context.Context, now time.Time, limit int) ([]*ferry.Upload, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+uploadCols+` FROM uploads WHERE expires <= $1 ORDER BY expires LIMIT $2`, micro(now), limit)
	if err != nil {
		return nil, dbErr("ExpiredUploads", err)
	}
	return scanUploads(rows, "ExpiredUploads")
}

func scanUploads(rows *sql.Rows, op string) ([]*ferry.Upload, error) {
	defer rows.Close()
	var out []*ferry.Upload
	for rows.Next() {
		u, err := scanUpload(rows)
		if err != nil {
			return nil, dbErr(op, err)
		}
		out = append(out, u)
	}
	return out, dbErr(op, rows.Err())
}

// AddPart records a part stored for an upload and advances it, only if the
// upload is still at the part's offset: of two sessions racing to continue
// one upload, exactly one succeeds; the other gets a Conflict error and
// deletes its blob.
func (d *DB) AddPart(ctx context.Context, u *ferry.Upload, p Part, hashState []byte, now, expires time.Time) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE uploads SET received = $1, parts = $2, hash_state = $3, updated = $4, expires = $5
			WHERE id = $6 AND received = $7 AND parts = $8`,
			p.Offset+p.Size, p.Index+1, hashState, micro(now), micro(expires), u.ID, p.Offset, p.Index)
		if err != nil {
			return dbErr("AddPart", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return dbErr("AddPart", err)
		} else if n != 1 {
			return ferry.E("db.AddPart", ferry.Conflict, "the upload moved on: another session wrote to it")
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO file_parts (file_id, idx, blob_id, plain_offset, plain_size) VALUES ($1, $2, $3, $4, $5)`,
			u.FileID, p.Index, p.BlobID, p.Offset, p.Size)
		return dbErr("AddPart", err)
	})
}

// Parts lists the parts of a file or of an upload in progress (by its
// FileID), in order.
func (d *DB) Parts(ctx context.Context, fileID string) ([]Part, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT idx, blob_id, plain_offset, plain_size FROM file_parts WHERE file_id = $1 ORDER BY idx`, fileID)
	if err != nil {
		return nil, dbErr("Parts", err)
	}
	defer rows.Close()
	var out []Part
	for rows.Next() {
		var p Part
		if err := rows.Scan(&p.Index, &p.BlobID, &p.Offset, &p.Size); err != nil {
			return nil, dbErr("Parts", err)
		}
		out = append(out, p)
	}
	return out, dbErr("Parts", rows.Err())
}

// CompleteUpload turns a finished upload into the file f (whose ID is the
// upload's FileID and whose parts are already recorded), replacing the
// current file at its name as PutFile does, and deletes the upload, in one
// transaction. The upload must still be at u.Received with u.Parts parts.
func (d *DB) CompleteUpload(ctx context.Context, u *ferry.Upload, f *ferry.File) (replaced *ferry.File, blobs []string, err error) {
	err = d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM uploads WHERE id = $1 AND received = $2 AND parts = $3`, u.ID, u.Received, u.Parts)
		if err != nil {
			return dbErr("CompleteUpload", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return dbErr("CompleteUpload", err)
		} else if n != 1 {
			return ferry.E("db.CompleteUpload", ferry.Conflict, "the upload changed or is gone")
		}
		return putFile(ctx, tx, f, &replaced, &blobs)
	})
	return replaced, blobs, err
}

// DeleteUpload deletes an upload and its parts' rows and returns the parts'
// blob ids, for the caller to delete.
func (d *DB) DeleteUpload(ctx context.Context, u *ferry.Upload) (blobs []string, err error) {
	err = d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM uploads WHERE id = $1`, u.ID)
		if err := affectedOne("DeleteUpload", res, err); err != nil {
			return err
		}
		if blobs, err = partBlobs(ctx, tx, u.FileID); err != nil {
			return dbErr("DeleteUpload", err)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM file_parts WHERE file_id = $1`, u.FileID)
		return dbErr("DeleteUpload", err)
	})
	return blobs, err
}
