package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
)

const (
	// maxBatch bounds the records the writer gathers into one transaction
	// (a single AppendBatch call may exceed it; it is never split).
	maxBatch = 4096
	// checkpointInterval is the shortest time between two automatic
	// checkpoints.
	checkpointInterval = time.Second
	// commitTimeout bounds one transaction of the writer.
	commitTimeout = 30 * time.Second
	// maxRetries bounds how often a batch is retried after another writer
	// appended first.
	maxRetries = 3
)

// Log is the append side of the audit log. Appends from any number of
// goroutines are gathered by one writer goroutine and committed many to a
// transaction (group commit); a checkpoint is signed at most every second
// while records arrive, and at Close.
type Log struct {
	d        *db.DB
	signer   note.Signer
	file     string
	now      func() time.Time
	logger   *slog.Logger
	interval time.Duration

	mu     sync.RWMutex // read-held by senders on queue; write-held to close it
	closed bool
	queue  chan *request
	wdone  chan struct{} // closed when the writer has exited

	appends atomic.Int64
	commits atomic.Int64

	f frontier // the tree's right edge; owned by the writer (and Open)

	treeMu sync.Mutex
	tree   tlog.Tree // committed size and root

	ckMu   sync.Mutex
	last   *Checkpoint // newest checkpoint signed or found at Open; nil if none
	kick   chan struct{}
	stop   chan struct{}
	ckdone chan struct{}
}

// request is one Append or AppendBatch call waiting for the writer.
type request struct {
	evs   []ferry.Event // copies, Seq 0
	data  [][]byte      // their JSON, with "seq":0
	first int64         // set by the writer: Seq of evs[0]
	err   error         // set by the writer
	done  chan struct{}
}

// Open opens the audit log stored in d. Checkpoints are signed with signer,
// whose name is the log's origin, stored in d and, unless checkpointFile is
// empty, also written to checkpointFile, replaced atomically each time, so
// that an operator can copy it off the host. now stamps events and
// checkpoints (time.Now if nil); logger receives errors of the background
// checkpointer.
//
// Open refuses, with a ferry.Integrity error, a log that is shorter than or
// does not match its newest checkpoint (in d or in checkpointFile): signing
// new checkpoints on top of it would bury the evidence. `ferry audit verify`
// then says what is wrong.
func Open(ctx context.Context, d *db.DB, signer note.Signer, checkpointFile string, now func() time.Time, logger *slog.Logger) (*Log, error) {
	const op = "audit.Open"
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{
		d: d, signer: signer, file: checkpointFile, now: now, logger: logger,
		interval: checkpointInterval,
		queue:    make(chan *request, 1024),
		wdone:    make(chan struct{}),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		ckdone:   make(chan struct{}),
	}
	if checkpointFile != "" {
		if err := os.MkdirAll(filepath.Dir(checkpointFile), 0o755); err != nil {
			return nil, ferry.E(op, ferry.Internal, err)
		}
	}
	if err := l.load(ctx); err != nil {
		return nil, ferry.E(op, err)
	}
	if err := l.checkLast(ctx); err != nil {
		return nil, ferry.E(op, err)
	}
	l.tree = tlog.Tree{N: l.f.n, Hash: l.f.root()}
	go l.writer()
	go l.checkpointer()
	return l, nil
}

// load reads the log's size and right edge from the database.
func (l *Log) load(ctx context.Context) error {
	n, err := l.d.AuditSize(ctx)
	if err != nil {
		return err
	}
	if n < 0 {
		return ferry.Errorf("audit.load", ferry.Integrity, "audit log's last sequence number is %d: records were renumbered below 0 (run ferry audit verify)", n-1)
	}
	f := frontier{n: n}
	var idx []int64
	f.subtrees(func(_, _ int, x int64) { idx = append(idx, x) })
	hs, err := l.d.AuditHashes(ctx, idx)
	if err != nil {
		return err
	}
	for _, h := range hs {
		if len(h) != tlog.HashSize {
			return ferry.Errorf("audit.load", ferry.Integrity, "stored hash has %d bytes", len(h))
		}
		f.hashes = append(f.hashes, tlog.Hash(h))
	}
	l.f = f
	return nil
}

