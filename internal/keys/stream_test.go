//go:debug fips140=on

package keys

import (
	"bytes"
	"crypto/fips140"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"testing"

	"ferry.dev/ferry/internal/ferry"
)

var (
	testKey   = bytes.Repeat([]byte{0x42}, DataKeySize)
	testKeyID = [KeyIDSize]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
)

// testSizes are the plaintext sizes every round-trip test covers.
var testSizes = []int{0, 1, SegmentSize - 1, SegmentSize, SegmentSize + 1, 3*SegmentSize + 7}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func encrypt(t testing.TB, plain []byte, key []byte, keyID [KeyIDSize]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, key, keyID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := w.Written(); got != int64(len(plain)) {
		t.Fatalf("Written = %d, want %d", got, len(plain))
	}
	return buf.Bytes()
}

func open(t testing.TB, c []byte) *Reader {
	t.Helper()
	r, err := NewReader(bytes.NewReader(c), int64(len(c)), testKey, testKeyID)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestFIPSMode(t *testing.T) {
	if !fips140.Enabled() {
		t.Fatal("tests should run with fips140=on, as the server does")
	}
}

func TestRoundTrip(t *testing.T) {
	for _, size := range testSizes {
		plain := randomBytes(uint64(size), size)
		c := encrypt(t, plain, testKey, testKeyID)
		if want := CiphertextSize(int64(size)); int64(len(c)) != want {
			t.Errorf("size %d: ciphertext is %d bytes, CiphertextSize says %d", size, len(c), want)
		}
		if got, err := PlaintextSize(int64(len(c))); err != nil || got != int64(size) {
			t.Errorf("size %d: PlaintextSize = %d, %v", size, got, err)
		}
		r := open(t, c)
		if r.Size() != int64(size) {
			t.Errorf("size %d: Size = %d", size, r.Size())
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !bytes.Equal(got, plain) {
			t.Errorf("size %d: decrypted content differs", size)
		}
		// Through WriteTo, from a middle offset.
		if _, err := r.Seek(int64(size/3), io.SeekStart); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := io.Copy(&out, r); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), plain[size/3:]) {
			t.Errorf("size %d: WriteTo content differs", size)
		}
	}
}

// TestSmallWrites writes in pieces of awkward sizes, which must give the same
// ciphertext as one Write.
func TestSmallWrites(t *testing.T) {
	plain := randomBytes(7, 3*SegmentSize+7)
	want := encrypt(t, plain, testKey, testKeyID)
	for _, piece := range []int{1, 1000, SegmentSize - 1, SegmentSize, SegmentSize + 1, 2*SegmentSize + 3} {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, testKey, testKeyID)
		if err != nil {
			t.Fatal(err)
		}
		for p := plain; len(p) > 0; {
			n := min(piece, len(p))
			if m, err := w.Write(p[:n]); err != nil || m != n {
				t.Fatalf("Write = %d, %v", m, err)
			}
			p = p[n:]
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("writes of %d bytes: ciphertext differs from a single write", piece)
		}
	}
}

