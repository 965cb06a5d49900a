package db

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// The mail outbox (migration 0008). A message is stored before anything is
// sent; the delivery loop of any node claims due rows with a compare-and-set
// lease, sends, and records progress per recipient, so an SMTP outage or a
// crash loses nothing and two nodes never send the same row.

// Outbox row states.
const (
	MailQueued = "queued" // waiting for (another) delivery attempt
	MailSent   = "sent"   // every recipient accepted or permanently refused, at least one accepted
	MailFailed = "failed" // gave up: every recipient refused, or retries ran out
)

// OutboxMail is one stored email.
type OutboxMail struct {
	ID          string
	Kind        string   // what the mail is about, e.g. "package.received"
	Recipients  []string // every address
	Pending     []string // addresses not yet delivered
	Failed      []string // "address<TAB>reason" of addresses refused for good
	Subject     string
	Text        string
	HTML        string
	MessageID   string // the Message-ID header, the same on every attempt
	Status      string
	Attempts    int
	LastError   string
	Created     time.Time
	NextAttempt time.Time
	Finished    time.Time
}

const outboxCols = `id, kind, recipients, pending, failed, subject, body_text, body_html, message_id, status, attempts, last_error, created, next_attempt, finished`

func joinLines(s []string) string { return strings.Join(s, "\n") }

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func scanOutbox(row interface{ Scan(...any) error }) (*OutboxMail, error) {
	var m OutboxMail
	var rcpts, pending, failed string
	var created, next, finished int64
	if err := row.Scan(&m.ID, &m.Kind, &rcpts, &pending, &failed, &m.Subject, &m.Text, &m.HTML, &m.MessageID, &m.Status, &m.Attempts, &m.LastError, &created, &next, &finished); err != nil {
		return nil, err
	}
	m.Recipients, m.Pending, m.Failed = splitLines(rcpts), splitLines(pending), splitLines(failed)
	m.Created, m.NextAttempt, m.Finished = fromMicro(created), fromMicro(next), fromMicro(finished)
	return &m, nil
}

// EnqueueMail stores a new queued email, due at m.NextAttempt (or at once).
// Every recipient starts pending.
func (d *DB) EnqueueMail(ctx context.Context, m *OutboxMail) error {
	next := m.NextAttempt
	if next.IsZero() {
		next = m.Created
	}
	_, err := d.sql.ExecContext(ctx, `INSERT INTO mail_outbox (`+outboxCols+`, lease_owner, lease_until)
		VALUES ($1, $2, $3, $3, '', $4, $5, $6, $7, $8, 0, '', $9, $10, 0, '', 0)`,
		m.ID, m.Kind, joinLines(m.Recipients), m.Subject, m.Text, m.HTML, m.MessageID, MailQueued, micro(m.Created), micro(next))
	return dbErr("EnqueueMail", err)
}

// Mail returns one outbox row.
func (d *DB) Mail(ctx context.Context, id string) (*OutboxMail, error) {
	m, err := scanOutbox(d.sql.QueryRowContext(ctx, `SELECT `+outboxCols+` FROM mail_outbox WHERE id = $1`, id))
	if err != nil {
		return nil, dbErr("Mail", err)
	}
	return m, nil
}

// The claim is one statement: rows that are queued, due and not leased get
// owner's lease until `until`; the outer conditions repeat the inner ones,
// so a row another node leased in the meantime is not taken. On PostgreSQL
// the candidates are picked once, in a materialized CTE, FOR UPDATE SKIP
// LOCKED (a plain "id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)" may run
// the subquery again for each row and so take every row, not n).
const (
	claimMailSQLite = `UPDATE mail_outbox SET lease_owner = $1, lease_until = $2
		WHERE id IN (SELECT id FROM mail_outbox WHERE status = 'queued' AND next_attempt <= $3 AND lease_until <= $3 ORDER BY next_attempt LIMIT $4)
		AND status = 'queued' AND lease_until <= $3
		RETURNING ` + outboxCols
	claimMailPostgres = `WITH picked AS MATERIALIZED (
			SELECT id AS pick FROM mail_outbox WHERE status = 'queued' AND next_attempt <= $3 AND lease_until <= $3
			ORDER BY next_attempt LIMIT $4 FOR UPDATE SKIP LOCKED)
		UPDATE mail_outbox SET lease_owner = $1, lease_until = $2
		FROM picked WHERE id = picked.pick AND status = 'queued' AND lease_until <= $3
		RETURNING ` + outboxCols
)

// ClaimMail leases up to limit due, queued rows to owner until until, and
// returns them. A row leased by another owner whose lease has not run out is
// never returned.
func (d *DB) ClaimMail(ctx context.Context, owner string, now, until time.Time, limit int) ([]*OutboxMail, error) {
	var rows *sql.Rows
	var err error
	if d.dialect == Postgres {
		rows, err = d.sql.QueryContext(ctx, claimMailPostgres, owner, micro(until), micro(now), limit)
	} else {
		rows, err = d.sql.QueryContext(ctx, claimMailSQLite, owner, micro(until), micro(now), limit)
	}
	if err != nil {
		return nil, dbErr("ClaimMail", err)
	}
	defer rows.Close()
	var out []*OutboxMail
	for rows.Next() {
		m, err := scanOutbox(rows)
		if err != nil {
			return nil, dbErr("ClaimMail", err)
		}
		out = append(out, m)
	}
	return out, dbErr("ClaimMail", rows.Err())
}

