package db

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"time"

	"ferry.dev/ferry/internal/ferry"
)

// The audit tables hold the transparency log of package audit: one row per
// record (its canonical JSON in data, plus copies of the fields queries filter
// on), the tlog stored hashes, and signed checkpoints. This file only stores
// and fetches them; hashing, signing and verification live in internal/audit.

// AuditRow is one stored audit record. Data is the canonical JSON of the
// ferry.Event; it is what the log hashes. The other fields are copies of the
// event's fields, kept in columns so that queries can use indexes.
type AuditRow struct {
	Seq     int64 // 0-based position in the log
	Time    time.Time
	Action  string
	Actor   string
	Org     string
	OrgID   string
	Party   string
	PartyID string
	Path    string
	Data    []byte
	// Token, Session and RemoteIP are filled on append for the impact
	// report's indexes (impact.go); queries of this file do not read them.
	Token    string
	Session  string
	RemoteIP []byte // RemoteKey(event's Remote)
}

// AuditHash is one tlog stored hash: Index is a tlog.StoredHashIndex.
type AuditHash struct {
	Index int64
	Hash  []byte
}

// AuditCheckpoint is a signed checkpoint of the log: the note text signed over
// its first Size records.
type AuditCheckpoint struct {
	Size int64
	Time time.Time
	Note string
}

// AuditFilter selects audit rows by their indexed columns. Empty fields and
// zero times match everything. The match is a superset: string comparisons
// follow the engine's collation, so callers re-check the decoded events.
type AuditFilter struct {
	Since        time.Time // inclusive
	Until        time.Time // exclusive
	Actor        string    // exact
	Action       string    // exact
	ActionPrefix string
	Org          string // organisation name or id
	Party        string // party name or id
	PathPrefix   string // plain string prefix of the path
}

const auditCols = `seq, time, action, actor, org, org_id, party, party_id, path, data`

// AuditSize returns the number of records in the audit log: one more than the
// highest sequence number stored, 0 when empty.
func (d *DB) AuditSize(ctx context.Context) (int64, error) {
	n, err := auditSize(ctx, d.sql)
	return n, dbErr("AuditSize", err)
}