func TestRandomAccess(t *testing.T) {
	const size = 3*SegmentSize + 7
	plain := randomBytes(1, size)
	r := open(t, encrypt(t, plain, testKey, testKeyID))
	rng := rand.New(rand.NewPCG(2, 3))
	offsets := []int64{0, 1, SegmentSize - 1, SegmentSize, SegmentSize + 1, 2 * SegmentSize, size - 1, size, size + 10}
	for range 300 {
		offsets = append(offsets, rng.Int64N(size+1))
	}
	for _, off := range offsets {
		n := rng.IntN(2*SegmentSize + 2)
		p := make([]byte, n)
		got, err := r.ReadAt(p, off)
		wantN := max(0, min(int64(n), size-off))
		if int64(got) != wantN {
			t.Fatalf("ReadAt(%d bytes, %d) = %d, want %d", n, off, got, wantN)
		}
		if int64(n) > wantN && err != io.EOF || int64(n) <= wantN && err != nil {
			t.Fatalf("ReadAt(%d bytes, %d): err %v", n, off, err)
		}
		if !bytes.Equal(p[:got], plain[min(off, size):min(off, size)+int64(got)]) {
			t.Fatalf("ReadAt(%d bytes, %d): wrong bytes", n, off)
		}

		// Seek + Read, with every whence.
		whence := rng.IntN(3)
		var arg int64
		switch whence {
		case io.SeekStart:
			arg = off
		case io.SeekCurrent:
			cur, _ := r.Seek(0, io.SeekCurrent)
			arg = off - cur
		case io.SeekEnd:
			arg = off - size
		}
		if pos, err := r.Seek(arg, whence); err != nil || pos != off {
			t.Fatalf("Seek(%d, %d) = %d, %v; want %d", arg, whence, pos, err, off)
		}
		got2, err := io.ReadFull(r, p)
		if int64(got2) != wantN || !bytes.Equal(p[:got2], plain[min(off, size):min(off, size)+int64(got2)]) {
			t.Fatalf("Seek(%d)+Read(%d) = %d, %v", off, n, got2, err)
		}
	}
	if _, err := r.ReadAt(make([]byte, 1), -1); ferry.KindOf(err) != ferry.Invalid {
		t.Errorf("ReadAt at -1: %v, want Invalid", err)
	}
	if _, err := r.Seek(-1, io.SeekStart); ferry.KindOf(err) != ferry.Invalid {
		t.Errorf("Seek to -1: %v, want Invalid", err)
	}
}

