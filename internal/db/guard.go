package db

import (
	"context"
	"database/sql"
	"time"

	"ferry.dev/ferry/internal/ferry"
)

// The guard's tables (migration 0011_guard): read limits per organisation,
// frozen principals, canary files, daily peaks, the address prefixes users
// signed in from, alert webhooks and their outbox, and the alert
// dispatcher's cursor in the audit log. The rules live in internal/guard.

// GuardPolicy is an organisation's read limits. Zero limits are off.
type GuardPolicy struct {
	OrgID        string
	Window       time.Duration // the sliding window the limits count over
	MaxFiles     int           // distinct files one principal may read per window
	MaxBytes     int64         // bytes one principal may read per window
	AddrMaxFiles int           // distinct files per source address per window
	OrgMaxFiles  int           // distinct files per organisation per window (alert only)
	PeakFactor   int           // freeze above this many times the principal's 30-day peak
	Monitor      bool          // alert, but freeze nobody
	Updated      time.Time
}

// GuardPolicy returns an organisation's stored guard policy, or a
// ferry.NotExist error when it has none (the guard's defaults apply).
func (d *DB) GuardPolicy(ctx context.Context, orgID string) (*GuardPolicy, error) {
	var (
		p               GuardPolicy
		win, upd        int64
		monitor         int
		maxFiles, addrF int
	)
	err := d.sql.QueryRowContext(ctx, `SELECT org_id, window_secs, max_files, max_bytes, addr_max_files, org_max_files, peak_factor, monitor, updated
		FROM guard_policies WHERE org_id = $1`, orgID).Scan(&p.OrgID, &win, &maxFiles, &p.MaxBytes, &addrF, &p.OrgMaxFiles, &p.PeakFactor, &monitor, &upd)
	if err != nil {
		return nil, dbErr("GuardPolicy", err)
	}
	p.Window, p.MaxFiles, p.AddrMaxFiles, p.Monitor, p.Updated = time.Duration(win)*time.Second, maxFiles, addrF, monitor != 0, fromMicro(upd)
	return &p, nil
}

// SetGuardPolicy stores an organisation's guard policy.
func (d *DB) SetGuardPolicy(ctx context.Context, p *GuardPolicy) error {
	_, err := d.sql.ExecContext(ctx, `INSERT INTO guard_policies (org_id, window_secs, max_files, max_bytes, addr_max_files, org_max_files, peak_factor, monitor, updated)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (org_id) DO UPDATE SET window_secs = excluded.window_secs, max_files = excluded.max_files, max_bytes = excluded.max_bytes,
		addr_max_files = excluded.addr_max_files, org_max_files = excluded.org_max_files, peak_factor = excluded.peak_factor,
		monitor = excluded.monitor, updated = excluded.updated`,
		p.OrgID, int64(p.Window/time.Second), p.MaxFiles, p.MaxBytes, p.AddrMaxFiles, p.OrgMaxFiles, p.PeakFactor, boolInt(p.Monitor), micro(p.Updated))
	return dbErr("SetGuardPolicy", err)
}

// GuardFreeze is a frozen principal. Subject names it ("user:ID",
// "share:ID", "guest:PACKAGE:EMAIL").
type GuardFreeze struct {
	Subject string
	OrgID   string
	UserID  string // the user whose sessions and tokens are suspended, if any
	Name    string // as audit records name the principal
	Reason  string // "limit", "canary", "share", "admin"
	Detail  string
	Frozen  time.Time
}

// PutGuardFreeze records a freeze. It reports false, and changes nothing,
// when the subject is already frozen.
func (d *DB) PutGuardFreeze(ctx context.Context, f *GuardFreeze) (bool, error) {
	res, err := d.sql.ExecContext(ctx, `INSERT INTO guard_freezes (subject, org_id, user_id, name, reason, detail, frozen)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (subject) DO NOTHING`,
		f.Subject, f.OrgID, f.UserID, f.Name, f.Reason, f.Detail, micro(f.Frozen))
	if err != nil {
		return false, dbErr("PutGuardFreeze", err)
	}
	n, err := res.RowsAffected()
	return n == 1, dbErr("PutGuardFreeze", err)
}

// DeleteGuardFreeze lifts a freeze; a subject that is not frozen is a
// ferry.NotExist error.
func (d *DB) DeleteGuardFreeze(ctx context.Context, subject string) error {
	res, err := d.sql.ExecContext(ctx, `DELETE FROM guard_freezes WHERE subject = $1`, subject)
	return affectedOne("DeleteGuardFreeze", res, err)
}

