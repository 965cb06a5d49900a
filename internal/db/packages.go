package db

import (
	"context"
	"database/sql"
	"time"

	"ferry.dev/ferry/internal/ferry"
)

// Packages, their recipients, download counts, receipts, one-time codes,
// replies and guest sessions (migration 0009_packages).

const packageCols = `p.id, p.org_id, p.sender_id, u.email, p.subject, p.message, p.status, p.party_id, p.folder_id, p.reply_folder_id, p.expires,
	p.max_downloads, p.require_signin, p.notify, p.allow_reply, p.created, p.sent, p.recalled, p.expiry_noticed`

func scanPackage(row interface{ Scan(...any) error }) (*ferry.Package, error) {
	var p ferry.Package
	var party sql.NullString
	var expires, created, sent, recalled int64
	var signin, notify, reply, noticed int
	if err := row.Scan(&p.ID, &p.OrgID, &p.SenderID, &p.SenderEmail, &p.Subject, &p.Message, &p.Status, &party, &p.FolderID, &p.ReplyFolderID,
		&expires, &p.MaxDownloads, &signin, &notify, &reply, &created, &sent, &recalled, &noticed); err != nil {
		return nil, err
	}
	p.PartyID = party.String
	p.Expires, p.Created, p.Sent, p.Recalled = fromMicro(expires), fromMicro(created), fromMicro(sent), fromMicro(recalled)
	p.RequireSignIn, p.Notify, p.AllowReply, p.ExpiryNoticed = signin != 0, notify != 0, reply != 0, noticed != 0
	return &p, nil
}

func scanPackages(rows *sql.Rows, op string) ([]*ferry.Package, error) {
	defer rows.Close()
	var out []*ferry.Package
	for rows.Next() {
		p, err := scanPackage(rows)
		if err != nil {
			return nil, dbErr(op, err)
		}
		out = append(out, p)
	}
	return out, dbErr(op, rows.Err())
}

