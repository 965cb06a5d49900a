package transfer

import (
	"context"
	"encoding/hex"
	"io"
	"strconv"
	"sync"

	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/keys"
)

// Download is an authorized handle on one file version. Nothing has been read
// or audited yet; Read does both.
type Download struct {
	File *ferry.File
	s    *Service
	p    *ferry.Principal
	ev   *ferry.Event
}

// Open authorizes a read of the file at path (read permission on its folder)
// and returns a handle whose File describes it. A denied attempt is audited.
func (s *Service) Open(ctx context.Context, p *ferry.Principal, path string) (*Download, error) {
	const op = "transfer.Open"
	f, ev, err := s.lookupFile(ctx, op, p, path, "file.read", ferry.PermRead)
	if err != nil {
		return nil, err
	}
	return &Download{File: f, s: s, p: p, ev: ev}, nil
}

// lookupFile resolves a file path for an action needing want on its folder.
func (s *Service) lookupFile(ctx context.Context, op string, p *ferry.Principal, path, action string, want ferry.Perm) (*ferry.File, *ferry.Event, error) {
	path, err := clean(op, p, path)
	if err != nil {
		return nil, nil, err
	}
	ev := s.event(p, action, path)
	parentPath, name := ferry.ParentPath(path)
	if err := s.check(ctx, op, p, ev, parentPath, want); err != nil {
		return nil, nil, err
	}
	parent, err := s.db.FolderByPath(ctx, p.OrgID, parentPath)
	if err != nil {
		return nil, nil, s.notFound(ctx, op, ev, err)
	}
	if path == "/" {
		return nil, nil, ferry.E(op, ferry.Invalid, "the root is a folder")
	}
	f, err := s.db.FileByName(ctx, parent.ID, name)
	if err != nil {
		return nil, nil, s.notFound(ctx, op, ev, err)
	}
	ev.Object, ev.PartyID, ev.SHA256 = f.ID, f.PartyID, hex.EncodeToString(f.SHA256)
	return f, ev, nil
}

func (s *Service) notFound(ctx context.Context, op string, ev *ferry.Event, err error) error {
	if ferry.KindOf(err) == ferry.NotExist {
		err = ferry.E(op, ferry.NotExist, "no such file or folder")
	}
	return s.fail(ctx, ev, err)
}

// Read audits a read of length bytes at offset and returns a reader of them.
// The record is appended before any byte is returned; if the reader is closed
// before all length bytes were read, a second record notes how many were.
// The first segment is decrypted before Read returns, so a corrupted blob
// fails here with an Integrity error rather than mid-stream.
func (d *Download) Read(ctx context.Context, offset, length int64) (io.ReadCloser, error) {
	const op = "transfer.Read"
	s, f := d.s, d.File
	if offset < 0 || length < 0 || offset+length > f.Size {
		return nil, ferry.E(op, ferry.Invalid, "range outside the file")
	}
	ev := *d.ev
	ev.Offset, ev.Bytes = offset, length
	if err := s.guardRead(ctx, d.p, f, &ev); err != nil {
		return nil, err
	}
	kr, closer, err := s.openBlob(ctx, f)
	if err != nil {
		return nil, s.fail(ctx, &ev, err)
	}
	if length > 0 {
		var b [1]byte
		if _, err := kr.ReadAt(b[:], offset); err != nil && err != io.EOF {
			closer.Close()
			return nil, s.fail(ctx, &ev, err)
		}
	}
	if err := s.append(ctx, &ev); err != nil {
		closer.Close()
		return nil, err
	}
	return &readCloser{r: io.NewSectionReader(kr, offset, length), closer: closer, want: length, ctx: ctx, d: d, ev: ev}, nil
}

// content is a file's decrypted content.
type content interface {
	io.ReaderAt
	Size() int64
}

