package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"math"
	"net"
	"net/netip"
	"strings"
	"time"

	"ferry.dev/ferry/internal/ferry"
)

// The impact report's side of the audit tables (migration 0012): the reads
// of files, selected through partial indexes on the read records only, and
// the notifications drafted from a report. See docs/IMPACT.md.

// ReadAction is the audit action of every read of file content: the REST
// API, the web UI (zip downloads included), SFTP, share links and package
// downloads all read through internal/transfer, which records it. The
// partial indexes of migration 0012 and the queries below name it as the
// same constant.
const ReadAction = "file.read"

// RemoteKey returns the 16-byte form of a remote address as stored in
// audit_records.remote_ip: an IPv6 address, or an IPv4 address mapped into
// IPv6, so that byte order is address order and a CIDR is a range. The
// address may carry a port ("203.0.113.7:51234", "[2001:db8::1]:22") or a
// zone. Anything else ("unix", "system", "") gives an empty, non-nil slice.
func RemoteKey(remote string) []byte {
	a, ok := parseRemote(remote)
	if !ok {
		return []byte{}
	}
	b := a.As16()
	return b[:]
}

func parseRemote(remote string) (netip.Addr, bool) {
	if remote == "" {
		return netip.Addr{}, false
	}
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().WithZone(""), true
	}
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.WithZone(""), true
}

// PrefixRange returns the first and last 16-byte keys (RemoteKey) of a CIDR
// prefix: an IPv4 prefix is mapped into IPv6.
func PrefixRange(p netip.Prefix) (lo, hi []byte) {
	p = p.Masked()
	bits := p.Bits()
	a := p.Addr()
	if a.Is4() {
		bits += 96
	}
	b := a.As16()
	l, h := b, b
	for i := bits; i < 128; i++ {
		h[i/8] |= 1 << (7 - i%8)
	}
	return l[:], h[:]
}