// MailProgress records, while owner holds the lease, which recipients are
// still pending and which failed for good, and extends the lease to until.
// It reports false if the lease was lost (the row is then someone else's).
func (d *DB) MailProgress(ctx context.Context, id, owner string, pending, failed []string, until time.Time) (bool, error) {
	res, err := d.sql.ExecContext(ctx, `UPDATE mail_outbox SET pending = $3, failed = $4, lease_until = $5 WHERE id = $1 AND lease_owner = $2 AND status = 'queued'`,
		id, owner, joinLines(pending), joinLines(failed), micro(until))
	if err != nil {
		return false, dbErr("MailProgress", err)
	}
	n, err := res.RowsAffected()
	return n == 1, dbErr("MailProgress", err)
}

// FinishMail marks a row owner holds as sent or failed (status), releasing
// the lease.
func (d *DB) FinishMail(ctx context.Context, id, owner, status, lastError string, now time.Time) error {
	res, err := d.sql.ExecContext(ctx, `UPDATE mail_outbox SET status = $3, last_error = $4, finished = $5, attempts = attempts + 1, lease_owner = '', lease_until = 0
		WHERE id = $1 AND lease_owner = $2 AND status = 'queued'`, id, owner, status, lastError, micro(now))
	return affectedOne("FinishMail", res, err)
}

// RetryMail releases a row owner holds after a failed attempt, to be tried
// again at next.
func (d *DB) RetryMail(ctx context.Context, id, owner, lastError string, next time.Time) error {
	res, err := d.sql.ExecContext(ctx, `UPDATE mail_outbox SET attempts = attempts + 1, last_error = $3, next_attempt = $4, lease_owner = '', lease_until = 0
		WHERE id = $1 AND lease_owner = $2 AND status = 'queued'`, id, owner, lastError, micro(next))
	return affectedOne("RetryMail", res, err)
}

// ReleaseMail gives up owner's lease on a row without counting an attempt
// (the node is shutting down): any node may take it at once.
func (d *DB) ReleaseMail(ctx context.Context, id, owner string) error {
	res, err := d.sql.ExecContext(ctx, `UPDATE mail_outbox SET lease_owner = '', lease_until = 0 WHERE id = $1 AND lease_owner = $2 AND status = 'queued'`, id, owner)
	return affectedOne("ReleaseMail", res, err)
}

// NextMailDue returns when the earliest queued row is due (zero if none).
func (d *DB) NextMailDue(ctx context.Context) (time.Time, error) {
	var next int64
	err := d.sql.QueryRowContext(ctx, `SELECT COALESCE(MIN(CASE WHEN lease_until > next_attempt THEN lease_until ELSE next_attempt END), 0) FROM mail_outbox WHERE status = 'queued'`).Scan(&next)
	if err != nil {
		return time.Time{}, dbErr("NextMailDue", err)
	}
	return fromMicro(next), nil
}

// MailCounts returns how many rows are in each state.
func (d *DB) MailCounts(ctx context.Context) (map[string]int64, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT status, COUNT(*) FROM mail_outbox GROUP BY status`)
	if err != nil {
		return nil, dbErr("MailCounts", err)
	}
	defer rows.Close()
	out := map[string]int64{MailQueued: 0, MailSent: 0, MailFailed: 0}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			return nil, dbErr("MailCounts", err)
		}
		out[s] = n
	}
	return out, dbErr("MailCounts", rows.Err())
}

// RecentMail lists the newest rows, newest first, without their bodies.
func (d *DB) RecentMail(ctx context.Context, limit int) ([]*OutboxMail, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+outboxCols+` FROM mail_outbox ORDER BY created DESC, id LIMIT $1`, limit)
	if err != nil {
		return nil, dbErr("RecentMail", err)
	}
	defer rows.Close()
	var out []*OutboxMail
	for rows.Next() {
		m, err := scanOutbox(rows)
		if err != nil {
			return nil, dbErr("RecentMail", err)
		}
		m.Text, m.HTML = "", ""
		out = append(out, m)
	}
	return out, dbErr("RecentMail", rows.Err())
}

// PurgeMail deletes rows finished (sent or failed) before cutoff, bodies and
// all, and returns how many.
func (d *DB) PurgeMail(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := d.sql.ExecContext(ctx, `DELETE FROM mail_outbox WHERE status <> 'queued' AND finished < $1`, micro(cutoff))
	if err != nil {
		return 0, dbErr("PurgeMail", err)
	}
	n, err := res.RowsAffected()
	return n, dbErr("PurgeMail", err)
}