// openBlob opens and decrypts a file's content: one stream, or its parts.
func (s *Service) openBlob(ctx context.Context, f *ferry.File) (content, io.Closer, error) {
	dek, err := s.keks.Unwrap(ctx, f.OrgID, f.KEKID, f.WrappedKey, []byte(f.ID))
	if err != nil {
		return nil, nil, err
	}
	defer clear(dek)
	if f.Parts > 0 {
		return s.openParts(ctx, f, dek)
	}
	keyID, err := blobKeyID(f.BlobID)
	if err != nil {
		return nil, nil, err
	}
	br, err := s.blobs.Open(ctx, f.BlobID)
	if err != nil {
		if ferry.KindOf(err) == ferry.NotExist {
			return nil, nil, ferry.E("transfer.openBlob", ferry.Integrity, "the stored content is missing", err)
		}
		return nil, nil, err
	}
	kr, err := keys.NewReader(br, br.Size(), dek, keyID)
	if err != nil {
		br.Close()
		return nil, nil, err
	}
	if kr.Size() != f.Size {
		br.Close()
		return nil, nil, ferry.E("transfer.openBlob", ferry.Integrity, "stored content has the wrong size")
	}
	return kr, br, nil
}

type readCloser struct {
	r      io.Reader
	closer io.Closer
	want   int64
	got    int64
	ctx    context.Context
	d      *Download
	ev     ferry.Event
	closed bool
}

// WriteTo copies the content to w through two pooled buffers, so that
// adapters need no buffer of their own (io.Copy uses it). A goroutine reads
// (and so decrypts) the next buffer while w writes the previous one: a
// ResponseWriter's Write returns only once the bytes went out (HTTP/2 waits
// for its frames to be written, HTTP/1.1 writes through TLS), so a plain
// read-then-write loop would leave decryption and sending taking turns on a
// machine with a core to spare. Bytes are counted as delivered when w has
// taken them.
func (rc *readCloser) WriteTo(w io.Writer) (int64, error) {
	s := rc.d.s
	type chunk struct {
		bp  *[]byte
		n   int
		err error
	}
	free := make(chan *[]byte, 2)
	full := make(chan chunk, 2)
	free <- s.buffer()
	free <- s.buffer()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(full)
		for {
			var bp *[]byte
			select {
			case bp = <-free:
			case <-stop:
				return
			}
			n, err := io.ReadFull(rc.r, *bp)
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			full <- chunk{bp, n, err} // full has room for every buffer
			if err != nil {
				return
			}
		}
	})
	defer func() {
		close(stop)
		wg.Wait()
		for c := range full {
			s.bufs.Put(c.bp)
		}
		for len(free) > 0 {
			s.bufs.Put(<-free)
		}
	}()
	var total int64
	for c := range full {
		if c.n > 0 {
			k, werr := w.Write((*c.bp)[:c.n])
			total += int64(k)
			rc.got += int64(k)
			if werr == nil && k < c.n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				s.bufs.Put(c.bp)
				return total, werr
			}
		}
		free <- c.bp
		if c.err == io.EOF {
			return total, nil
		}
		if c.err != nil {
			return total, c.err
		}
	}
	return total, nil
}

func (rc *readCloser) Read(p []byte) (int, error) {
	n, err := rc.r.Read(p)
	rc.got += int64(n)
	return n, err
}

// Close releases the blob and records an interrupted read.
func (rc *readCloser) Close() error {
	if rc.closed {
		return nil
	}
	rc.closed = true
	err := rc.closer.Close()
	s := rc.d.s
	if s.metrics.Transfer != nil {
		s.metrics.Transfer("out", rc.got)
	}
	if rc.got < rc.want {
		ev := rc.ev
		ev.Action, ev.Outcome, ev.Bytes = "file.read", ferry.OutcomeError, rc.got
		ev.Detail = "interrupted: " + strconv.FormatInt(rc.got, 10) + " of " + strconv.FormatInt(rc.want, 10) + " bytes delivered"
		if aerr := s.append(rc.ctx, &ev); aerr != nil {
			s.logger.Error("audit append failed", "err", aerr)
		}
	}
	return err
}