// GuardFreezes returns the frozen principals of an organisation, or of every
// organisation when orgID is "", oldest first.
func (d *DB) GuardFreezes(ctx context.Context, orgID string) ([]*GuardFreeze, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT subject, org_id, user_id, name, reason, detail, frozen FROM guard_freezes
		WHERE $1 = '' OR org_id = $1 ORDER BY frozen, subject`, orgID)
	if err != nil {
		return nil, dbErr("GuardFreezes", err)
	}
	defer rows.Close()
	var out []*GuardFreeze
	for rows.Next() {
		var (
			f  GuardFreeze
			tm int64
		)
		if err := rows.Scan(&f.Subject, &f.OrgID, &f.UserID, &f.Name, &f.Reason, &f.Detail, &tm); err != nil {
			return nil, dbErr("GuardFreezes", err)
		}
		f.Frozen = fromMicro(tm)
		out = append(out, &f)
	}
	return out, dbErr("GuardFreezes", rows.Err())
}

// GuardCanary marks a file as a canary.
type GuardCanary struct {
	FileID    string
	OrgID     string
	Decoy     bool // generated by the guard rather than an existing file
	Created   time.Time
	CreatedBy string
}

// PutGuardCanary marks a file as a canary (again: no error).
func (d *DB) PutGuardCanary(ctx context.Context, c *GuardCanary) error {
	_, err := d.sql.ExecContext(ctx, `INSERT INTO guard_canaries (file_id, org_id, decoy, created, created_by) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (file_id) DO NOTHING`, c.FileID, c.OrgID, boolInt(c.Decoy), micro(c.Created), c.CreatedBy)
	return dbErr("PutGuardCanary", err)
}

// DeleteGuardCanary unmarks a canary; a file that is not one is a
// ferry.NotExist error.
func (d *DB) DeleteGuardCanary(ctx context.Context, fileID string) error {
	res, err := d.sql.ExecContext(ctx, `DELETE FROM guard_canaries WHERE file_id = $1`, fileID)
	return affectedOne("DeleteGuardCanary", res, err)
}

// GuardCanaryIDs returns the ids of every canary file.
func (d *DB) GuardCanaryIDs(ctx context.Context) ([]string, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT file_id FROM guard_canaries ORDER BY file_id`)
	if err != nil {
		return nil, dbErr("GuardCanaryIDs", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, dbErr("GuardCanaryIDs", err)
		}
		out = append(out, id)
	}
	return out, dbErr("GuardCanaryIDs", rows.Err())
}

// GuardCanaryFiles returns an organisation's canary files that still exist,
// by path, with whether each is a generated decoy.
func (d *DB) GuardCanaryFiles(ctx context.Context, orgID string) ([]*ferry.File, []bool, error) {
	const op = "GuardCanaryFiles"
	rows, err := d.sql.QueryContext(ctx, `SELECT `+fileCols+`, c.decoy FROM guard_canaries c JOIN files f ON f.id = c.file_id
		JOIN folders fo ON fo.id = f.folder_id WHERE c.org_id = $1 ORDER BY fo.path, f.name`, orgID)
	if err != nil {
		return nil, nil, dbErr(op, err)
	}
	defer rows.Close()
	var (
		files  []*ferry.File
		decoys []bool
	)
	for rows.Next() {
		var decoy int
		f, err := scanFile(scanExtra{rows, &decoy})
		if err != nil {
			return nil, nil, dbErr(op, err)
		}
		files, decoys = append(files, f), append(decoys, decoy != 0)
	}
	return files, decoys, dbErr(op, rows.Err())
}

// scanExtra scans a file row followed by extra columns.
type scanExtra struct {
	rows  *sql.Rows
	extra *int
}

func (s scanExtra) Scan(dest ...any) error { return s.rows.Scan(append(dest, s.extra)...) }

// GuardPeak returns the highest daily peak recorded for subject on day
// since or later (days are Unix days, UTC), 0 when none, and on how many
// days a peak was recorded.
func (d *DB) GuardPeak(ctx context.Context, subject string, since int64) (peak, days int, err error) {
	err = d.sql.QueryRowContext(ctx, `SELECT COALESCE(MAX(peak), 0), COUNT(*) FROM guard_peaks WHERE subject = $1 AND day >= $2`, subject, since).Scan(&peak, &days)
	return peak, days, dbErr("GuardPeak", err)
}

