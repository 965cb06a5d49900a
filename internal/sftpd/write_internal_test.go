package sftpd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"

	"ferry.dev/ferry/internal/ferry"
)

// fakeStore stands in for transfer's resumable uploads: one upload, whose
// stored bytes grow by what each session read, kept even when the reader
// fails part-way (as WriteUpload keeps them); it reads slowly if asked.
type fakeStore struct {
	mu        sync.Mutex
	stored    []byte
	sessions  int
	readErr   error // the last session's read error
	completed []byte
	cancelled bool
	delay     time.Duration
}

func (f *fakeStore) beginPart(ctx context.Context, id string, offset int64) (uploadPart, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions++
	if offset != int64(len(f.stored)) {
		return nil, ferry.Errorf("fake.WriteUpload", ferry.Conflict, "the upload is at offset %d, not %d", len(f.stored), offset)
	}
	return &fakePart{f: f}, nil
}

// fakePart is one session's part: it collects the bytes and adds them to
// the store when finished, with or without a cause.
type fakePart struct {
	f    *fakeStore
	buf  bytes.Buffer
	done bool
}

func (p *fakePart) Write(b []byte) (int, error) {
	if p.done {
		panic("write after finish")
	}
	if p.f.delay > 0 {
		time.Sleep(p.f.delay)
	}
	return p.buf.Write(b)
}

func (p *fakePart) finish(cause error) (int64, error) {
	if p.done {
		panic("finished twice")
	}
	p.done = true
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	p.f.stored = append(p.f.stored, p.buf.Bytes()...)
	var err error
	if cause != nil {
		err = ferry.E("fake.WriteUpload", ferry.Invalid, "upload interrupted", cause)
	}
	p.f.readErr = err
	return int64(p.buf.Len()), err
}

func (f *fakeStore) completeUpload(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.completed = append([]byte{}, f.stored...)
	return nil
}

func (f *fakeStore) cancelUpload(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancelled, f.stored = true, nil
	return nil
}

func identity(err error) error { return err }

func newTestUpload(f *fakeStore) *upload {
	f.mu.Lock()
	start := int64(len(f.stored))
	f.mu.Unlock()
	u := newUpload(context.Background(), f, "/x", "id", start, nil, identity)
	u.resumed = start > 0
	u.keepEmpty = true
	return u
}

// TestUploadWindowUnderConcurrency feeds an upload the way pkg/sftp does:
// requests taken in order from a queue by 8 workers that each call WriteAt,
// so calls arrive shuffled. The content comes out in order, and the data held
// out of order never exceeds the window.
func TestUploadWindowUnderConcurrency(t *testing.T) {
	for _, delay := range []time.Duration{0, 200 * time.Microsecond} {
		fs := &fakeStore{delay: delay}
		u := newTestUpload(fs)
		u.window = 1 << 20
		const chunk = 64 << 10
		data := make([]byte, 400*chunk+123)
		for i := range data {
			data[i] = byte(i * 7 / 3)
		}
		queue := make(chan int)
		var wg sync.WaitGroup
		var maxHeld int
		var hmu sync.Mutex
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for off := range queue {
					if rand.IntN(3) == 0 {
						time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
					}
					end := min(off+chunk, len(data))
					if n, err := u.WriteAt(data[off:end], int64(off)); err != nil || n != end-off {
						t.Errorf("WriteAt %d: %d, %v", off, n, err)
					}
					u.mu.Lock()
					h := u.held
					u.mu.Unlock()
					hmu.Lock()
					maxHeld = max(maxHeld, h)
					hmu.Unlock()
				}
			}()
		}
		for off := 0; off < len(data); off += chunk {
			queue <- off
		}
		close(queue)
		wg.Wait()
		if err := u.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fs.completed, data) || fs.sessions != 1 {
			t.Fatalf("delay %v: content differs (%d bytes, want %d) or %d sessions", delay, len(fs.completed), len(data), fs.sessions)
		}
		if maxHeld > u.window {
			t.Fatalf("held %d bytes out of order, window %d", maxHeld, u.window)
		}
	}
}

