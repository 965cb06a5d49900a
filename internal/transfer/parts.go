package transfer

import (
	"context"
	"io"
	"sort"
	"sync"

	"ferry.dev/ferry/internal/blob"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/keys"
)

// partsReader reads the content of a file stored in parts (a resumable
// upload), each its own stream under its own derived key. Parts are opened
// as reads reach them, and at most maxOpenParts stay open, so a file of
// thousands of parts costs a few descriptors and segment buffers.
type partsReader struct {
	s     *Service
	ctx   context.Context
	dek   []byte
	parts []db.Part
	size  int64

	mu   sync.Mutex // serialises reads: the open set changes under them
	open []*openPart
}

type openPart struct {
	idx int
	kr  *keys.Reader
	br  blob.Reader
}

const maxOpenParts = 2

func (s *Service) openParts(ctx context.Context, f *ferry.File, dek []byte) (content, io.Closer, error) {
	const op = "transfer.openParts"
	parts, err := s.db.Parts(ctx, f.ID)
	if err != nil {
		return nil, nil, err
	}
	if err := checkParts(parts, f.Size); err != nil || len(parts) != f.Parts {
		return nil, nil, ferry.E(op, ferry.Integrity, "the stored parts do not add up to the file", err)
	}
	r := &partsReader{s: s, ctx: ctx, dek: append([]byte(nil), dek...), parts: parts, size: f.Size}
	return r, r, nil
}

// Size returns the plaintext size.
func (r *partsReader) Size() int64 { return r.size }

// ReadAt implements io.ReaderAt across the parts.
func (r *partsReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, ferry.E("transfer.ReadAt", ferry.Invalid, "negative offset")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for len(p) > 0 && off < r.size {
		i := sort.Search(len(r.parts), func(i int) bool { return r.parts[i].Offset+r.parts[i].Size > off })
		part := r.parts[i]
		op, err := r.part(i)
		if err != nil {
			return n, err
		}
		want := min(int64(len(p)), part.Offset+part.Size-off)
		m, err := op.kr.ReadAt(p[:want], off-part.Offset)
		n, off, p = n+m, off+int64(m), p[m:]
		if int64(m) < want {
			if err == nil || err == io.EOF {
				err = ferry.E("transfer.ReadAt", ferry.Integrity, "a stored part is shorter than recorded")
			}
			return n, err
		}
	}
	if len(p) > 0 {
		return n, io.EOF
	}
	return n, nil
}

// part returns part i opened, opening it (and closing the least recently
// used) if needed. r.mu is held.
func (r *partsReader) part(i int) (*openPart, error) {
	for j, op := range r.open {
		if op.idx == i {
			copy(r.open[1:j+1], r.open[:j])
			r.open[0] = op
			return op, nil
		}
	}
	const op = "transfer.openPart"
	pt := r.parts[i]
	keyID, err := blobKeyID(pt.BlobID)
	if err != nil {
		return nil, err
	}
	pk, err := keys.PartKey(r.dek, keyID)
	if err != nil {
		return nil, err
	}
	defer clear(pk)
	br, err := r.s.blobs.Open(r.ctx, pt.BlobID)
	if err != nil {
		if ferry.KindOf(err) == ferry.NotExist {
			return nil, ferry.E(op, ferry.Integrity, "a stored part is missing", err)
		}
		return nil, err
	}
	kr, err := keys.NewReader(br, br.Size(), pk, keyID)
	if err != nil {
		br.Close()
		return nil, err
	}
	if kr.Size() != pt.Size {
		br.Close()
		return nil, ferry.E(op, ferry.Integrity, "a stored part has the wrong size")
	}
	o := &openPart{idx: i, kr: kr, br: br}
	if len(r.open) == maxOpenParts {
		r.open[len(r.open)-1].br.Close()
		r.open = r.open[:len(r.open)-1]
	}
	r.open = append([]*openPart{o}, r.open...)
	return o, nil
}

// Close closes the open parts and forgets the key.
func (r *partsReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first error
	for _, op := range r.open {
		if err := op.br.Close(); err != nil && first == nil {
			first = err
		}
	}
	r.open = nil
	clear(r.dek)
	return first
}