// RaiseGuardPeak records peak as subject's peak on day unless a higher one
// is recorded, and deletes that subject's peaks older than before.
func (d *DB) RaiseGuardPeak(ctx context.Context, subject string, day int64, peak int, before int64) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO guard_peaks (subject, day, peak) VALUES ($1, $2, $3)
			ON CONFLICT (subject, day) DO UPDATE SET peak = excluded.peak WHERE guard_peaks.peak < excluded.peak`, subject, day, peak); err != nil {
			return dbErr("RaiseGuardPeak", err)
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM guard_peaks WHERE subject = $1 AND day < $2`, subject, before)
		return dbErr("RaiseGuardPeak", err)
	})
}

// SeeGuardAddr records that a user signed in from an address prefix. It
// reports whether the prefix was new for the user and whether the user had
// any prefix recorded before.
func (d *DB) SeeGuardAddr(ctx context.Context, userID, prefix string, t time.Time) (isNew, hadAny bool, err error) {
	var total, this int
	if err := d.sql.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN prefix = $2 THEN 1 ELSE 0 END), 0) FROM guard_seen_addrs WHERE user_id = $1`,
		userID, prefix).Scan(&total, &this); err != nil {
		return false, false, dbErr("SeeGuardAddr", err)
	}
	if this > 0 {
		return false, true, nil
	}
	_, err = d.sql.ExecContext(ctx, `INSERT INTO guard_seen_addrs (user_id, prefix, first_seen) VALUES ($1, $2, $3) ON CONFLICT (user_id, prefix) DO NOTHING`,
		userID, prefix, micro(t))
	return true, total > 0, dbErr("SeeGuardAddr", err)
}

// GuardWebhook is an organisation's alert webhook.
type GuardWebhook struct {
	OrgID   string
	URL     string
	Secret  string
	Updated time.Time
}

// SetGuardWebhook stores an organisation's alert webhook.
func (d *DB) SetGuardWebhook(ctx context.Context, w *GuardWebhook) error {
	_, err := d.sql.ExecContext(ctx, `INSERT INTO guard_webhooks (org_id, url, secret, updated) VALUES ($1, $2, $3, $4)
		ON CONFLICT (org_id) DO UPDATE SET url = excluded.url, secret = excluded.secret, updated = excluded.updated`,
		w.OrgID, w.URL, w.Secret, micro(w.Updated))
	return dbErr("SetGuardWebhook", err)
}

// DeleteGuardWebhook removes an organisation's webhook (none: no error).
func (d *DB) DeleteGuardWebhook(ctx context.Context, orgID string) error {
	_, err := d.sql.ExecContext(ctx, `DELETE FROM guard_webhooks WHERE org_id = $1`, orgID)
	return dbErr("DeleteGuardWebhook", err)
}

// GuardWebhookOf returns an organisation's webhook, or a ferry.NotExist
// error.
func (d *DB) GuardWebhookOf(ctx context.Context, orgID string) (*GuardWebhook, error) {
	var (
		w  GuardWebhook
		tm int64
	)
	err := d.sql.QueryRowContext(ctx, `SELECT org_id, url, secret, updated FROM guard_webhooks WHERE org_id = $1`, orgID).Scan(&w.OrgID, &w.URL, &w.Secret, &tm)
	if err != nil {
		return nil, dbErr("GuardWebhookOf", err)
	}
	w.Updated = fromMicro(tm)
	return &w, nil
}

// GuardOutboxItem is one webhook delivery waiting or done.
type GuardOutboxItem struct {
	ID        string
	OrgID     string
	Body      []byte
	Created   time.Time
	Attempts  int
	NextTry   time.Time
	Delivered time.Time
	LastError string
}

// AddGuardOutbox queues a webhook delivery.
func (d *DB) AddGuardOutbox(ctx context.Context, it *GuardOutboxItem) error {
	_, err := d.sql.ExecContext(ctx, `INSERT INTO guard_outbox (id, org_id, body, created, attempts, next_try, delivered, last_error)
		VALUES ($1, $2, $3, $4, 0, $5, 0, '')`, it.ID, it.OrgID, it.Body, micro(it.Created), micro(it.NextTry))
	return dbErr("AddGuardOutbox", err)
}

// DueGuardOutbox returns up to limit undelivered items due at now, oldest
// first.
func (d *DB) DueGuardOutbox(ctx context.Context, now time.Time, limit int) ([]*GuardOutboxItem, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT id, org_id, body, created, attempts, next_try, delivered, last_error FROM guard_outbox
		WHERE delivered = 0 AND next_try <= $1 ORDER BY next_try, id LIMIT $2`, micro(now), limit)
	return guardOutboxRows("DueGuardOutbox", rows, err)
}