// TestUploadWindowFullFails: a write that cannot fit while the data before it
// never arrives fails after the wait instead of blocking forever; the session
// fails, and what arrived in order stays stored, not completed.
func TestUploadWindowFullFails(t *testing.T) {
	fs := &fakeStore{}
	u := newTestUpload(fs)
	u.window, u.wait = 100, 50*time.Millisecond
	if _, err := u.WriteAt([]byte("0123456789"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := u.WriteAt(make([]byte, 80), 20); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := u.WriteAt(make([]byte, 80), 100); err != errTooFarAhead {
		t.Fatalf("write past a full window: %v", err)
	}
	if el := time.Since(start); el < 40*time.Millisecond || el > 5*time.Second {
		t.Fatalf("waited %v", el)
	}
	if err := u.Close(); err != errTooFarAhead {
		t.Fatalf("close: %v", err)
	}
	if fs.completed != nil || string(fs.stored) != "0123456789" || fs.cancelled {
		t.Fatalf("completed %q, stored %q, cancelled %v", fs.completed, fs.stored, fs.cancelled)
	}
}

// TestUploadNothingToResume: a session whose writes start past the upload's
// offset fails soon after the window is full (startWait, not windowWait), or
// at close, with a message saying so; the empty upload it created is
// discarded.
func TestUploadNothingToResume(t *testing.T) {
	t.Run("window full", func(t *testing.T) {
		fs := &fakeStore{}
		u := newTestUpload(fs)
		u.window, u.startWait = 100, 50*time.Millisecond
		u.WriteAt(make([]byte, 60), 1000)
		start := time.Now()
		_, err := u.WriteAt(make([]byte, 60), 1060)
		if se := (*statusError)(nil); !errors.As(err, &se) || se.code != sftp.ErrSSHFxOpUnsupported || !strings.Contains(se.msg, "nothing to resume at offset 1000") {
			t.Fatalf("write: %v", err)
		}
		if el := time.Since(start); el > time.Second {
			t.Fatalf("took %v", el)
		}
		if err := u.Close(); err == nil || !fs.cancelled || fs.completed != nil {
			t.Fatalf("close: %v, cancelled %v", err, fs.cancelled)
		}
	})
	t.Run("at close", func(t *testing.T) {
		fs := &fakeStore{}
		u := newTestUpload(fs)
		u.WriteAt([]byte("tail"), 11)
		if err := u.Close(); err == nil || !strings.Contains(err.Error(), "nothing to resume at offset 11") || !fs.cancelled {
			t.Fatalf("close: %v, cancelled %v", err, fs.cancelled)
		}
	})
	t.Run("resumed elsewhere", func(t *testing.T) {
		fs := &fakeStore{stored: []byte("01234")}
		u := newTestUpload(fs)
		u.WriteAt([]byte("tail"), 11)
		if err := u.Close(); err == nil || !strings.Contains(err.Error(), "continues at offset 5, not 11") || fs.cancelled || string(fs.stored) != "01234" {
			t.Fatalf("close: %v, cancelled %v, stored %q", err, fs.cancelled, fs.stored)
		}
		u = newTestUpload(fs)
		if _, err := u.WriteAt([]byte("0"), 0); err == nil || !strings.Contains(err.Error(), "continues at offset 5") {
			t.Fatalf("write before the offset: %v", err)
		}
		u.Close()
		if fs.cancelled || string(fs.stored) != "01234" {
			t.Fatalf("cancelled %v, stored %q", fs.cancelled, fs.stored)
		}
	})
}

// TestUploadTransferErrorThenResume: when the session drops with the handle
// open, pkg/sftp calls TransferError then Close: nothing is completed, the
// bytes written in order stay, and a second session continues from them.
func TestUploadTransferErrorThenResume(t *testing.T) {
	fs := &fakeStore{}
	u := newTestUpload(fs)
	u.WriteAt([]byte("complete-"), 0)
	u.WriteAt([]byte("content"), 20) // past a gap: lost
	u.TransferError(io.ErrUnexpectedEOF)
	if err := u.Close(); err != errUploadAborted {
		t.Fatalf("close after transfer error: %v", err)
	}
	if fs.completed != nil || string(fs.stored) != "complete-" || fs.readErr == nil {
		t.Fatalf("completed %q, stored %q, read error %v", fs.completed, fs.stored, fs.readErr)
	}
	u = newTestUpload(fs)
	if u.start != 9 {
		t.Fatalf("resumed at %d", u.start)
	}
	u.WriteAt([]byte("looking"), 9)
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	if string(fs.completed) != "complete-looking" || fs.sessions != 2 {
		t.Fatalf("completed %q in %d sessions", fs.completed, fs.sessions)
	}
}

// TestUploadAbortBeforeWrites: a session that dies before a byte arrived
// leaves nothing behind.
func TestUploadAbortBeforeWrites(t *testing.T) {
	fs := &fakeStore{}
	u := newTestUpload(fs)
	u.abort()
	if err := u.Close(); err != errUploadAborted || !fs.cancelled || fs.sessions != 0 {
		t.Fatalf("close: %v, cancelled %v, %d sessions", err, fs.cancelled, fs.sessions)
	}
}

// TestUploadCloseWithoutWrites: truncate (keepEmpty) creates the empty file;
// an open without truncate of an existing file, or of an unfinished upload,
// changes nothing.
func TestUploadCloseWithoutWrites(t *testing.T) {
	fs := &fakeStore{}
	u := newTestUpload(fs)
	if err := u.Close(); err != nil || fs.completed == nil || len(fs.completed) != 0 {
		t.Fatalf("truncate: %v, completed %q", err, fs.completed)
	}
	fs = &fakeStore{}
	u = newTestUpload(fs)
	u.keepEmpty = false
	if err := u.Close(); err != nil || fs.completed != nil || !fs.cancelled {
		t.Fatalf("no truncate: %v, completed %q, cancelled %v", err, fs.completed, fs.cancelled)
	}
	fs = &fakeStore{stored: []byte("part")}
	u = newTestUpload(fs)
	if err := u.Close(); err != nil || fs.completed != nil || fs.cancelled || fs.sessions != 0 {
		t.Fatalf("resumed: %v, completed %q, cancelled %v", err, fs.completed, fs.cancelled)
	}
}

// feedShuffled writes data to u in chunks the way pkg/sftp does: taken in
// order from a queue by 8 workers that each call WriteAt, so that calls
// arrive shuffled. It calls each after every write.
func feedShuffled(t *testing.T, u *upload, data []byte, chunk int, each func()) {
	queue := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for off := range queue {
				if rand.IntN(3) == 0 {
					time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
				}
				end := min(off+chunk, len(data))
				if n, err := u.WriteAt(data[off:end], int64(off)); err != nil || n != end-off {
					t.Errorf("WriteAt %d: %d, %v", off, n, err)
				}
				each()
			}
		}()
	}
	for off := 0; off < len(data); off += chunk {
		queue <- off
	}
	close(queue)
	wg.Wait()
}

