package sftpd

import (
	"context"
	"testing"
	"time"
)

// gatedStore is a fakeStore whose parts' finish waits for gate, after
// signalling entered: a part being recorded slowly.
type gatedStore struct {
	*fakeStore
	entered, gate chan struct{}
}

func (g *gatedStore) beginPart(ctx context.Context, id string, offset int64) (uploadPart, error) {
	p, err := g.fakeStore.beginPart(ctx, id, offset)
	if err != nil {
		return nil, err
	}
	return gatedPart{p, g}, nil
}

type gatedPart struct {
	uploadPart
	g *gatedStore
}

func (p gatedPart) finish(cause error) (int64, error) {
	close(p.g.entered)
	<-p.g.gate
	return p.uploadPart.finish(cause)
}

// TestUploadCloseWaitsForAbort: when the session ends, abort records the
// bytes written while pkg/sftp closes the handle; Close must wait for that
// record rather than take the upload for empty and cancel it, losing what
// was to stay resumable.
func TestUploadCloseWaitsForAbort(t *testing.T) {
	fs := &fakeStore{}
	gs := &gatedStore{fakeStore: fs, entered: make(chan struct{}), gate: make(chan struct{})}
	u := newUpload(context.Background(), gs, "/x", "id", 0, nil, identity)
	if _, err := u.WriteAt([]byte("kept"), 0); err != nil {
		t.Fatal(err)
	}
	go u.abort()
	<-gs.entered
	closed := make(chan error, 1)
	go func() { closed <- u.Close() }()
	select {
	case err := <-closed:
		close(gs.gate)
		t.Fatalf("Close returned (%v) while abort was still recording the part; cancelled %v", err, fs.cancelled)
	case <-time.After(100 * time.Millisecond):
	}
	close(gs.gate)
	if err := <-closed; err != errUploadAborted {
		t.Fatalf("Close: %v, want %v", err, errUploadAborted)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.cancelled || string(fs.stored) != "kept" || fs.completed != nil {
		t.Fatalf("cancelled %v, stored %q, completed %q", fs.cancelled, fs.stored, fs.completed)
	}
}
