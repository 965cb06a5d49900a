package db

import (
	"context"

	"ferry.dev/ferry/internal/ferry"
)

// AddSSHKey stores a user's SSH public key. Fingerprints are unique.
func (d *DB) AddSSHKey(ctx context.Context, k *ferry.SSHKey) error {
	_, err := d.sql.ExecContext(ctx, `INSERT INTO ssh_keys (id, user_id, fingerprint, public_key, comment, created) VALUES ($1, $2, $3, $4, $5, $6)`,
		k.ID, k.UserID, k.Fingerprint, k.PublicKey, k.Comment, micro(k.Created))
	return dbErr("AddSSHKey", err)
}

// SSHKeysByUser lists a user's SSH keys.
func (d *DB) SSHKeysByUser(ctx context.Context, userID string) ([]*ferry.SSHKey, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT id, user_id, fingerprint, public_key, comment, created FROM ssh_keys WHERE user_id = $1 ORDER BY created`, userID)
	if err != nil {
		return nil, dbErr("SSHKeysByUser", err)
	}
	defer rows.Close()
	var out []*ferry.SSHKey
	for rows.Next() {
		var k ferry.SSHKey
		var created int64
		if err := rows.Scan(&k.ID, &k.UserID, &k.Fingerprint, &k.PublicKey, &k.Comment, &created); err != nil {
			return nil, dbErr("SSHKeysByUser", err)
		}
		k.Created = fromMicro(created)
		out = append(out, &k)
	}
	return out, dbErr("SSHKeysByUser", rows.Err())
}

// DeleteSSHKey deletes one of a user's SSH keys; a key of another user is
// NotExist.
func (d *DB) DeleteSSHKey(ctx context.Context, id, userID string) error {
	res, err := d.sql.ExecContext(ctx, `DELETE FROM ssh_keys WHERE id = $1 AND user_id = $2`, id, userID)
	return affectedOne("DeleteSSHKey", res, err)
}
