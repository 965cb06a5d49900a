package audit

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
)

// Report is what Verify checked.
type Report struct {
	Records int64     // records read and checked
	Size    int64     // the tree size (equal to Records when Verify succeeds)
	Root    tlog.Hash // root hash of the tree, computed from the records
	// Checkpoint is the newest signed checkpoint that was verified, nil if
	// none was available. Records past Checkpoint.N were checked only for
	// internal consistency: a checkpoint covering them is signed within a
	// second of their append, so a gap means the writer stopped abruptly or
	// Verify ran while records were arriving.
	Checkpoint *Checkpoint
	// CheckpointTime is the signed time of Checkpoint.
	CheckpointTime time.Time
}

// VerifyError reports the first record at which the log fails verification.
// When the evidence cannot single out one record (a record edited together
// with its stored hash, or a checkpoint whose root does not match), it names
// the range [Seq, End] that must hold the first altered record.
type VerifyError struct {
	Seq    int64 // the first bad record
	End    int64 // the last record the evidence might point at; == Seq when exact
	Reason string
}

// Error implements error.
func (e *VerifyError) Error() string {
	if e.End > e.Seq {
		return fmt.Sprintf("records %d-%d: %s", e.Seq, e.End, e.Reason)
	}
	return fmt.Sprintf("record %d: %s", e.Seq, e.Reason)
}

// verifyChunk is how many records Verify reads per query.
const verifyChunk = 8192

type namedCheckpoint struct {
	source string
	c      *Checkpoint
	root   tlog.Hash // of the first c.N records, computed from the records
	seen   bool
}