// remoteIPCol is the stored value of a RemoteIP: never NULL, which marks the
// rows still to backfill.
func remoteIPCol(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// ImpactFilter selects read records for the impact report. Empty strings and
// a nil IP range match everything.
type ImpactFilter struct {
	Since, Until time.Time // [Since, Until); zero: unbounded
	Before       int64     // only records with seq < Before (a checkpoint's size); 0: all
	OrgID        string
	Actor        string
	Token        string
	Session      string
	IPLo, IPHi   []byte // inclusive range of RemoteKey values (PrefixRange)
}

// The read queries: one constant statement per leading index, so that each
// engine can use the index that fits (session, token, actor, address range,
// organisation, time — most selective first); every statement checks every
// filter. All take the same parameters:
//
//	$1 since, $2 until, $3 before, $4 actor, $5 token, $6 session, $7 org id,
//	$8 address filter on (0/1), $9 and $10 the address range.
const (
	readsHead = `SELECT ` + auditCols + ` FROM audit_records WHERE action = 'file.read' AND `
	readsRest = ` AND seq < $3
		AND ($4 = '' OR actor = $4) AND ($5 = '' OR token = $5) AND ($6 = '' OR session = $6)
		AND ($7 = '' OR org_id = $7) AND ($8 = 0 OR (remote_ip >= $9 AND remote_ip <= $10))
		ORDER BY time, seq`
	readsTime      = `time >= $1 AND time < $2`
	readsBySession = readsHead + `session = $6 AND ` + readsTime + readsRest
	readsByToken   = readsHead + `token = $5 AND ` + readsTime + readsRest
	readsByActor   = readsHead + `actor = $4 AND ` + readsTime + readsRest
	// "+time" keeps SQLite from preferring the time index to the address
	// range: without statistics it rates both ranges alike.
	readsByIP   = readsHead + `remote_ip >= $9 AND remote_ip <= $10 AND +time >= $1 AND +time < $2` + readsRest
	readsByOrg  = readsHead + `org_id = $7 AND ` + readsTime + readsRest
	readsByTime = readsHead + readsTime + readsRest
)

// readsQuery picks the statement for f and its arguments.
func readsQuery(f *ImpactFilter) (string, []any) {
	since, until, before := int64(math.MinInt64), int64(math.MaxInt64), int64(math.MaxInt64)
	if !f.Since.IsZero() {
		since = f.Since.UnixMicro()
	}
	if !f.Until.IsZero() {
		until = f.Until.UnixMicro()
	}
	if f.Before > 0 {
		before = f.Before
	}
	ipOn, lo, hi := int64(0), []byte{}, []byte{}
	if f.IPLo != nil && f.IPHi != nil {
		ipOn, lo, hi = 1, f.IPLo, f.IPHi
	}
	args := []any{since, until, before, f.Actor, f.Token, f.Session, f.OrgID, ipOn, lo, hi}
	switch {
	case f.Session != "":
		return readsBySession, args
	case f.Token != "":
		return readsByToken, args
	case f.Actor != "":
		return readsByActor, args
	case ipOn == 1:
		return readsByIP, args
	case f.OrgID != "":
		return readsByOrg, args
	}
	return readsByTime, args
}

// AuditReads calls fn, in time order, for each read record (ReadAction, any
// outcome) matching f's indexed columns. As with AuditQuery the match is a
// superset under the engine's collation: the caller decodes Data and checks
// again. The row, and its Data, are valid only during the call.
func (d *DB) AuditReads(ctx context.Context, f ImpactFilter, fn func(*AuditRow) error) error {
	q, args := readsQuery(&f)
	// sqllint: reviewed — q is one of the constant read statements readsQuery picks from
	rows, err := d.sql.QueryContext(ctx, q, args...)
	if err != nil {
		return dbErr("AuditReads", err)
	}
	return scanAuditRows("AuditReads", rows, fn)
}

// ExplainAuditReads returns the engine's plan for the AuditReads query of f,
// one line per plan step: SQLite's EXPLAIN QUERY PLAN details, or
// PostgreSQL's EXPLAIN text after an ANALYZE, with sequential scans disabled
// for the session (a small test table would otherwise always be scanned). For tests and the
// benchmark, which assert that the impact query runs on an index.
func (d *DB) ExplainAuditReads(ctx context.Context, f ImpactFilter) ([]string, error) {
	q, args := readsQuery(&f)
	conn, err := d.sql.Conn(ctx)
	if err != nil {
		return nil, dbErr("ExplainAuditReads", err)
	}
	defer conn.Close()
	var out []string
	if d.dialect == Postgres {
		if _, err := conn.ExecContext(ctx, `ANALYZE audit_records`); err != nil {
			return nil, dbErr("ExplainAuditReads", err)
		}
		if _, err := conn.ExecContext(ctx, `SET enable_seqscan = off`); err != nil {
			return nil, dbErr("ExplainAuditReads", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `RESET enable_seqscan`)
		// sqllint: reviewed — EXPLAIN of one of the constant read statements above
		rows, err := conn.QueryContext(ctx, `EXPLAIN `+q, args...)
		if err != nil {
			return nil, dbErr("ExplainAuditReads", err)
		}
		defer rows.Close()
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				return nil, dbErr("ExplainAuditReads", err)
			}
			out = append(out, line)
		}
		return out, dbErr("ExplainAuditReads", rows.Err())
	}
	// sqllint: reviewed — EXPLAIN of one of the constant read statements above
	rows, err := conn.QueryContext(ctx, `EXPLAIN QUERY PLAN `+q, args...)
	if err != nil {
		return nil, dbErr("ExplainAuditReads", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, parent, unused int64
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return nil, dbErr("ExplainAuditReads", err)
		}
		out = append(out, detail)
	}
	return out, dbErr("ExplainAuditReads", rows.Err())
}

// backfillBatch is how many rows BackfillAuditImpact updates per transaction.
const backfillBatch = 2000

