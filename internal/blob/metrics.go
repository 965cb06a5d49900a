package blob

import "context"

// WithMetrics returns a Backend that behaves like b and reports bytes moved:
// onWrite(n) after every Write of n > 0 bytes to a blob, and onRead(n) after
// every ReadAt returning n > 0 bytes. Bytes written to a blob that is later
// aborted are counted too. Either function may be nil. Both may be called from
// many goroutines at once.
//
// It is the model for decorators: wrap the interface, delegate everything,
// return b's errors unchanged.
func WithMetrics(b Backend, onWrite, onRead func(n int64)) Backend {
	if onWrite == nil {
		onWrite = func(int64) {}
	}
	if onRead == nil {
		onRead = func(int64) {}
	}
	return &metrics{Backend: b, onWrite: onWrite, onRead: onRead}
}

type metrics struct {
	Backend // Delete and List pass through
	onWrite func(int64)
	onRead  func(int64)
}

func (m *metrics) Create(ctx context.Context, id string) (Writer, error) {
	w, err := m.Backend.Create(ctx, id)
	if err != nil {
		return nil, err
	}
	return &countingWriter{Writer: w, count: m.onWrite}, nil
}

func (m *metrics) Open(ctx context.Context, id string) (Reader, error) {
	r, err := m.Backend.Open(ctx, id)
	if err != nil {
		return nil, err
	}
	return &countingReader{Reader: r, count: m.onRead}, nil
}

type countingWriter struct {
	Writer
	count func(int64)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.Writer.Write(p)
	if n > 0 {
		w.count(int64(n))
	}
	return n, err
}

type countingReader struct {
	Reader
	count func(int64)
}

func (r *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.Reader.ReadAt(p, off)
	if n > 0 {
		r.count(int64(n))
	}
	return n, err
}
