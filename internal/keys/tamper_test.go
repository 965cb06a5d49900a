package keys

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"ferry.dev/ferry/internal/ferry"
)

// segment returns the ciphertext of segment i of stream c.
func segment(c []byte, i int64) []byte {
	end := min(SegmentOffset(i+1), int64(len(c)))
	return c[SegmentOffset(i):end]
}

func concat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// checkRejected asserts that stream c, which is not a valid encryption of
// plain under key and keyID, fails with an Integrity error — at open or when
// read — and that no byte returned before the failure differs from plain.
func checkRejected(t *testing.T, name string, c, plain, key []byte, keyID [KeyIDSize]byte) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(c), int64(len(c)), key, keyID)
	if err != nil {
		if ferry.KindOf(err) != ferry.Integrity {
			t.Errorf("%s: NewReader: %v, want kind Integrity", name, err)
		}
		return
	}
	failed := false

	// Sequentially, through Read.
	got, err := io.ReadAll(r)
	if err != nil {
		failed = true
		if ferry.KindOf(err) != ferry.Integrity {
			t.Errorf("%s: Read: %v, want kind Integrity", name, err)
		}
	}
	if len(got) > len(plain) || !bytes.Equal(got, plain[:len(got)]) {
		t.Errorf("%s: Read returned %d bytes that are not the plaintext", name, len(got))
	}

	// Segment by segment, through ReadAt, in reverse order.
	for i := (r.Size() - 1) / SegmentSize; i >= 0; i-- {
		p := make([]byte, SegmentSize)
		off := i * SegmentSize
		n, err := r.ReadAt(p, off)
		if err != nil && err != io.EOF {
			failed = true
			if ferry.KindOf(err) != ferry.Integrity {
				t.Errorf("%s: ReadAt(%d): %v, want kind Integrity", name, off, err)
			}
		}
		if off+int64(n) > int64(len(plain)) || !bytes.Equal(p[:n], plain[off:off+int64(n)]) {
			t.Errorf("%s: ReadAt(%d) returned %d bytes that are not the plaintext", name, off, n)
		}
	}
	if !failed {
		t.Errorf("%s: tampered stream was accepted", name)
	}
}

func TestTamper(t *testing.T) {
	plain := randomBytes(3, 3*SegmentSize+7) // segments 0-2 full, 3 short
	c := encrypt(t, plain, testKey, testKeyID)
	seg := func(i int64) []byte { return segment(c, i) }
	hdr := c[:HeaderSize]

	// A flipped bit anywhere.
	for i := int64(0); i < 4; i++ {
		s := SegmentOffset(i)
		n := int64(len(seg(i)))
		for _, pos := range []int64{s, s + n/2, s + n - 1} {
			d := bytes.Clone(c)
			d[pos] ^= 0x01
			checkRejected(t, fmt.Sprintf("flip byte %d (segment %d)", pos, i), d, plain, testKey, testKeyID)
		}
	}
	for pos := range HeaderSize {
		d := bytes.Clone(c)
		d[pos] ^= 0x80
		checkRejected(t, fmt.Sprintf("flip header byte %d", pos), d, plain, testKey, testKeyID)
	}

	// Segments moved around.
	for name, d := range map[string][]byte{
		"swap segments 0 and 1":             concat(hdr, seg(1), seg(0), seg(2), seg(3)),
		"swap segments 1 and 2":             concat(hdr, seg(0), seg(2), seg(1), seg(3)),
		"duplicate segment 0":               concat(hdr, seg(0), seg(0), seg(1), seg(2), seg(3)),
		"drop segment 1":                    concat(hdr, seg(0), seg(2), seg(3)),
		"drop the last segment":             c[:SegmentOffset(3)],
		"truncate at boundary 2":            c[:SegmentOffset(2)],
		"truncate at boundary 1":            c[:SegmentOffset(1)],
		"header only":                       c[:HeaderSize],
		"truncate in segment 2":             c[:SegmentOffset(2)+100],
		"truncate in segment 1's tag":       c[:SegmentOffset(2)-5],
		"truncate one byte":                 c[:len(c)-1],
		"append segment 1":                  concat(c, seg(1)),
		"append the final segment again":    concat(c, seg(3)),
		"append garbage":                    concat(c, bytes.Repeat([]byte{7}, 100)),
		"final segment moved to the middle": concat(hdr, seg(0), seg(3), seg(1), seg(2)),
		"empty":                             nil,
	} {
		checkRejected(t, name, d, plain, testKey, testKeyID)
	}

	// Another key, another key id.
	otherID := testKeyID
	otherID[15] ^= 1
	checkRejected(t, "wrong key id", c, plain, testKey, otherID)
	otherKey := bytes.Clone(testKey)
	otherKey[0] ^= 1
	checkRejected(t, "wrong key", c, plain, otherKey, testKeyID)
	// The same content under another key id cannot be passed off for it.
	checkRejected(t, "stream of another key id", encrypt(t, plain, testKey, otherID), plain, testKey, testKeyID)

	// The store holds fewer bytes than the recorded size.
	if _, err := NewReader(bytes.NewReader(c[:len(c)-10]), int64(len(c)), testKey, testKeyID); ferry.KindOf(err) != ferry.Integrity {
		t.Errorf("store shorter than recorded: %v, want kind Integrity", err)
	}
}

// TestTamperBoundaries covers streams whose final segment is full or empty.
func TestTamperBoundaries(t *testing.T) {
	plain := randomBytes(4, 2*SegmentSize)
	c := encrypt(t, plain, testKey, testKeyID)
	checkRejected(t, "drop the full final segment", c[:SegmentOffset(1)], plain, testKey, testKeyID)
	checkRejected(t, "swap two full segments", concat(c[:HeaderSize], segment(c, 1), segment(c, 0)), plain, testKey, testKeyID)

	// An empty final segment after full ones is never produced; even sealed
	// correctly, its size is refused.
	empty := encrypt(t, nil, testKey, testKeyID)
	checkRejected(t, "empty stream's segment appended", concat(c, segment(empty, 0)), plain, testKey, testKeyID)

	d := bytes.Clone(empty)
	d[len(d)-1] ^= 1
	checkRejected(t, "empty stream, flipped tag", d, nil, testKey, testKeyID)
	checkRejected(t, "empty stream, wrong key id", empty, nil, testKey, [KeyIDSize]byte{})
}