// BackfillAuditImpact fills the token, session and remote_ip columns of the
// audit records written before migration 0012, from each record's JSON, and
// returns how many it filled. It is cheap when there is nothing to do (one
// lookup in a partial index) and safe to run concurrently with appends and
// with itself. The records' JSON, and so the log's hashes, are untouched.
func (d *DB) BackfillAuditImpact(ctx context.Context) (int64, error) {
	var total int64
	for {
		n := 0
		err := d.tx(ctx, func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, `SELECT seq, data FROM audit_records WHERE remote_ip IS NULL ORDER BY seq LIMIT 2000`)
			if err != nil {
				return err
			}
			type fill struct {
				seq            int64
				token, session string
				ip             []byte
			}
			var fills []fill
			for rows.Next() {
				var (
					seq  int64
					data []byte
					ev   struct{ Remote, Session, Token string }
				)
				if err := rows.Scan(&seq, &data); err != nil {
					rows.Close()
					return err
				}
				// A record that is not valid JSON is left for audit
				// verify to report; its columns stay empty.
				_ = json.Unmarshal(data, &ev)
				fills = append(fills, fill{seq, ev.Token, ev.Session, RemoteKey(ev.Remote)})
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			st, err := tx.PrepareContext(ctx, `UPDATE audit_records SET token = $1, session = $2, remote_ip = $3 WHERE seq = $4`)
			if err != nil {
				return err
			}
			defer st.Close()
			for _, f := range fills {
				if _, err := st.ExecContext(ctx, f.token, f.session, f.ip, f.seq); err != nil {
					return err
				}
			}
			n = len(fills)
			return nil
		})
		if err != nil {
			return total, dbErr("BackfillAuditImpact", err)
		}
		total += int64(n)
		if n < backfillBatch {
			return total, nil
		}
	}
}

// Draft states.
const (
	DraftOpen = "draft"
	DraftSent = "sent"
)

// ImpactDraft is a notification to one party drafted from an impact report,
// for an administrator to review, edit and send.
type ImpactDraft = ferry.ImpactDraft

const draftCols = `id, report, org_id, party_id, party, recipients, subject, body, state, checkpoint, created, created_by, sent, sent_by`

// CreateImpactDrafts stores drafts in one transaction.
func (d *DB) CreateImpactDrafts(ctx context.Context, drafts []*ImpactDraft) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		for _, x := range drafts {
			_, err := tx.ExecContext(ctx, `INSERT INTO impact_drafts (`+draftCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, '')`,
				x.ID, x.Report, x.OrgID, x.PartyID, x.Party, strings.Join(x.Recipients, "\n"), x.Subject, x.Body, DraftOpen, x.Checkpoint, micro(x.Created), x.CreatedBy)
			if err != nil {
				return dbErr("CreateImpactDrafts", err)
			}
		}
		return nil
	})
}

// ImpactDrafts lists drafts, newest report first: those of one organisation
// (all when orgID is empty), of one report when report is not empty.
func (d *DB) ImpactDrafts(ctx context.Context, orgID, report string) ([]*ImpactDraft, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+draftCols+` FROM impact_drafts
		WHERE ($1 = '' OR org_id = $1) AND ($2 = '' OR report = $2) ORDER BY created DESC, party, id LIMIT 1000`, orgID, report)
	if err != nil {
		return nil, dbErr("ImpactDrafts", err)
	}
	defer rows.Close()
	var out []*ImpactDraft
	for rows.Next() {
		x, err := scanDraft(rows)
		if err != nil {
			return nil, dbErr("ImpactDrafts", err)
		}
		out = append(out, x)
	}
	return out, dbErr("ImpactDrafts", rows.Err())
}

// ImpactDraftByID returns one draft.
func (d *DB) ImpactDraftByID(ctx context.Context, id string) (*ImpactDraft, error) {
	x, err := scanDraft(d.sql.QueryRowContext(ctx, `SELECT `+draftCols+` FROM impact_drafts WHERE id = $1`, id))
	return x, dbErr("ImpactDraftByID", err)
}

// UpdateImpactDraft replaces the recipients, subject and text of a draft not
// yet sent; a sent one is a ferry.Exist error.
func (d *DB) UpdateImpactDraft(ctx context.Context, id string, recipients []string, subject, body string) error {
	res, err := d.sql.ExecContext(ctx, `UPDATE impact_drafts SET recipients = $1, subject = $2, body = $3 WHERE id = $4 AND state = 'draft'`,
		strings.Join(recipients, "\n"), subject, body, id)
	if err != nil {
		return dbErr("UpdateImpactDraft", err)
	}
	return draftChanged("db.UpdateImpactDraft", res)
}

// MarkImpactDraftSent records that a draft was sent, once: a draft already
// sent is a ferry.Exist error, so that two administrators cannot send it
// twice.
func (d *DB) MarkImpactDraftSent(ctx context.Context, id, by string, at time.Time) error {
	res, err := d.sql.ExecContext(ctx, `UPDATE impact_drafts SET state = 'sent', sent = $1, sent_by = $2 WHERE id = $3 AND state = 'draft'`,
		micro(at), by, id)
	if err != nil {
		return dbErr("MarkImpactDraftSent", err)
	}
	return draftChanged("db.MarkImpactDraftSent", res)
}

func draftChanged(op string, res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return dbErr(op, err)
	}
	if n == 0 {
		return ferry.E(op, ferry.Exist, "no such draft, or it was already sent")
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanDraft(s scanner) (*ImpactDraft, error) {
	var (
		x             ImpactDraft
		rcpt          string
		created, sent int64
	)
	if err := s.Scan(&x.ID, &x.Report, &x.OrgID, &x.PartyID, &x.Party, &rcpt, &x.Subject, &x.Body, &x.State, &x.Checkpoint,
		&created, &x.CreatedBy, &sent, &x.SentBy); err != nil {
		return nil, err
	}
	if rcpt != "" {
		x.Recipients = strings.Split(rcpt, "\n")
	}
	x.Created = fromMicro(created)
	if sent != 0 {
		x.Sent = fromMicro(sent)
	}
	return &x, nil
}

// PartyNames returns the name and contacts of every party of an organisation
// (of all of them when orgID is empty), by party id, in one query: an impact
// report names up to thousands of parties.
func (d *DB) PartyNames(ctx context.Context, orgID string) (map[string]*ferry.Party, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT p.id, p.org_id, p.name, COALESCE(c.email, '') FROM parties p
		LEFT JOIN party_contacts c ON c.party_id = p.id WHERE ($1 = '' OR p.org_id = $1) ORDER BY p.id, c.email`, orgID)
	if err != nil {
		return nil, dbErr("PartyNames", err)
	}
	defer rows.Close()
	out := map[string]*ferry.Party{}
	for rows.Next() {
		var id, org, name, email string
		if err := rows.Scan(&id, &org, &name, &email); err != nil {
			return nil, dbErr("PartyNames", err)
		}
		p := out[id]
		if p == nil {
			p = &ferry.Party{ID: id, OrgID: org, Name: name, Contacts: []string{}}
			out[id] = p
		}
		if email != "" {
			p.Contacts = append(p.Contacts, email)
		}
	}
	return out, dbErr("PartyNames", rows.Err())
}

