package audit

import (
	"cmp"
	"context"
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
		seq := r.Seq
		stray = &seq
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
		ci     int         // next checkpoint whose root is due
	)
	// A checkpoint of N records is due once N records are in.
	collect := func() {
		for ci < len(cks) && cks[ci].c.N == f.n {
			cks[ci].root, cks[ci].seen = f.root(), true
			ci++
		}
	}
	collect()
	// One goroutine reads chunks of records while this one checks them.
	fctx, cancel := context.WithCancel(ctx)
	chunks, free := make(chan *chunk, 2), make(chan *chunk, 3)
	go fetchChunks(fctx, d, size, chunks, free)
	defer func() {
		// Stop the reader and wait for it, so that it is not using d
		// after Verify returns.
		cancel()
		for range chunks {
		}
	}()
	for c := range chunks {
		if c.err != nil {
			return nil, ferry.E(op, c.err)
		}
		for i := range c.rows {
			r := &c.rows[i]
			n := f.n
			if r.Seq != n {
				return fail(n, n, "missing (deleted, or rows renumbered)")
			}
			if why := checkCanonical(r); why != "" {
				return fail(n, n, "%s", why)
			}
			stored = f.appendRecord(tlog.RecordHash(r.Data), stored[:0])
			base := tlog.StoredHashIndex(0, n) - c.hlo
			for j, h := range stored {
				if !c.have[base+int64(j)] || c.hs[base+int64(j)] != h {
					if j == 0 {
						return fail(n, n, "record hash does not match the stored hash (record edited)")
					}
					// A subtree of 2^j records completed by record n.
					return fail(n+1-1<<j, n, "their stored tree hash does not match them (one was edited along with its record hash)")
				}
			}
			collect()
		}
		if f.n != c.hi {
			// Rows missing at the end of a chunk, or at the end of the log
			// below its highest record.
			return fail(f.n, f.n, "missing (deleted, or rows renumbered)")
		}
		select {
		case free <- c:
		default: // enough spares
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.n != size {
		return nil, ferry.Errorf(op, ferry.Internal, "read %d of %d records", f.n, size)
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

	// The indexed copies of a read's token, session and address (which the
	// impact report searches) must match the hashed record, or an edit
	// there could hide a read from the report.
	if err := VerifyReadColumns(ctx, d); err != nil {
		return nil, err
	}
	rep := &Report{Records: f.n, Size: size, Root: f.root()}
	if len(cks) > 0 {
		rep.Checkpoint = cks[len(cks)-1].c
		rep.CheckpointTime = rep.Checkpoint.Time
	}
	return rep, nil
}

var errStop = errors.New("stop")

// chunk is a run of records [lo, hi) with their stored hashes
// [hlo, StoredHashIndex(0, hi)), read ahead by fetchChunks.
type chunk struct {
	lo, hi int64
	hlo    int64
	hs     []tlog.Hash
	have   []bool
	rows   []db.AuditRow
	arena  []byte // holds the rows' Data
	err    error
}

// fetchChunks reads the records [0, size) and their stored hashes in chunks
// of verifyChunk, sending them in order on out, reusing chunks sent back on
// free, and closes out. It stops early if ctx ends or a read fails (the
// last chunk sent then carries the error).
func fetchChunks(ctx context.Context, d *db.DB, size int64, out chan<- *chunk, free <-chan *chunk) {
	defer close(out)
	for lo := int64(0); lo < size; lo += verifyChunk {
		var c *chunk
		select {
		case c = <-free:
		default:
			c = new(chunk)
		}
		c.lo, c.hi = lo, min(lo+verifyChunk, size)
		c.hlo = tlog.StoredHashIndex(0, c.lo)
		nh := int(tlog.StoredHashIndex(0, c.hi) - c.hlo)
		c.hs, c.have = slices.Grow(c.hs[:0], nh)[:nh], slices.Grow(c.have[:0], nh)[:nh]
		clear(c.have)
		c.rows, c.arena = c.rows[:0], c.arena[:0]
		c.err = d.AuditHashRange(ctx, c.hlo, c.hlo+int64(nh), func(x int64, h []byte) error {
			if len(h) == tlog.HashSize {
				c.hs[x-c.hlo], c.have[x-c.hlo] = tlog.Hash(h), true
			}
			return nil
		})
		if c.err == nil {
			c.err = d.AuditScan(ctx, c.lo, c.hi, func(r *db.AuditRow) error {
				c.arena = append(c.arena, r.Data...)
				c.rows = append(c.rows, *r)
				return nil
			})
		}
		// Point each row at its data only now: the arena may have moved.
		off := 0
		for i := range c.rows {
			n := len(c.rows[i].Data)
			c.rows[i].Data = c.arena[off : off+n : off+n]
			off += n
		}
		select {
		case out <- c:
		case <-ctx.Done():
			return
		}
		if c.err != nil {
			return
		}
	}
}
