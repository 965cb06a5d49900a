package db

import (
	"context"
	"database/sql"
	"net/netip"
	"strings"
	"time"

	"ferry.dev/ferry/internal/ferry"
)

const shareCols = `s.id, s.org_id, s.user_id, u.email, s.path, s.folder_id, s.name, s.folder, s.dropbox, s.token_hash, s.password_hash, s.max_downloads, s.downloads, s.allowed_ips, s.created, s.expires, s.revoked,
	(SELECT COUNT(*) FROM share_uses x WHERE x.share_id = s.id), (SELECT COALESCE(MAX(x.created), 0) FROM share_uses x WHERE x.share_id = s.id)`

const shareFrom = ` FROM shares s JOIN users u ON u.id = s.user_id `

func scanShare(row interface{ Scan(...any) error }) (*ferry.Share, error) {
	var s ferry.Share
	var folder, dropbox, revoked int
	var ips string
	var created, expires, lastUsed int64
	if err := row.Scan(&s.ID, &s.OrgID, &s.UserID, &s.Email, &s.Path, &s.FolderID, &s.Name, &folder, &dropbox, &s.TokenHash, &s.PasswordHash,
		&s.MaxDownloads, &s.Downloads, &ips, &created, &expires, &revoked, &s.Uses, &lastUsed); err != nil {
		return nil, err
	}
	for _, f := range strings.Fields(ips) {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		s.AllowedIPs = append(s.AllowedIPs, p)
	}
	s.Folder, s.DropBox, s.Revoked = folder != 0, dropbox != 0, revoked != 0
	s.Created, s.Expires, s.LastUsed = fromMicro(created), fromMicro(expires), fromMicro(lastUsed)
	return &s, nil
}

func prefixList(ps []netip.Prefix) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, " ")
}

// CreateShare stores a new share link (its token's hash only).
func (d *DB) CreateShare(ctx context.Context, s *ferry.Share) error {
	_, err := d.sql.ExecContext(ctx, `INSERT INTO shares (id, org_id, user_id, path, folder_id, name, folder, dropbox, token_hash, password_hash, max_downloads, downloads, allowed_ips, created, expires, revoked, notified)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12, $13, $14, 0, 0)`,
		s.ID, s.OrgID, s.UserID, s.Path, s.FolderID, s.Name, boolInt(s.Folder), boolInt(s.DropBox), s.TokenHash, s.PasswordHash,
		s.MaxDownloads, prefixList(s.AllowedIPs), micro(s.Created), micro(s.Expires))
	return dbErr("CreateShare", err)
}

// ShareByID returns a share link by id.
func (d *DB) ShareByID(ctx context.Context, id string) (*ferry.Share, error) {
	s, err := scanShare(d.sql.QueryRowContext(ctx, `SELECT `+shareCols+shareFrom+`WHERE s.id = $1`, id))
	if err != nil {
		return nil, dbErr("ShareByID", err)
	}
	return s, nil
}

// ShareByTokenHash returns the share link whose token hashes to hash.
func (d *DB) ShareByTokenHash(ctx context.Context, hash []byte) (*ferry.Share, error) {
	s, err := scanShare(d.sql.QueryRowContext(ctx, `SELECT `+shareCols+shareFrom+`WHERE s.token_hash = $1`, hash))
	if err != nil {
		return nil, dbErr("ShareByTokenHash", err)
	}
	return s, nil
}

func shareRows(op string, rows *sql.Rows, err error) ([]*ferry.Share, error) {
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	var out []*ferry.Share
	for rows.Next() {
		s, err := scanShare(rows)
		if err != nil {
			return nil, dbErr(op, err)
		}
		out = append(out, s)
	}
	return out, dbErr(op, rows.Err())
}

// SharesOfUser lists the share links a user made that are not revoked and
// did not expire before since, newest first.
func (d *DB) SharesOfUser(ctx context.Context, userID string, since time.Time) ([]*ferry.Share, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+shareCols+shareFrom+`WHERE s.user_id = $1 AND s.revoked = 0 AND s.expires > $2 ORDER BY s.created DESC LIMIT 1000`, userID, micro(since))
	return shareRows("SharesOfUser", rows, err)
}

