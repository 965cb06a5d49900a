package sftpd

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowReader stands in for transfer.Download: each stream it opens returns
// the data from its offset, taking delay per Read call; it counts the
// streams opened (each would be an audit record).
type slowReader struct {
	data  []byte
	delay time.Duration
	opens atomic.Int32
}

func (r *slowReader) Read(ctx context.Context, offset, length int64) (io.ReadCloser, error) {
	r.opens.Add(1)
	return io.NopCloser(&slowStream{r: bytes.NewReader(r.data[offset : offset+length]), delay: r.delay}), nil
}

type slowStream struct {
	r     io.Reader
	delay time.Duration
}

func (s *slowStream) Read(p []byte) (int, error) {
	time.Sleep(s.delay)
	return s.r.Read(p)
}

// TestDownloadWaitsForASlowStream: reads handed over out of order by
// pkg/sftp's workers wait for the stream as long as it moves, however long
// that takes in all (a loaded server), so that a download stays one stream
// and one audit record; a read past a gap nobody fills reopens the stream
// after the wait.
func TestDownloadWaitsForASlowStream(t *testing.T) {
	const chunk = 1000
	data := make([]byte, 64*chunk)
	for i := range data {
		data[i] = byte(i * 7 / 3)
	}
	r := &slowReader{data: data, delay: 10 * time.Millisecond}
	d := newDownload(context.Background(), r, int64(len(data)), identity, nil)
	d.wait = 30 * time.Millisecond // less than 8 reads of 10 ms
	queue := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, chunk)
			for off := range queue {
				if rand.IntN(2) == 0 {
					time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
				}
				n, err := d.ReadAt(buf, int64(off))
				if err != nil || n != chunk || !bytes.Equal(buf, data[off:off+chunk]) {
					t.Errorf("ReadAt %d: %d, %v", off, n, err)
				}
			}
		}()
	}
	for off := 0; off < len(data); off += chunk {
		queue <- off
	}
	close(queue)
	wg.Wait()
	if n := r.opens.Load(); n != 1 {
		t.Fatalf("%d streams opened for one sequential download, want 1", n)
	}

	// A read past a gap that no request fills: the stream does not move,
	// so after the wait it is reopened there.
	r = &slowReader{data: data}
	d = newDownload(context.Background(), r, int64(len(data)), identity, nil)
	d.wait = 30 * time.Millisecond
	buf := make([]byte, chunk)
	if _, err := d.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if n, err := d.ReadAt(buf, 5*chunk); err != nil || n != chunk || !bytes.Equal(buf, data[5*chunk:6*chunk]) {
		t.Fatalf("read past a gap: %d, %v", n, err)
	}
	if el := time.Since(start); el < 25*time.Millisecond || el > 5*time.Second {
		t.Fatalf("read past a gap waited %v", el)
	}
	if n := r.opens.Load(); n != 2 {
		t.Fatalf("%d streams opened, want 2", n)
	}
	d.Close()
}
