package sftpd

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"ferry.dev/ferry/internal/ferry"
)

// fakePut stands in for transfer.Put: it reads everything, slowly if asked,
// and keeps it only when the reader ended cleanly.
type fakePut struct {
	mu    sync.Mutex
	got   []byte
	err   error
	delay time.Duration
}

func (f *fakePut) put(ctx context.Context, path string, r io.Reader) (*ferry.File, error) {
	var buf bytes.Buffer
	b := make([]byte, 256<<10)
	for {
		n, err := r.Read(b)
		buf.Write(b[:n])
		if f.delay > 0 {
			time.Sleep(f.delay)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			f.mu.Lock()
			f.err = err
			f.mu.Unlock()
			return nil, ferry.E("fake.Put", ferry.Invalid, "upload interrupted", err)
		}
	}
	f.mu.Lock()
	f.got = buf.Bytes()
	f.mu.Unlock()
	return &ferry.File{Size: int64(buf.Len())}, nil
}

func identity(err error) error { return err }

// TestUploadWindowUnderConcurrency feeds an upload the way pkg/sftp does:
// requests taken in order from a queue by 8 workers that each call WriteAt,
// so calls arrive shuffled. The content comes out in order, and the data held
// out of order never exceeds the window.
func TestUploadWindowUnderConcurrency(t *testing.T) {
	for _, delay := range []time.Duration{0, 200 * time.Microsecond} {
		fp := &fakePut{delay: delay}
		u, err := startUpload(context.Background(), fp.put, "/x", identity)
		if err != nil {
			t.Fatal(err)
		}
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
		if !bytes.Equal(fp.got, data) {
			t.Fatalf("delay %v: content differs (%d bytes, want %d)", delay, len(fp.got), len(data))
		}
		if maxHeld > u.window {
			t.Fatalf("held %d bytes out of order, window %d", maxHeld, u.window)
		}
	}
}

// TestUploadWindowFullFails: a write that cannot fit while the data before it
// never arrives fails after the wait instead of blocking forever, and the
// upload is aborted.
func TestUploadWindowFullFails(t *testing.T) {
	fp := &fakePut{}
	u, err := startUpload(context.Background(), fp.put, "/x", identity)
	if err != nil {
		t.Fatal(err)
	}
	u.window, u.wait = 100, 50*time.Millisecond
	if _, err := u.WriteAt(make([]byte, 80), 10); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := u.WriteAt(make([]byte, 80), 90); err != errTooFarAhead {
		t.Fatalf("write past a full window: %v", err)
	}
	if el := time.Since(start); el < 40*time.Millisecond || el > 5*time.Second {
		t.Fatalf("waited %v", el)
	}
	if err := u.Close(); err != errTooFarAhead {
		t.Fatalf("close: %v", err)
	}
	if fp.got != nil || fp.err == nil {
		t.Fatalf("aborted upload was stored (%d bytes, err %v)", len(fp.got), fp.err)
	}
}

// TestUploadTransferError: when the session drops with the handle open,
// pkg/sftp calls TransferError then Close: nothing is stored.
func TestUploadTransferError(t *testing.T) {
	fp := &fakePut{}
	u, err := startUpload(context.Background(), fp.put, "/x", identity)
	if err != nil {
		t.Fatal(err)
	}
	u.WriteAt([]byte("complete-looking content"), 0)
	u.TransferError(io.ErrUnexpectedEOF)
	if err := u.Close(); err != errUploadAborted {
		t.Fatalf("close after transfer error: %v", err)
	}
	if fp.got != nil {
		t.Fatal("upload stored after the connection dropped")
	}
}

// TestUploadOpenErrors: Put's own checks (permission, missing folder) fail
// the open, before any data is sent.
func TestUploadOpenErrors(t *testing.T) {
	put := func(ctx context.Context, path string, r io.Reader) (*ferry.File, error) {
		return nil, ferry.E("transfer.Put", ferry.Permission, "you need \"write\" permission on /")
	}
	_, err := startUpload(context.Background(), put, "/x", identity)
	if ferry.KindOf(err) != ferry.Permission {
		t.Fatalf("open: %v", err)
	}
}