// SharesOfOrg lists an organisation's share links that are not revoked and
// did not expire before since, newest first.
func (d *DB) SharesOfOrg(ctx context.Context, orgID string, since time.Time) ([]*ferry.Share, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+shareCols+shareFrom+`WHERE s.org_id = $1 AND s.revoked = 0 AND s.expires > $2 ORDER BY s.created DESC LIMIT 1000`, orgID, micro(since))
	return shareRows("SharesOfOrg", rows, err)
}

// RevokeShare marks a share link revoked; it stops working at once.
func (d *DB) RevokeShare(ctx context.Context, id string) error {
	res, err := d.sql.ExecContext(ctx, `UPDATE shares SET revoked = 1 WHERE id = $1 AND revoked = 0`, id)
	return affectedOne("RevokeShare", res, err)
}

// CountShareDownload counts one download of a share link, in one
// conditional statement: it fails with ferry.NotExist, counting nothing, when
// the link is revoked, expired at now or used up. Concurrent downloads never
// exceed the limit.
func (d *DB) CountShareDownload(ctx context.Context, id string, now time.Time) error {
	res, err := d.sql.ExecContext(ctx, `UPDATE shares SET downloads = downloads + 1
		WHERE id = $1 AND revoked = 0 AND expires > $2 AND (max_downloads = 0 OR downloads < max_downloads)`, id, micro(now))
	return affectedOne("CountShareDownload", res, err)
}

// RecordShareUse records one use of a share link.
func (d *DB) RecordShareUse(ctx context.Context, id, shareID, action, path, remote string, when time.Time) error {
	_, err := d.sql.ExecContext(ctx, `INSERT INTO share_uses (id, share_id, created, action, path, remote) VALUES ($1, $2, $3, $4, $5, $6)`,
		id, shareID, micro(when), action, path, remote)
	return dbErr("RecordShareUse", err)
}

// ClaimShareNotice reports whether the sharer should be mailed about a use
// now: it is true, and records now, only when the last notice was at or
// before quietSince. Two nodes never both claim one notice.
func (d *DB) ClaimShareNotice(ctx context.Context, id string, now, quietSince time.Time) (bool, error) {
	res, err := d.sql.ExecContext(ctx, `UPDATE shares SET notified = $1 WHERE id = $2 AND notified <= $3`, micro(now), id, micro(quietSince))
	if err != nil {
		return false, dbErr("ClaimShareNotice", err)
	}
	n, err := res.RowsAffected()
	return n == 1, dbErr("ClaimShareNotice", err)
}

// CreateShareVisit stores a visitor's secret (its hash) for a share link
// whose password they gave.
func (d *DB) CreateShareVisit(ctx context.Context, hash []byte, shareID string, created, expires time.Time) error {
	_, err := d.sql.ExecContext(ctx, `INSERT INTO share_visits (hash, share_id, created, expires) VALUES ($1, $2, $3, $4)`, hash, shareID, micro(created), micro(expires))
	return dbErr("CreateShareVisit", err)
}

// ShareVisitValid reports whether hash is an unexpired visit of the share.
func (d *DB) ShareVisitValid(ctx context.Context, hash []byte, shareID string, now time.Time) (bool, error) {
	var n int
	err := d.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM share_visits WHERE hash = $1 AND share_id = $2 AND expires > $3`, hash, shareID, micro(now)).Scan(&n)
	return n > 0, dbErr("ShareVisitValid", err)
}

// DeleteExpiredShareVisits removes visits that ended before now.
func (d *DB) DeleteExpiredShareVisits(ctx context.Context, now time.Time) error {
	_, err := d.sql.ExecContext(ctx, `DELETE FROM share_visits WHERE expires <= $1`, micro(now))
	return dbErr("DeleteExpiredShareVisits", err)
}