// hashReader serves stored hashes from the right edge, falling back to the
// database for any other.
func (l *Log) hashReader(ctx context.Context) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		var miss []int64
		var at []int
		for i, x := range idx {
			if h, ok := l.f.lookup(x); ok {
				out[i] = h
			} else {
				miss, at = append(miss, x), append(at, i)
			}
		}
		if len(miss) > 0 {
			hs, err := l.d.AuditHashes(ctx, miss)
			if err != nil {
				return nil, err
			}
			for j, h := range hs {
				if len(h) != tlog.HashSize {
					return nil, ferry.Errorf("audit.hashReader", ferry.Integrity, "stored hash %d has %d bytes", miss[j], len(h))
				}
				out[at[j]] = tlog.Hash(h)
			}
		}
		return out, nil
	})
}

// checkLast finds the newest checkpoint, in the database or the checkpoint
// file, and checks that the stored log extends it.
func (l *Log) checkLast(ctx context.Context) error {
	const op = "audit.Open"
	var cks []*Checkpoint
	if c, err := l.d.LatestAuditCheckpoint(ctx); err == nil {
		ck, err := parseUnverified([]byte(c.Note))
		if err != nil {
			return ferry.E(op, ferry.Integrity, "newest checkpoint in the database", err)
		}
		cks = append(cks, ck)
	} else if ferry.KindOf(err) != ferry.NotExist {
		return err
	}
	fileN := int64(-1)
	if l.file != "" {
		b, err := os.ReadFile(l.file)
		switch {
		case err == nil:
			ck, err := parseUnverified(b)
			if err != nil {
				return ferry.E(op, ferry.Integrity, "checkpoint file "+l.file, err)
			}
			cks = append(cks, ck)
			fileN = ck.N
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
	}
	for _, c := range cks {
		if c.Origin != l.signer.Name() {
			return ferry.Errorf(op, ferry.Integrity, "checkpoint is for log %q, but the audit key is for %q", c.Origin, l.signer.Name())
		}
		if c.N > l.f.n {
			return ferry.Errorf(op, ferry.Integrity, "audit log has %d records but a signed checkpoint says %d: it was truncated (run ferry audit verify)", l.f.n, c.N)
		}
		h, err := tlog.TreeHash(c.N, l.hashReader(ctx))
		if err != nil {
			return err
		}
		if h != c.Hash {
			return ferry.Errorf(op, ferry.Integrity, "the first %d records of the audit log do not match their signed checkpoint (run ferry audit verify)", c.N)
		}
		if l.last == nil || c.N > l.last.N {
			l.last = c
		}
	}
	// Keep the file at least as new as the database.
	if l.file != "" && l.last != nil && fileN < l.last.N {
		if err := writeFileAtomic(l.file, l.last.Note, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ErrClosed is the error of appending to a closed Log.
var ErrClosed = ferry.E("audit.Append", ferry.Unavailable, "audit log is closed")

// Append appends ev to the log. It sets ev.Time from the Log's clock if it is
// zero (and rounds it to the microsecond, in UTC), and, once the record is
// committed, ev.Seq to its position in the log (from 0). It returns when the
// record is durably committed to the database, or with an error. If ctx ends
// while Append waits for the commit, Append returns ctx.Err() and the record
// may still be committed (ev.Seq is then not set).
func (l *Log) Append(ctx context.Context, ev *ferry.Event) error {
	return l.AppendBatch(ctx, []*ferry.Event{ev})
}

// AppendBatch appends events as Append does, in one transaction, with
// consecutive sequence numbers in the order given.
func (l *Log) AppendBatch(ctx context.Context, evs []*ferry.Event) error {
	const op = "audit.Append"
	if len(evs) == 0 {
		return nil
	}
	r := &request{evs: make([]ferry.Event, len(evs)), data: make([][]byte, len(evs)), done: make(chan struct{})}
	for i, ev := range evs {
		if ev.Time.IsZero() {
			ev.Time = l.now()
		}
		ev.Time = ev.Time.UTC().Truncate(time.Microsecond)
		r.evs[i] = *ev
		r.evs[i].Seq = 0
		b, err := json.Marshal(&r.evs[i])
		if err != nil {
			return ferry.E(op, ferry.Invalid, err)
		}
		if !bytes.HasPrefix(b, []byte(zeroSeq+",")) {
			return ferry.Errorf(op, ferry.Internal, "event JSON does not start with %s", zeroSeq)
		}
		r.data[i] = b
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	select {
	case l.queue <- r:
		l.mu.RUnlock()
	case <-ctx.Done():
		l.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if r.err != nil {
		return ferry.E(op, r.err)
	}
	for i, ev := range evs {
		ev.Seq = r.first + int64(i)
	}
	return nil
}

// Appends returns the number of records this Log has appended since Open,
// for metrics.
func (l *Log) Appends() int64 { return l.appends.Load() }

// Commits returns the number of transactions this Log has committed since
// Open: Appends()/Commits() is the mean group-commit batch.
func (l *Log) Commits() int64 { return l.commits.Load() }

// Size returns the number of committed records in the log.
func (l *Log) Size() int64 {
	l.treeMu.Lock()
	defer l.treeMu.Unlock()
	return l.tree.N
}

// Close stops accepting appends, commits those already queued, signs a
// final checkpoint if records arrived since the last one, and stops the
// background goroutines. It does not close the database.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.queue)
	l.mu.Unlock()
	<-l.wdone
	close(l.stop)
	<-l.ckdone
	if l.Size() == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	_, err := l.Checkpoint(ctx)
	return err
}

// writer gathers queued requests into batches and commits them.
func (l *Log) writer() {
	defer close(l.wdone)
	for r := range l.queue {
		batch, n := []*request{r}, len(r.data)
		// The first sender woke this goroutine and handed it its CPU:
		// yield so that other ready callers can queue their records and
		// share the transaction, for as long as more keep arriving.
		for more := true; more && n < maxBatch; {
			runtime.Gosched()
			more = false
		gather:
			for n < maxBatch {
				select {
				case r, ok := <-l.queue:
					if !ok {
						break gather
					}
					batch, n, more = append(batch, r), n+len(r.data), true
				default:
					break gather
				}
			}
		}
		l.commit(batch, n)
	}
}

// commit writes one batch and wakes its callers.
func (l *Log) commit(batch []*request, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	var (
		err   error
		first int64
	)
	for attempt := 0; ; attempt++ {
		first = l.f.n
		err = l.write(ctx, batch, n)
		if err == nil || ferry.KindOf(err) != ferry.Exist || attempt == maxRetries {
			break
		}
		// Another writer (another node, in a cluster) appended first:
		// reload the right edge and append after its records.
		l.logger.Warn("audit log grew under this writer; retrying", "size", first)
		if err = l.load(ctx); err != nil {
			break
		}
	}
	if err == nil {
		l.treeMu.Lock()
		l.tree = tlog.Tree{N: l.f.n, Hash: l.f.root()}
		l.treeMu.Unlock()
		l.appends.Add(int64(n))
		l.commits.Add(1)
	}
	for _, r := range batch {
		r.first, r.err = first, err
		first += int64(len(r.data))
		close(r.done)
	}
	if err == nil {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// write stores a batch at the end of the log, advancing the right edge, or
// leaves the right edge as it was.
func (l *Log) write(ctx context.Context, batch []*request, n int) error {
	saved := l.f.clone()
	first := l.f.n
	rows := make([]db.AuditRow, 0, n)
	hashes := make([]db.AuditHash, 0, 2*n+64)
	buf := make([]byte, 0, (2*n+64)*tlog.HashSize)
	rd := l.hashReader(ctx)
	for _, r := range batch {
		for i, data := range r.data {
			seq := l.f.n
			data = withSeq(data, seq)
			stored, err := tlog.StoredHashesForRecordHash(seq, tlog.RecordHash(data), rd)
			if err != nil {
				l.f = saved
				return err
			}
			base := tlog.StoredHashIndex(0, seq)
			for j, h := range stored {
				if cap(buf)-len(buf) < tlog.HashSize {
					buf = make([]byte, 0, 64*tlog.HashSize)
				}
				buf = append(buf, h[:]...)
				hashes = append(hashes, db.AuditHash{Index: base + int64(j), Hash: buf[len(buf)-tlog.HashSize:]})
			}
			l.f.push(stored)
			ev := &r.evs[i]
			rows = append(rows, db.AuditRow{
				Seq: seq, Time: ev.Time, Action: ev.Action, Actor: ev.Actor,
				Org: ev.Org, OrgID: ev.OrgID, Party: ev.Party, PartyID: ev.PartyID, Path: ev.Path,
				Data: data, Token: ev.Token, Session: ev.Session, RemoteIP: db.RemoteKey(ev.Remote),
			})
		}
	}
	if err := l.d.AuditAppend(ctx, first, rows, hashes); err != nil {
		l.f = saved
		return err
	}
	return nil
}

const zeroSeq = `{"seq":0`

// withSeq returns the JSON of an event encoded with Seq 0, re-encoded with
// Seq seq: Seq is the first field, so only the prefix changes.
func withSeq(data []byte, seq int64) []byte {
	out := make([]byte, 0, len(data)+19)
	out = append(out, `{"seq":`...)
	out = strconv.AppendInt(out, seq, 10)
	return append(out, data[len(zeroSeq):]...)
}

// checkpointer signs a checkpoint after commits, at most once per interval.
func (l *Log) checkpointer() {
	defer close(l.ckdone)
	var lastRun time.Time
	for {
		select {
		case <-l.kick:
		case <-l.stop:
			return
		}
		if wait := l.interval - time.Since(lastRun); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-l.stop:
				t.Stop()
				return
			}
		}
		lastRun = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
		if _, err := l.Checkpoint(ctx); err != nil {
			l.logger.Error("audit checkpoint", "err", err)
		}
		cancel()
	}
}

// Checkpoint returns a signed checkpoint of the committed log. When records
// were committed since the last checkpoint it signs a new one, stores it in
// the database and writes it to the checkpoint file; otherwise it returns the
// last one.
func (l *Log) Checkpoint(ctx context.Context) (*Checkpoint, error) {
	const op = "audit.Checkpoint"
	l.ckMu.Lock()
	defer l.ckMu.Unlock()
	l.treeMu.Lock()
	tree := l.tree
	l.treeMu.Unlock()
	if l.last != nil && l.last.N >= tree.N {
		return l.last, nil
	}
	t := l.now().UTC().Truncate(time.Microsecond)
	msg, err := note.Sign(&note.Note{Text: formatCheckpoint(l.signer.Name(), tree, t)}, l.signer)
	if err != nil {
		return nil, ferry.E(op, ferry.Internal, err)
	}
	c := &Checkpoint{Origin: l.signer.Name(), N: tree.N, Hash: tree.Hash, Time: t, Note: msg}
	if err := l.d.SaveAuditCheckpoint(ctx, &db.AuditCheckpoint{Size: c.N, Time: t, Note: string(msg)}); err != nil {
		return nil, ferry.E(op, err)
	}
	if l.file != "" {
		if err := writeFileAtomic(l.file, msg, 0o644); err != nil {
			return nil, ferry.E(op, ferry.Internal, err)
		}
	}
	l.last = c
	return c, nil
}