func auditSize(ctx context.Context, ex execer) (int64, error) {
	var n int64
	err := ex.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), -1) + 1 FROM audit_records`).Scan(&n)
	return n, err
}

// AuditAppend stores records (with consecutive sequence numbers starting at
// firstSeq) and the stored hashes they add to the tree, in one transaction.
// It fails with ferry.Exist, storing nothing, when the log does not hold
// exactly firstSeq records: another writer appended first.
func (d *DB) AuditAppend(ctx context.Context, firstSeq int64, recs []AuditRow, hashes []AuditHash) error {
	const op = "db.AuditAppend"
	for i := range recs {
		if recs[i].Seq != firstSeq+int64(i) {
			return ferry.Errorf(op, ferry.Invalid, "record %d has sequence number %d, want %d", i, recs[i].Seq, firstSeq+int64(i))
		}
	}
	return d.tx(ctx, func(tx *sql.Tx) error {
		n, err := auditSize(ctx, tx)
		if err != nil {
			return dbErr("AuditAppend", err)
		}
		if n != firstSeq {
			return ferry.Errorf(op, ferry.Exist, "audit log holds %d records, appending at %d", n, firstSeq)
		}
		if d.dialect == Postgres {
			err = auditAppendPG(ctx, tx, recs, hashes)
		} else {
			err = auditAppendSQLite(ctx, tx, recs, hashes)
		}
		return dbErr("AuditAppend", err)
	})
}

const (
	auditInsertRecord = `INSERT INTO audit_records (` + auditCols + `, token, session, remote_ip) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`
	auditInsertHash   = `INSERT INTO audit_hashes (idx, hash) VALUES ($1, $2)`
)

// auditAppendSQLite inserts row by row through prepared statements: SQLite
// runs in-process, so a statement costs microseconds.
func auditAppendSQLite(ctx context.Context, tx *sql.Tx, recs []AuditRow, hashes []AuditHash) error {
	rs, err := tx.PrepareContext(ctx, auditInsertRecord)
	if err != nil {
		return err
	}
	defer rs.Close()
	for i := range recs {
		r := &recs[i]
		if _, err := rs.ExecContext(ctx, r.Seq, micro(r.Time), r.Action, r.Actor, r.Org, r.OrgID, r.Party, r.PartyID, r.Path, r.Data, r.Token, r.Session, remoteIPCol(r.RemoteIP)); err != nil {
			return err
		}
	}
	hs, err := tx.PrepareContext(ctx, auditInsertHash)
	if err != nil {
		return err
	}
	defer hs.Close()
	for _, h := range hashes {
		if _, err := hs.ExecContext(ctx, h.Index, h.Hash); err != nil {
			return err
		}
	}
	return nil
}

// auditAppendPG inserts each table's rows with one statement over arrays:
// PostgreSQL is across a network, where a round trip per row would dominate.
func auditAppendPG(ctx context.Context, tx *sql.Tx, recs []AuditRow, hashes []AuditHash) error {
	const insRecs = `INSERT INTO audit_records (` + auditCols + `, token, session, remote_ip)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bytea[], $11::text[], $12::text[], $13::bytea[])`
	const insHashes = `INSERT INTO audit_hashes (idx, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])`
	if len(recs) > 0 {
		n := len(recs)
		seq, tm := make([]int64, n), make([]int64, n)
		action, actor, org, orgID := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		party, partyID, path := make([]string, n), make([]string, n), make([]string, n)
		data := make([][]byte, n)
		token, session, ip := make([]string, n), make([]string, n), make([][]byte, n)
		for i := range recs {
			r := &recs[i]
			seq[i], tm[i] = r.Seq, micro(r.Time)
			action[i], actor[i], org[i], orgID[i] = r.Action, r.Actor, r.Org, r.OrgID
			party[i], partyID[i], path[i], data[i] = r.Party, r.PartyID, r.Path, r.Data
			token[i], session[i], ip[i] = r.Token, r.Session, remoteIPCol(r.RemoteIP)
		}
		if _, err := tx.ExecContext(ctx, insRecs, seq, tm, action, actor, org, orgID, party, partyID, path, data, token, session, ip); err != nil {
			return err
		}
	}
	if len(hashes) > 0 {
		idx, hash := make([]int64, len(hashes)), make([][]byte, len(hashes))
		for i, h := range hashes {
			idx[i], hash[i] = h.Index, h.Hash
		}
		if _, err := tx.ExecContext(ctx, insHashes, idx, hash); err != nil {
			return err
		}
	}
	return nil
}

// AuditHashes returns the stored hashes with the given indexes, in the same
// order. A missing index is a ferry.NotExist error.
func (d *DB) AuditHashes(ctx context.Context, idx []int64) ([][]byte, error) {
	out := make([][]byte, len(idx))
	for i, x := range idx {
		if err := d.sql.QueryRowContext(ctx, `SELECT hash FROM audit_hashes WHERE idx = $1`, x).Scan(&out[i]); err != nil {
			return nil, dbErr("AuditHashes", fmt.Errorf("stored hash %d: %w", x, err))
		}
	}
	return out, nil
}

// AuditHashRange calls fn for each stored hash with lo <= index < hi, in index
// order. The hash slice is valid only during the call.
func (d *DB) AuditHashRange(ctx context.Context, lo, hi int64, fn func(index int64, hash []byte) error) error {
	rows, err := d.sql.QueryContext(ctx, `SELECT idx, hash FROM audit_hashes WHERE idx >= $1 AND idx < $2 ORDER BY idx`, lo, hi)
	if err != nil {
		return dbErr("AuditHashRange", err)
	}
	defer rows.Close()
	var (
		x int64
		h sql.RawBytes
	)
	for rows.Next() {
		if err := rows.Scan(&x, &h); err != nil {
			return dbErr("AuditHashRange", err)
		}
		if err := fn(x, h); err != nil {
			return err
		}
	}
	return dbErr("AuditHashRange", rows.Err())
}

// AuditScan calls fn for each record with from <= seq < to, in sequence
// order, stopping at the first error fn returns. The row, and its Data, are
// valid only during the call.
func (d *DB) AuditScan(ctx context.Context, from, to int64, fn func(*AuditRow) error) error {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+auditCols+` FROM audit_records WHERE seq >= $1 AND seq < $2 ORDER BY seq`, from, to)
	if err != nil {
		return dbErr("AuditScan", err)
	}
	return scanAuditRows("AuditScan", rows, fn)
}

// AuditQuery calls fn, in sequence order, for each record matching f's
// indexed columns (see AuditFilter). The row, and its Data, are valid only
// during the call.
func (d *DB) AuditQuery(ctx context.Context, f AuditFilter, fn func(*AuditRow) error) error {
	// Two constant statements, so that SQLite can use the index that fits:
	// (actor, time) when an actor is given, time otherwise.
	const byActor = `SELECT ` + auditCols + ` FROM audit_records
		WHERE actor = $1 AND time >= $2 AND time < $3
		AND ($4 = '' OR action = $4)
		AND ($5 = '' OR substr(action, 1, length($5)) = $5)
		AND ($6 = '' OR org_id = $6 OR org = $6)
		AND ($7 = '' OR party_id = $7 OR party = $7)
		AND ($8 = '' OR substr(path, 1, length($8)) = $8)
		ORDER BY seq`
	const byTime = `SELECT ` + auditCols + ` FROM audit_records
		WHERE time >= $1 AND time < $2
		AND ($3 = '' OR action = $3)
		AND ($4 = '' OR substr(action, 1, length($4)) = $4)
		AND ($5 = '' OR org_id = $5 OR org = $5)
		AND ($6 = '' OR party_id = $6 OR party = $6)
		AND ($7 = '' OR substr(path, 1, length($7)) = $7)
		ORDER BY seq`
	since, until := int64(math.MinInt64), int64(math.MaxInt64)
	if !f.Since.IsZero() {
		since = f.Since.UnixMicro()
	}
	if !f.Until.IsZero() {
		until = f.Until.UnixMicro()
	}
	var (
		rows *sql.Rows
		err  error
	)
	if f.Actor != "" {
		rows, err = d.sql.QueryContext(ctx, byActor, f.Actor, since, until, f.Action, f.ActionPrefix, f.Org, f.Party, f.PathPrefix)
	} else {
		rows, err = d.sql.QueryContext(ctx, byTime, since, until, f.Action, f.ActionPrefix, f.Org, f.Party, f.PathPrefix)
	}
	if err != nil {
		return dbErr("AuditQuery", err)
	}
	return scanAuditRows("AuditQuery", rows, fn)
}

func scanAuditRows(op string, rows *sql.Rows, fn func(*AuditRow) error) error {
	defer rows.Close()
	var (
		r    AuditRow
		tm   int64
		data sql.RawBytes
	)
	for rows.Next() {
		if err := rows.Scan(&r.Seq, &tm, &r.Action, &r.Actor, &r.Org, &r.OrgID, &r.Party, &r.PartyID, &r.Path, &data); err != nil {
			return dbErr(op, err)
		}
		r.Time, r.Data = fromMicro(tm), data
		if err := fn(&r); err != nil {
			return err
		}
	}
	return dbErr(op, rows.Err())
}

// SaveAuditCheckpoint stores a signed checkpoint, replacing any stored for
// the same size.
func (d *DB) SaveAuditCheckpoint(ctx context.Context, c *AuditCheckpoint) error {
	_, err := d.sql.ExecContext(ctx, `INSERT INTO audit_checkpoints (size, time, note) VALUES ($1, $2, $3)
		ON CONFLICT (size) DO UPDATE SET time = excluded.time, note = excluded.note`,
		c.Size, micro(c.Time), c.Note)
	return dbErr("SaveAuditCheckpoint", err)
}

// LatestAuditCheckpoint returns the stored checkpoint of the largest size, or
// a ferry.NotExist error when there is none.
func (d *DB) LatestAuditCheckpoint(ctx context.Context) (*AuditCheckpoint, error) {
	var (
		c  AuditCheckpoint
		tm int64
	)
	err := d.sql.QueryRowContext(ctx, `SELECT size, time, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1`).Scan(&c.Size, &tm, &c.Note)
	if err != nil {
		return nil, dbErr("LatestAuditCheckpoint", err)
	}
	c.Time = fromMicro(tm)
	return &c, nil
}