func TestConcurrentReadAt(t *testing.T) {
	const size = 4*SegmentSize + 100
	plain := randomBytes(9, size)
	r := open(t, encrypt(t, plain, testKey, testKeyID))
	done := make(chan error)
	for g := range 4 {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(g), 0))
			p := make([]byte, 5000)
			for range 200 {
				off := rng.Int64N(size - int64(len(p)))
				if _, err := r.ReadAt(p, off); err != nil {
					done <- err
					return
				}
				if !bytes.Equal(p, plain[off:off+int64(len(p))]) {
					done <- errors.New("wrong bytes")
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestSizes(t *testing.T) {
	for _, tt := range []struct {
		plain, cipher int64
	}{
		{0, HeaderSize + 16},
		{1, HeaderSize + 17},
		{SegmentSize, HeaderSize + SegmentSize + 16},
		{SegmentSize + 1, HeaderSize + SegmentSize + 1 + 32},
		{5 * SegmentSize, HeaderSize + 5*(SegmentSize+16)},
	} {
		if got := CiphertextSize(tt.plain); got != tt.cipher {
			t.Errorf("CiphertextSize(%d) = %d, want %d", tt.plain, got, tt.cipher)
		}
		if got, err := PlaintextSize(tt.cipher); err != nil || got != tt.plain {
			t.Errorf("PlaintextSize(%d) = %d, %v; want %d", tt.cipher, got, err, tt.plain)
		}
	}
	for _, c := range []int64{-1, 0, HeaderSize, HeaderSize + 15, HeaderSize + SegmentSize + 16 + 1,
		HeaderSize + SegmentSize + 16 + 15, HeaderSize + SegmentSize + 16 + 16} {
		if _, err := PlaintextSize(c); ferry.KindOf(err) != ferry.Integrity {
			t.Errorf("PlaintextSize(%d): %v, want an Integrity error", c, err)
		}
	}
	if got := CiphertextSize(-1); got != -1 {
		t.Errorf("CiphertextSize(-1) = %d", got)
	}
	if got := CiphertextSize(math.MaxInt64 - 10); got != -1 {
		t.Errorf("CiphertextSize(MaxInt64-10) = %d, want -1 (overflow)", got)
	}
	// Near the int64 limit, a size either fits and round-trips or is -1.
	fits, tooLarge := 0, 0
	for p := int64(maxSegments-2) * SegmentSize; p < (maxSegments+3)*SegmentSize; p += 997 {
		c := CiphertextSize(p)
		if c == -1 {
			tooLarge++
			continue
		}
		fits++
		if got, err := PlaintextSize(c); c < p || err != nil || got != p {
			t.Fatalf("PlaintextSize(CiphertextSize(%d) = %d) = %d, %v", p, c, got, err)
		}
	}
	if fits == 0 || tooLarge == 0 {
		t.Errorf("near the limit: %d sizes fit, %d are too large; want both", fits, tooLarge)
	}
	// Every size round-trips near segment boundaries.
	for p := int64(0); p < 3*SegmentSize+40; p += 1 + p%4093 {
		c := CiphertextSize(p)
		if got, err := PlaintextSize(c); err != nil || got != p {
			t.Fatalf("PlaintextSize(CiphertextSize(%d)) = %d, %v", p, got, err)
		}
	}
	for _, tt := range []struct{ len, want int64 }{
		{0, -1}, {HeaderSize - 1, -1}, {HeaderSize, 0}, {HeaderSize + SegmentSize + 15, 0},
		{HeaderSize + SegmentSize + 16, 1}, {HeaderSize + 3*(SegmentSize+16) + 100, 3},
	} {
		if got := CompleteSegments(tt.len); got != tt.want {
			t.Errorf("CompleteSegments(%d) = %d, want %d", tt.len, got, tt.want)
		}
	}
}

func TestBadArguments(t *testing.T) {
	for _, key := range [][]byte{nil, make([]byte, 16), make([]byte, 33)} {
		if _, err := NewWriter(io.Discard, key, testKeyID); ferry.KindOf(err) != ferry.Invalid {
			t.Errorf("NewWriter with a %d-byte key: %v", len(key), err)
		}
		if _, err := NewReader(bytes.NewReader(nil), 40, key, testKeyID); ferry.KindOf(err) != ferry.Invalid {
			t.Errorf("NewReader with a %d-byte key: %v", len(key), err)
		}
	}
	if _, err := ResumeWriter(io.Discard, testKey, testKeyID, -1); ferry.KindOf(err) != ferry.Invalid {
		t.Errorf("ResumeWriter(-1): %v", err)
	}
	k, err := NewDataKey(nil)
	if err != nil || len(k) != DataKeySize {
		t.Fatalf("NewDataKey = %x, %v", k, err)
	}
	if _, err := NewDataKey(bytes.NewReader(make([]byte, 5))); ferry.KindOf(err) != ferry.Internal {
		t.Errorf("NewDataKey from a short reader: %v", err)
	}
}

func TestWriterErrors(t *testing.T) {
	w, err := NewWriter(io.Discard, testKey, testKeyID)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("x"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := w.Write([]byte("y")); err == nil {
		t.Error("Write after Close succeeded")
	}

	full := errors.New("disk full")
	fw := &failWriter{limit: HeaderSize + 100, err: ferry.E("blob.Put", ferry.NoSpace, full)}
	w, err = NewWriter(fw, testKey, testKeyID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Write(make([]byte, 3*SegmentSize))
	if ferry.KindOf(err) != ferry.NoSpace || !errors.Is(err, full) {
		t.Errorf("Write to a full store: %v, want the store's NoSpace error", err)
	}
	if _, err2 := w.Write([]byte("z")); err2 != err {
		t.Errorf("Write after an error: %v, want the same error", err2)
	}
	if err2 := w.Close(); err2 != err {
		t.Errorf("Close after an error: %v, want the same error", err2)
	}
}

// failWriter accepts limit bytes, writing them to buf, then fails.
type failWriter struct {
	buf   bytes.Buffer
	limit int
	err   error
}

func (f *failWriter) Write(p []byte) (int, error) {
	room := f.limit - f.buf.Len()
	if len(p) <= room {
		return f.buf.Write(p)
	}
	f.buf.Write(p[:room])
	return room, f.err
}
