package keys

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// TestResume writes 3.5 segments, "crashes" (drops the Writer without Close),
// keeps only the whole segments, resumes, and finishes.
func TestResume(t *testing.T) {
	plain := randomBytes(5, 5*SegmentSize+123)
	half := 3*SegmentSize + SegmentSize/2

	for _, tt := range []struct {
		name  string
		store func() *failWriter // the store the first attempt writes to
	}{
		// The process dies: what was written stays, the buffered half
		// segment is lost.
		{"crash", func() *failWriter { return &failWriter{limit: 1 << 30} }},
		// The store fails part-way through writing segment 2.
		{"torn write", func() *failWriter {
			return &failWriter{limit: int(SegmentOffset(2)) + 1000, err: errors.New("connection reset")}
		}},
		// The store fails part-way through the header.
		{"torn header", func() *failWriter {
			return &failWriter{limit: 10, err: errors.New("connection reset")}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := tt.store()
			w, err := NewWriter(store, testKey, testKeyID)
			if err == nil {
				_, err = w.Write(plain[:half])
			}
			t.Logf("first attempt: %d bytes stored, error %v", store.buf.Len(), err)
			// w is dropped here without Close.

			stored := store.buf.Bytes()
			segs := CompleteSegments(int64(len(stored)))
			var out bytes.Buffer
			if segs < 0 {
				w, err = NewWriter(&out, testKey, testKeyID)
				segs = 0
			} else {
				out.Write(stored[:SegmentOffset(segs)])
				w, err = ResumeWriter(&out, testKey, testKeyID, segs)
			}
			if err != nil {
				t.Fatal(err)
			}
			if w.Written() != segs*SegmentSize {
				t.Errorf("resumed Written = %d, want %d", w.Written(), segs*SegmentSize)
			}
			if _, err := w.Write(plain[segs*SegmentSize:]); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if w.Written() != int64(len(plain)) {
				t.Errorf("Written = %d, want %d", w.Written(), len(plain))
			}
			got, err := io.ReadAll(open(t, out.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, plain) {
				t.Fatal("resumed stream decrypts to different content")
			}
			if !bytes.Equal(out.Bytes(), encrypt(t, plain, testKey, testKeyID)) {
				t.Error("resumed stream differs from one written in one go")
			}
		})
	}
}

// TestResumeWrongPoint checks that resuming at the wrong place is caught on
// reading.
func TestResumeWrongPoint(t *testing.T) {
	plain := randomBytes(6, 3*SegmentSize+10)
	c := encrypt(t, plain, testKey, testKeyID)
	var out bytes.Buffer
	out.Write(c[:SegmentOffset(2)])
	// Claims 1 segment stored while 2 are: segment 1 appears twice.
	w, err := ResumeWriter(&out, testKey, testKeyID, 1)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain[SegmentSize:])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkRejected(t, "resumed one segment early", out.Bytes(), plain, testKey, testKeyID)
}