// Verify checks the whole audit log in d against the checkpoints signed with
// v's key: the newest one in d, latestFile (the contents of the checkpoint
// file, nil if absent) and old (an earlier checkpoint an auditor kept, nil if
// none). It reads every record once, in order, and checks that:
//
//   - records are numbered 0, 1, 2… without gaps (a deleted or reordered row
//     fails), and each record's JSON carries its own number;
//   - the indexed columns equal the record's JSON (so that queries cannot be
//     made to miss a record);
//   - every stored tree hash equals the hash computed from the records;
//   - the root of the first N records, computed from the records alone,
//     equals the root each checkpoint signs for N, and no checkpoint names
//     more records than the log holds (truncation). For old, this proves that
//     the log only grew since old was signed.
//
// A failure is a ferry.Integrity error wrapping a *VerifyError that names the
// first bad record; a checkpoint that is not validly signed by v is a
// ferry.Integrity error of its own.
func Verify(ctx context.Context, d *db.DB, v note.Verifier, old []byte, latestFile []byte) (*Report, error) {
	const op = "audit.Verify"
	fail := func(seq, end int64, format string, args ...any) (*Report, error) {
		return nil, ferry.E(op, ferry.Integrity, &VerifyError{Seq: seq, End: end, Reason: fmt.Sprintf(format, args...)})
	}

	var cks []*namedCheckpoint
	addCheckpoint := func(source string, msg []byte) error {
		c, err := ParseCheckpoint(msg, v)
		if err != nil {
			return ferry.E(op, fmt.Errorf("%s: %w", source, err))
		}
		cks = append(cks, &namedCheckpoint{source: source, c: c})
		return nil
	}
	if c, err := d.LatestAuditCheckpoint(ctx); err == nil {
		if err := addCheckpoint("checkpoint in the database", []byte(c.Note)); err != nil {
			return nil, err
		}
	} else if ferry.KindOf(err) != ferry.NotExist {
		return nil, ferry.E(op, err)
	}
	if latestFile != nil {
		if err := addCheckpoint("checkpoint file", latestFile); err != nil {
			return nil, err
		}
	}
	if old != nil {
		if err := addCheckpoint("old checkpoint", old); err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(cks, func(a, b *namedCheckpoint) int { return cmp.Compare(a.c.N, b.c.N) })

	size, err := d.AuditSize(ctx)
	if err != nil {
		return nil, ferry.E(op, err)
	}

	// Rows before record 0 are not part of the log; a query would show them.
	var stray *int64
	err = d.AuditScan(ctx, math.MinInt64, 0, func(r *db.AuditRow) error {
		stray = &r.Seq
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, ferry.E(op, err)
	}
	if stray != nil {
		return fail(*stray, *stray, "row with a negative sequence number is not part of the log")
	}

	var (
		f      frontier
		stored []tlog.Hash // produced for the current record
		ev     ferry.Event
		ci     int // next checkpoint whose root is due
		verr   *VerifyError
	)
	// A checkpoint of N records is due once N records are in.
	collect := func() {
		for ci < len(cks) && cks[ci].c.N == f.n {
			cks[ci].root, cks[ci].seen = f.root(), true
			ci++
		}
	}
	collect()
	for lo := int64(0); lo < size; lo += verifyChunk {
		hi := min(lo+verifyChunk, size)
		// The stored hashes of records [lo, hi) are exactly the indexes
		// [StoredHashIndex(0, lo), StoredHashIndex(0, hi)).
		hlo, hhi := tlog.StoredHashIndex(0, lo), tlog.StoredHashIndex(0, hi)
		hs := make([]tlog.Hash, hhi-hlo)
		have := make([]bool, hhi-hlo)
		err := d.AuditHashRange(ctx, hlo, hhi, func(x int64, h []byte) error {
			if len(h) == tlog.HashSize {
				hs[x-hlo], have[x-hlo] = tlog.Hash(h), true
			}
			return nil
		})
		if err != nil {
			return nil, ferry.E(op, err)
		}
		err = d.AuditScan(ctx, lo, hi, func(r *db.AuditRow) error {
			n := f.n
			if r.Seq != n {
				verr = &VerifyError{Seq: n, End: n, Reason: "missing (deleted, or rows renumbered)"}
				return errStop
			}
			ev = ferry.Event{}
			if err := json.Unmarshal(r.Data, &ev); err != nil {
				verr = &VerifyError{Seq: n, End: n, Reason: "data is not a valid event: " + err.Error()}
				return errStop
			}
			if ev.Seq != n {
				verr = &VerifyError{Seq: n, End: n, Reason: fmt.Sprintf("data says it is record %d", ev.Seq)}
				return errStop
			}
			if col := columnMismatch(r, &ev); col != "" {
				verr = &VerifyError{Seq: n, End: n, Reason: "column " + col + " does not match the record's data"}
				return errStop
			}
			stored = f.appendRecord(tlog.RecordHash(r.Data), stored[:0])
			base := tlog.StoredHashIndex(0, n) - hlo
			for j, h := range stored {
				if !have[base+int64(j)] || hs[base+int64(j)] != h {
					if j == 0 {
						verr = &VerifyError{Seq: n, End: n, Reason: "record hash does not match the stored hash (record edited)"}
					} else {
						// A subtree of 2^j records completed by record n.
						start := n + 1 - 1<<j
						verr = &VerifyError{Seq: start, End: n, Reason: "their stored tree hash does not match them (one was edited along with its record hash)"}
					}
					return errStop
				}
			}
			collect()
			return nil
		})
		if verr != nil {
			return nil, ferry.E(op, ferry.Integrity, verr)
		}
		if err != nil {
			return nil, ferry.E(op, err)
		}
		if f.n != hi {
			// Rows missing at the end of a chunk, or at the end of the log
			// below its highest record.
			return fail(f.n, f.n, "missing (deleted, or rows renumbered)")
		}
	}

	// Checkpoints, smallest first: a mismatch is bounded below by the
	// largest checkpoint that matched.
	good := int64(0)
	for _, nc := range cks {
		if nc.c.N > size {
			return fail(size, size, "log truncated: the %s says %d records, the log has %d", nc.source, nc.c.N, size)
		}
		if !nc.seen || nc.root != nc.c.Hash {
			end := max(nc.c.N-1, good)
			if nc.source == "old checkpoint" {
				return fail(good, end, "the old checkpoint of %d records is not a prefix of this log", nc.c.N)
			}
			return fail(good, end, "the root of the first %d records does not match the %s", nc.c.N, nc.source)
		}
		good = nc.c.N
	}

	// Stored hashes past the end betray records deleted from the end.
	var extra *int64
	err = d.AuditHashRange(ctx, tlog.StoredHashCount(size), math.MaxInt64, func(x int64, _ []byte) error {
		extra = &x
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, ferry.E(op, err)
	}
	if extra != nil {
		return fail(size, size, "log truncated: stored hashes of later records remain")
	}

	rep := &Report{Records: f.n, Size: size, Root: f.root()}
	if len(cks) > 0 {
		rep.Checkpoint = cks[len(cks)-1].c
		rep.CheckpointTime = rep.Checkpoint.Time
	}
	return rep, nil
}

var errStop = errors.New("stop")

// columnMismatch names the first indexed column that differs from the
// decoded event, or returns "".
func columnMismatch(r *db.AuditRow, ev *ferry.Event) string {
	switch {
	case !r.Time.Equal(ev.Time) && !(r.Time.IsZero() && ev.Time.UnixMicro() == 0):
		return "time"
	case r.Action != ev.Action:
		return "action"
	case r.Actor != ev.Actor:
		return "actor"
	case r.Org != ev.Org:
		return "org"
	case r.OrgID != ev.OrgID:
		return "org_id"
	case r.Party != ev.Party:
		return "party"
	case r.PartyID != ev.PartyID:
		return "party_id"
	case r.Path != ev.Path:
		return "path"
	}
	return ""
}