// GuardOutbox returns an organisation's latest limit outbox items, newest
// first.
func (d *DB) GuardOutbox(ctx context.Context, orgID string, limit int) ([]*GuardOutboxItem, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT id, org_id, body, created, attempts, next_try, delivered, last_error FROM guard_outbox
		WHERE org_id = $1 ORDER BY created DESC, id LIMIT $2`, orgID, limit)
	return guardOutboxRows("GuardOutbox", rows, err)
}

// guardOutboxRows scans the rows of a guard_outbox query (as shareRows
// does), so that each caller's SQL stays a constant at its QueryContext and
// needs no sqllint exception.
func guardOutboxRows(op string, rows *sql.Rows, err error) ([]*GuardOutboxItem, error) {
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	var out []*GuardOutboxItem
	for rows.Next() {
		var (
			it                    GuardOutboxItem
			created, next, delivd int64
		)
		if err := rows.Scan(&it.ID, &it.OrgID, &it.Body, &created, &it.Attempts, &next, &delivd, &it.LastError); err != nil {
			return nil, dbErr(op, err)
		}
		it.Created, it.NextTry, it.Delivered = fromMicro(created), fromMicro(next), fromMicro(delivd)
		out = append(out, &it)
	}
	return out, dbErr(op, rows.Err())
}

// ClaimGuardOutbox moves an item's next try from was to until, so that one
// node delivers it; it reports false when another node claimed it first.
func (d *DB) ClaimGuardOutbox(ctx context.Context, id string, was, until time.Time) (bool, error) {
	res, err := d.sql.ExecContext(ctx, `UPDATE guard_outbox SET next_try = $1 WHERE id = $2 AND next_try = $3 AND delivered = 0`, micro(until), id, micro(was))
	if err != nil {
		return false, dbErr("ClaimGuardOutbox", err)
	}
	n, err := res.RowsAffected()
	return n == 1, dbErr("ClaimGuardOutbox", err)
}

// FinishGuardOutbox records an attempt: delivered (non-zero delivered) or
// failed with lastError, to be retried at next.
func (d *DB) FinishGuardOutbox(ctx context.Context, id string, attempts int, next, delivered time.Time, lastError string) error {
	_, err := d.sql.ExecContext(ctx, `UPDATE guard_outbox SET attempts = $1, next_try = $2, delivered = $3, last_error = $4 WHERE id = $5`,
		attempts, micro(next), micro(delivered), lastError, id)
	return dbErr("FinishGuardOutbox", err)
}

// GuardCursor returns a named position in the audit log, or a
// ferry.NotExist error when none is stored.
func (d *DB) GuardCursor(ctx context.Context, name string) (int64, error) {
	var seq int64
	err := d.sql.QueryRowContext(ctx, `SELECT seq FROM guard_cursor WHERE name = $1`, name).Scan(&seq)
	return seq, dbErr("GuardCursor", err)
}

// MoveGuardCursor moves a named cursor from was to to (creating it when
// create is set); it reports false when another node moved it first.
func (d *DB) MoveGuardCursor(ctx context.Context, name string, was, to int64, create bool) (bool, error) {
	var (
		res sql.Result
		err error
	)
	if create {
		res, err = d.sql.ExecContext(ctx, `INSERT INTO guard_cursor (name, seq) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, to)
	} else {
		res, err = d.sql.ExecContext(ctx, `UPDATE guard_cursor SET seq = $1 WHERE name = $2 AND seq = $3`, to, name, was)
	}
	if err != nil {
		return false, dbErr("MoveGuardCursor", err)
	}
	n, err := res.RowsAffected()
	return n == 1, dbErr("MoveGuardCursor", err)
}

// GuardAlerts calls fn, in sequence order, for each audit record with
// from <= seq < to whose action starts with "alert.".
func (d *DB) GuardAlerts(ctx context.Context, from, to int64, fn func(*AuditRow) error) error {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+auditCols+` FROM audit_records WHERE seq >= $1 AND seq < $2 AND substr(action, 1, 6) = 'alert.' ORDER BY seq`, from, to)
	if err != nil {
		return dbErr("GuardAlerts", err)
	}
	return scanAuditRows("GuardAlerts", rows, fn)
}

// AdminEmails returns the addresses of an organisation's enabled
// administrators, or of the server administrators when orgID is "".
func (d *DB) AdminEmails(ctx context.Context, orgID string) ([]string, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT email FROM users WHERE disabled = 0
		AND (($1 = '' AND server_admin = 1) OR ($1 <> '' AND org_id = $1 AND role = 'admin')) ORDER BY email`, orgID)
	if err != nil {
		return nil, dbErr("AdminEmails", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			return nil, dbErr("AdminEmails", err)
		}
		out = append(out, e)
	}
	return out, dbErr("AdminEmails", rows.Err())
}