// TestUploadSharedBudget: uploads running at once share the server-wide
// budget for out-of-order data: together they never hold more than it, each
// still completes with its content in order (a write that finds the budget
// full waits, and the next expected write never needs it), and everything
// taken is given back, also by an upload that fails while holding data.
func TestUploadSharedBudget(t *testing.T) {
	const limit, chunk = 256 << 10, 64 << 10
	shared := newBudget(limit)
	var peak int64
	var pmu sync.Mutex
	sample := func() {
		n := shared.inUse()
		pmu.Lock()
		peak = max(peak, n)
		pmu.Unlock()
	}
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fs := &fakeStore{delay: time.Duration(i%2) * 200 * time.Microsecond}
			u := newTestUpload(fs)
			u.shared = shared
			data := make([]byte, 200*chunk+i)
			for j := range data {
				data[j] = byte(j*7/3 + i)
			}
			feedShuffled(t, u, data, chunk, sample)
			if err := u.Close(); err != nil {
				t.Error(err)
				return
			}
			if !bytes.Equal(fs.completed, data) {
				t.Errorf("upload %d: content differs (%d bytes, want %d)", i, len(fs.completed), len(data))
			}
		}()
	}
	wg.Wait()
	if peak > limit {
		t.Fatalf("held %d bytes out of order in all, budget %d", peak, limit)
	}
	if peak == 0 {
		t.Fatal("nothing was ever held out of order: the test tests nothing")
	}
	if n := shared.inUse(); n != 0 {
		t.Fatalf("%d bytes still taken after every upload closed", n)
	}

	// One upload holds the whole budget past a gap; another's write ahead
	// waits for it, and gets it when the first fails (its data dropped).
	a, b := newTestUpload(&fakeStore{}), newTestUpload(&fakeStore{})
	a.shared, b.shared = shared, shared
	if _, err := a.WriteAt(make([]byte, limit), 10); err != nil {
		t.Fatal(err)
	}
	b.WriteAt([]byte("0123456789"), 0)
	done := make(chan error, 1)
	go func() {
		_, err := b.WriteAt(make([]byte, 10), 20)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a write ahead did not wait for the full budget: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	a.abort()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := shared.inUse(); n != 10 {
		t.Fatalf("%d bytes taken, want the 10 b holds", n)
	}
	b.WriteAt(make([]byte, 10), 10)
	if n := shared.inUse(); n != 0 {
		t.Fatalf("%d bytes taken after b's gap was filled", n)
	}
	a.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}