// ReopenImpactDraft turns a draft marked sent back into a draft, when the
// mail could not be queued after all.
func (d *DB) ReopenImpactDraft(ctx context.Context, id string) error {
	_, err := d.sql.ExecContext(ctx, `UPDATE impact_drafts SET state = 'draft', sent = 0, sent_by = '' WHERE id = $1`, id)
	return dbErr("ReopenImpactDraft", err)
}

// AuditReadColumns calls fn for every read record with the impact columns
// as stored and the record's JSON, in no particular order, so that a
// verifier can check that the columns agree with the hashed record: a column
// altered to hide a read from the report's filters must not go unnoticed.
// The slices are valid only during the call.
//
// remoteIP is nil for a record not yet backfilled (NULL).
func (d *DB) AuditReadColumns(ctx context.Context, fn func(seq int64, token, session string, remoteIP, data []byte) error) error {
	rows, err := d.sql.QueryContext(ctx, `SELECT seq, token, session, remote_ip IS NULL, COALESCE(remote_ip, $1), data FROM audit_records WHERE action = 'file.read'`, []byte{})
	if err != nil {
		return dbErr("AuditReadColumns", err)
	}
	defer rows.Close()
	var (
		seq            int64
		token, session string
		null           bool
		ip, data       sql.RawBytes
	)
	for rows.Next() {
		if err := rows.Scan(&seq, &token, &session, &null, &ip, &data); err != nil {
			return dbErr("AuditReadColumns", err)
		}
		key := []byte(ip)
		if null {
			key = nil
		} else if key == nil {
			key = []byte{}
		}
		if err := fn(seq, token, session, key, data); err != nil {
			return err
		}
	}
	return dbErr("AuditReadColumns", rows.Err())
}