// CreatePackage stores a new package (a draft) with its two folders and its
// recipients, in one transaction.
func (d *DB) CreatePackage(ctx context.Context, p *ferry.Package, folders []*ferry.Folder, rcpts []*ferry.PackageRecipient) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		for _, f := range folders {
			if _, err := tx.ExecContext(ctx, `INSERT INTO folders (id, org_id, parent_id, name, path, party_id, created) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				f.ID, f.OrgID, nullStr(f.ParentID), f.Name, f.Path, nullStr(f.PartyID), micro(f.Created)); err != nil {
				return dbErr("CreatePackage", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO packages (id, org_id, sender_id, subject, message, status, party_id, folder_id, reply_folder_id, expires,
			max_downloads, require_signin, notify, allow_reply, created, sent, recalled, expiry_noticed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, 0)`,
			p.ID, p.OrgID, p.SenderID, p.Subject, p.Message, p.Status, nullStr(p.PartyID), p.FolderID, p.ReplyFolderID, micro(p.Expires),
			p.MaxDownloads, boolInt(p.RequireSignIn), boolInt(p.Notify), boolInt(p.AllowReply), micro(p.Created), micro(p.Sent), micro(p.Recalled)); err != nil {
			return dbErr("CreatePackage", err)
		}
		for _, r := range rcpts {
			if _, err := tx.ExecContext(ctx, `INSERT INTO package_recipients (id, package_id, email, user_id, token_hash, created, opened) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				r.ID, r.PackageID, r.Email, nullStr(r.UserID), r.TokenHash, micro(r.Created), micro(r.Opened)); err != nil {
				return dbErr("CreatePackage", err)
			}
		}
		return nil
	})
}

// PackageByID returns a package.
func (d *DB) PackageByID(ctx context.Context, id string) (*ferry.Package, error) {
	p, err := scanPackage(d.sql.QueryRowContext(ctx, `SELECT `+packageCols+` FROM packages p JOIN users u ON u.id = p.sender_id WHERE p.id = $1`, id))
	if err != nil {
		return nil, dbErr("PackageByID", err)
	}
	return p, nil
}

// PackagesBySender lists the packages a user sent (drafts included), newest
// first.
func (d *DB) PackagesBySender(ctx context.Context, userID string) ([]*ferry.Package, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+packageCols+` FROM packages p JOIN users u ON u.id = p.sender_id WHERE p.sender_id = $1 ORDER BY p.created DESC LIMIT 1000`, userID)
	if err != nil {
		return nil, dbErr("PackagesBySender", err)
	}
	return scanPackages(rows, "PackagesBySender")
}

// PackagesReceived lists the sent packages addressed to a user (by user id
// or by address), newest first.
func (d *DB) PackagesReceived(ctx context.Context, userID, email string) ([]*ferry.Package, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+packageCols+` FROM packages p JOIN users u ON u.id = p.sender_id
		WHERE p.status <> 'draft' AND p.id IN (SELECT package_id FROM package_recipients WHERE user_id = $1 OR email = $2) ORDER BY p.created DESC LIMIT 1000`, userID, email)
	if err != nil {
		return nil, dbErr("PackagesReceived", err)
	}
	return scanPackages(rows, "PackagesReceived")
}

// PackagesExpiring lists sent packages expiring before t whose "about to
// expire" notice has not gone out.
func (d *DB) PackagesExpiring(ctx context.Context, now, t time.Time, limit int) ([]*ferry.Package, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+packageCols+` FROM packages p JOIN users u ON u.id = p.sender_id
		WHERE p.status = 'sent' AND p.expiry_noticed = 0 AND p.expires > $1 AND p.expires <= $2 ORDER BY p.expires LIMIT $3`, micro(now), micro(t), limit)
	if err != nil {
		return nil, dbErr("PackagesExpiring", err)
	}
	return scanPackages(rows, "PackagesExpiring")
}

// MarkExpiryNoticed records that a package's expiry notice went out; false
// if another node did it first.
func (d *DB) MarkExpiryNoticed(ctx context.Context, id string) (bool, error) {
	res, err := d.sql.ExecContext(ctx, `UPDATE packages SET expiry_noticed = 1 WHERE id = $1 AND expiry_noticed = 0`, id)
	if err != nil {
		return false, dbErr("MarkExpiryNoticed", err)
	}
	n, err := res.RowsAffected()
	return n == 1, dbErr("MarkExpiryNoticed", err)
}

// SendPackage moves a draft to sent, giving each recipient the hash of its
// link's secret (hashes maps recipient id to hash). It fails with Conflict
// if the package is no longer a draft.
func (d *DB) SendPackage(ctx context.Context, id string, sent, expires time.Time, hashes map[string][]byte) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE packages SET status = 'sent', sent = $1, expires = $2 WHERE id = $3 AND status = 'draft'`, micro(sent), micro(expires), id)
		if err != nil {
			return dbErr("SendPackage", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ferry.E("db.SendPackage", ferry.Conflict, "the package was already sent or recalled")
		}
		for rid, h := range hashes {
			if _, err := tx.ExecContext(ctx, `UPDATE package_recipients SET token_hash = $1 WHERE id = $2 AND package_id = $3`, h, rid, id); err != nil {
				return dbErr("SendPackage", err)
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE files SET expires = $1 WHERE folder_id IN (SELECT folder_id FROM packages WHERE id = $2)`, micro(expires), id)
		return dbErr("SendPackage", err)
	})
}

// RecallPackage marks a package recalled and ends its guest sessions.
func (d *DB) RecallPackage(ctx context.Context, id string, now time.Time) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE packages SET status = 'recalled', recalled = $1 WHERE id = $2 AND status <> 'recalled'`, micro(now), id)
		if err != nil {
			return dbErr("RecallPackage", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ferry.E("db.RecallPackage", ferry.Conflict, "the package was already recalled")
		}
		_, err = tx.ExecContext(ctx, `UPDATE guest_sessions SET revoked = 1 WHERE package_id = $1`, id)
		return dbErr("RecallPackage", err)
	})
}

// SetFolderFilesExpiry sets the expiry of every file in a folder.
func (d *DB) SetFolderFilesExpiry(ctx context.Context, folderID string, expires time.Time) error {
	_, err := d.sql.ExecContext(ctx, `UPDATE files SET expires = $1 WHERE folder_id = $2`, micro(expires), folderID)
	return dbErr("SetFolderFilesExpiry", err)
}

const recipientCols = `id, package_id, email, user_id, token_hash, created, opened`

func scanRecipient(row interface{ Scan(...any) error }) (*ferry.PackageRecipient, error) {
	var r ferry.PackageRecipient
	var user sql.NullString
	var created, opened int64
	if err := row.Scan(&r.ID, &r.PackageID, &r.Email, &user, &r.TokenHash, &created, &opened); err != nil {
		return nil, err
	}
	r.UserID, r.Created, r.Opened = user.String, fromMicro(created), fromMicro(opened)
	return &r, nil
}

// RecipientsOf lists a package's recipients in the order given.
func (d *DB) RecipientsOf(ctx context.Context, packageID string) ([]*ferry.PackageRecipient, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+recipientCols+` FROM package_recipients WHERE package_id = $1 ORDER BY created, email`, packageID)
	if err != nil {
		return nil, dbErr("RecipientsOf", err)
	}
	defer rows.Close()
	var out []*ferry.PackageRecipient
	for rows.Next() {
		r, err := scanRecipient(rows)
		if err != nil {
			return nil, dbErr("RecipientsOf", err)
		}
		out = append(out, r)
	}
	return out, dbErr("RecipientsOf", rows.Err())
}

// RecipientByTokenHash returns the recipient whose link secret hashes to h.
func (d *DB) RecipientByTokenHash(ctx context.Context, h []byte) (*ferry.PackageRecipient, error) {
	r, err := scanRecipient(d.sql.QueryRowContext(ctx, `SELECT `+recipientCols+` FROM package_recipients WHERE token_hash = $1`, h))
	if err != nil {
		return nil, dbErr("RecipientByTokenHash", err)
	}
	return r, nil
}

// RecipientByID returns a recipient.
func (d *DB) RecipientByID(ctx context.Context, id string) (*ferry.PackageRecipient, error) {
	r, err := scanRecipient(d.sql.QueryRowContext(ctx, `SELECT `+recipientCols+` FROM package_recipients WHERE id = $1`, id))
	if err != nil {
		return nil, dbErr("RecipientByID", err)
	}
	return r, nil
}

// MarkOpened records the first time a recipient opened the package.
func (d *DB) MarkOpened(ctx context.Context, id string, now time.Time) error {
	_, err := d.sql.ExecContext(ctx, `UPDATE package_recipients SET opened = $1 WHERE id = $2 AND opened = 0`, micro(now), id)
	return dbErr("MarkOpened", err)
}

// CountDownload counts one download of a file by a recipient if it stays
// within max (0: unlimited); false when the limit is reached.
func (d *DB) CountDownload(ctx context.Context, recipientID, fileID string, max int) (bool, error) {
	res, err := d.sql.ExecContext(ctx, `INSERT INTO package_downloads (recipient_id, file_id, count) VALUES ($1, $2, 1)
		ON CONFLICT (recipient_id, file_id) DO UPDATE SET count = package_downloads.count + 1 WHERE $3 = 0 OR package_downloads.count < $3`, recipientID, fileID, max)
	if err != nil {
		return false, dbErr("CountDownload", err)
	}
	n, err := res.RowsAffected()
	return n == 1, dbErr("CountDownload", err)
}

// Downloads returns how often a recipient downloaded each file (by file id).
func (d *DB) Downloads(ctx context.Context, recipientID string) (map[string]int, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT file_id, count FROM package_downloads WHERE recipient_id = $1`, recipientID)
	if err != nil {
		return nil, dbErr("Downloads", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, dbErr("Downloads", err)
		}
		out[id] = n
	}
	return out, dbErr("Downloads", rows.Err())
}

// AddReceipt records a download.
func (d *DB) AddReceipt(ctx context.Context, r *ferry.PackageReceipt) error {
	_, err := d.sql.ExecContext(ctx, `INSERT INTO package_receipts (id, package_id, recipient_id, email, file_id, file_name, bytes, remote, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		r.ID, r.PackageID, r.RecipientID, r.Email, r.FileID, r.FileName, r.Bytes, r.Remote, micro(r.Time))
	return dbErr("AddReceipt", err)
}

// ReceiptsOf lists a package's receipts, oldest first.
func (d *DB) ReceiptsOf(ctx context.Context, packageID string) ([]*ferry.PackageReceipt, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT id, package_id, recipient_id, email, file_id, file_name, bytes, remote, created FROM package_receipts WHERE package_id = $1 ORDER BY created LIMIT 10000`, packageID)
	if err != nil {
		return nil, dbErr("ReceiptsOf", err)
	}
	defer rows.Close()
	var out []*ferry.PackageReceipt
	for rows.Next() {
		var r ferry.PackageReceipt
		var t int64
		if err := rows.Scan(&r.ID, &r.PackageID, &r.RecipientID, &r.Email, &r.FileID, &r.FileName, &r.Bytes, &r.Remote, &t); err != nil {
			return nil, dbErr("ReceiptsOf", err)
		}
		r.Time = fromMicro(t)
		out = append(out, &r)
	}
	return out, dbErr("ReceiptsOf", rows.Err())
}

// AddReply records a reply file.
func (d *DB) AddReply(ctx context.Context, r *ferry.PackageReply) error {
	_, err := d.sql.ExecContext(ctx, `INSERT INTO package_replies (id, package_id, recipient_id, email, file_id, name, size, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		r.ID, r.PackageID, r.RecipientID, r.Email, r.FileID, r.Name, r.Size, micro(r.Created))
	return dbErr("AddReply", err)
}

// RepliesOf lists a package's replies, oldest first.
func (d *DB) RepliesOf(ctx context.Context, packageID string) ([]*ferry.PackageReply, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT id, package_id, recipient_id, email, file_id, name, size, created FROM package_replies WHERE package_id = $1 ORDER BY created LIMIT 10000`, packageID)
	if err != nil {
		return nil, dbErr("RepliesOf", err)
	}
	defer rows.Close()
	var out []*ferry.PackageReply
	for rows.Next() {
		var r ferry.PackageReply
		var t int64
		if err := rows.Scan(&r.ID, &r.PackageID, &r.RecipientID, &r.Email, &r.FileID, &r.Name, &r.Size, &t); err != nil {
			return nil, dbErr("RepliesOf", err)
		}
		r.Created = fromMicro(t)
		out = append(out, &r)
	}
	return out, dbErr("RepliesOf", rows.Err())
}

// GuestCode is a one-time code sent to an external recipient (its hash only).
type GuestCode struct {
	ID          string
	RecipientID string
	Hash        []byte
	Expires     time.Time
	Tries       int
	Used        bool
	Created     time.Time
}

// AddGuestCode stores a new code for a recipient, ending any earlier unused
// one (only the newest code works).
func (d *DB) AddGuestCode(ctx context.Context, c *GuestCode) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE package_codes SET used = 1 WHERE recipient_id = $1 AND used = 0`, c.RecipientID); err != nil {
			return dbErr("AddGuestCode", err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO package_codes (id, recipient_id, hash, expires, tries, used, created) VALUES ($1, $2, $3, $4, 0, 0, $5)`,
			c.ID, c.RecipientID, c.Hash, micro(c.Expires), micro(c.Created))
		return dbErr("AddGuestCode", err)
	})
}

// LatestGuestCode returns a recipient's newest code.
func (d *DB) LatestGuestCode(ctx context.Context, recipientID string) (*GuestCode, error) {
	var c GuestCode
	var exp, created int64
	var used int
	err := d.sql.QueryRowContext(ctx, `SELECT id, recipient_id, hash, expires, tries, used, created FROM package_codes WHERE recipient_id = $1 ORDER BY created DESC LIMIT 1`, recipientID).
		Scan(&c.ID, &c.RecipientID, &c.Hash, &exp, &c.Tries, &used, &created)
	if err != nil {
		return nil, dbErr("LatestGuestCode", err)
	}
	c.Expires, c.Created, c.Used = fromMicro(exp), fromMicro(created), used != 0
	return &c, nil
}

// CountGuestCodes counts the codes sent to a recipient since t.
func (d *DB) CountGuestCodes(ctx context.Context, recipientID string, since time.Time) (int, error) {
	var n int
	err := d.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM package_codes WHERE recipient_id = $1 AND created >= $2`, recipientID, micro(since)).Scan(&n)
	return n, dbErr("CountGuestCodes", err)
}

// TryGuestCode takes one of a code's max tries, before the guess is
// compared, so that parallel guesses can never outnumber the tries: it
// returns false when the code is used up or has no try left, else true and
// the tries taken so far (this one included).
func (d *DB) TryGuestCode(ctx context.Context, id string, max int) (bool, int, error) {
	res, err := d.sql.ExecContext(ctx, `UPDATE package_codes SET tries = tries + 1 WHERE id = $1 AND used = 0 AND tries < $2`, id, max)
	if err != nil {
		return false, 0, dbErr("TryGuestCode", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return false, 0, dbErr("TryGuestCode", err)
	}
	var n int
	err = d.sql.QueryRowContext(ctx, `SELECT tries FROM package_codes WHERE id = $1`, id).Scan(&n)
	return true, n, dbErr("TryGuestCode", err)
}

// UseGuestCode marks a code used; false if it already was (single use, even
// under concurrent tries).
func (d *DB) UseGuestCode(ctx context.Context, id string) (bool, error) {
	res, err := d.sql.ExecContext(ctx, `UPDATE package_codes SET used = 1 WHERE id = $1 AND used = 0`, id)
	if err != nil {
		return false, dbErr("UseGuestCode", err)
	}
	n, err := res.RowsAffected()
	return n == 1, dbErr("UseGuestCode", err)
}

// GuestSession is a package guest's signed-in session (its secret's hash
// only).
type GuestSession struct {
	ID          string
	Hash        []byte
	RecipientID string
	PackageID   string
	Created     time.Time
	Expires     time.Time
	Revoked     bool
}

// CreateGuestSession stores a guest session.
func (d *DB) CreateGuestSession(ctx context.Context, s *GuestSession) error {
	_, err := d.sql.ExecContext(ctx, `INSERT INTO guest_sessions (id, hash, recipient_id, package_id, created, expires, revoked) VALUES ($1, $2, $3, $4, $5, $6, 0)`,
		s.ID, s.Hash, s.RecipientID, s.PackageID, micro(s.Created), micro(s.Expires))
	return dbErr("CreateGuestSession", err)
}

// GuestSessionByHash returns the guest session whose secret hashes to h.
func (d *DB) GuestSessionByHash(ctx context.Context, h []byte) (*GuestSession, error) {
	var s GuestSession
	var created, expires int64
	var revoked int
	err := d.sql.QueryRowContext(ctx, `SELECT id, hash, recipient_id, package_id, created, expires, revoked FROM guest_sessions WHERE hash = $1`, h).
		Scan(&s.ID, &s.Hash, &s.RecipientID, &s.PackageID, &created, &expires, &revoked)
	if err != nil {
		return nil, dbErr("GuestSessionByHash", err)
	}
	s.Created, s.Expires, s.Revoked = fromMicro(created), fromMicro(expires), revoked != 0
	return &s, nil
}
