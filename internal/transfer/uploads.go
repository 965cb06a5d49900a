package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"math"
	"strconv"
	"time"

	"ferry.dev/ferry/internal/blob"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/keys"
)

// SizeDeferred is the size of an upload whose length is not known in
// advance (an SFTP upload): it is fixed by CompleteUpload at the bytes
// received.
const SizeDeferred = -1

// DefaultUploadTTL is how long an upload may sit without a write before it is
// abandoned and shredded.
const DefaultUploadTTL = 24 * time.Hour

// Resumable uploads.
//
// An upload is written in sessions (a tus PATCH, an SFTP open-write-close);
// each session's bytes become one part: an encrypted stream of their own,
// under a key derived from the file's data key and the part's blob id
// (keys.PartKey), sealed completely when the session ends. The upload's
// offset therefore only ever advances over bytes that are durably stored and
// encrypted, it can stop at any byte, and a resumed session never re-seals a
// segment under a key already used, whatever the client resends. Nothing
// about an upload lives in memory between sessions: its state is the uploads
// row (typed columns, the SHA-256 state over the bytes so far included) and
// the file_parts rows, so any node can continue it. When the last byte has
// arrived, CompleteUpload checks permission again and the SHA-256, and the
// parts become the file.

func ownerOf(p *ferry.Principal) string {
	if p.UserID != "" {
		return p.UserID
	}
	return p.Name()
}

// CreateUpload starts a resumable upload of size bytes (or SizeDeferred)
// to path. The
// principal needs write permission on the existing parent folder; a folder
// at path refuses it. expectSHA256, when not nil, is the SHA-256 the whole
// content must have.
func (s *Service) CreateUpload(ctx context.Context, p *ferry.Principal, path string, size int64, expectSHA256 []byte) (*ferry.Upload, error) {
	const op = "transfer.CreateUpload"
	path, err := clean(op, p, path)
	if err != nil {
		return nil, err
	}
	if path == "/" {
		return nil, ferry.E(op, ferry.Invalid, "a file needs a name")
	}
	if size < 0 && size != SizeDeferred {
		return nil, ferry.E(op, ferry.Invalid, "negative upload length")
	}
	if expectSHA256 != nil && len(expectSHA256) != sha256.Size {
		return nil, ferry.E(op, ferry.Invalid, "the expected SHA-256 must be 32 bytes (64 hex digits)")
	}
	ev := s.event(p, "upload.create", path)
	ev.Bytes = max(size, 0)
	parentPath, _ := ferry.ParentPath(path)
	if err := s.check(ctx, op, p, ev, parentPath, ferry.PermWrite); err != nil {
		return nil, err
	}
	parent, err := s.db.FolderByPath(ctx, p.OrgID, parentPath)
	if ferry.KindOf(err) == ferry.NotExist {
		return nil, s.fail(ctx, ev, ferry.Errorf(op, ferry.NotExist, "folder %s does not exist", parentPath))
	} else if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	if _, err := s.db.FolderByPath(ctx, p.OrgID, path); err == nil {
		return nil, s.fail(ctx, ev, ferry.Errorf(op, ferry.Exist, "%s is a folder", path))
	}
	if ev.PartyID, err = s.FolderParty(ctx, parent); err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	now := s.now().UTC()
	u := &ferry.Upload{
		ID: blob.NewID(), OrgID: p.OrgID, Owner: ownerOf(p), Path: path, Size: size, ExpectSHA256: expectSHA256,
		FileID: ferry.NewID(s.rand), Protocol: p.Protocol, Created: now, Updated: now, Expires: now.Add(s.uploadTTL),
	}
	dek, err := keys.NewDataKey(s.rand)
	if err != nil {
		return nil, s.fail(ctx, ev, ferry.E(op, ferry.Internal, err))
	}
	defer clear(dek)
	if u.HashState, err = sealHash(dek, u.ID, sha256.New()); err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	if u.WrappedKey, u.KEKID, err = s.keks.Wrap(ctx, p.OrgID, dek, []byte(u.FileID)); err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	if err := s.db.CreateUpload(ctx, u); err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	ev.Object = u.ID
	ev.Detail = "expires " + u.Expires.Format(time.RFC3339)
	if expectSHA256 != nil {
		ev.SHA256 = hex.EncodeToString(expectSHA256)
	}
	if err := s.append(ctx, ev); err != nil {
		return nil, err
	}
	return u, nil
}

// Upload returns the principal's upload id. Another principal's upload, or
// none, is NotExist; an expired one is Expired.
func (s *Service) Upload(ctx context.Context, p *ferry.Principal, id string) (*ferry.Upload, error) {
	return s.ownUpload(ctx, "transfer.Upload", p, id)
}

func (s *Service) ownUpload(ctx context.Context, op string, p *ferry.Principal, id string) (*ferry.Upload, error) {
	if p == nil || p.OrgID == "" {
		return nil, ferry.E(op, ferry.Unauthenticated, "authentication required")
	}
	if !blob.ValidID(id) {
		return nil, ferry.E(op, ferry.NotExist, "no such upload")
	}
	u, err := s.db.UploadByID(ctx, id)
	if ferry.KindOf(err) == ferry.NotExist || err == nil && (u.OrgID != p.OrgID || u.Owner != ownerOf(p)) {
		return nil, ferry.E(op, ferry.NotExist, "no such upload")
	} else if err != nil {
		return nil, err
	}
	if !s.now().Before(u.Expires) {
		return nil, ferry.Errorf(op, ferry.Expired, "the upload expired at %s; start it again", u.Expires.Format(time.RFC3339))
	}
	return u, nil
}

// Uploads lists the principal's unfinished uploads, to path only if path is
// not empty.
func (s *Service) Uploads(ctx context.Context, p *ferry.Principal, path string) ([]*ferry.Upload, error) {
	const op = "transfer.Uploads"
	if path != "" {
		var err error
		if path, err = clean(op, p, path); err != nil {
			return nil, err
		}
	} else if p == nil || p.OrgID == "" {
		return nil, ferry.E(op, ferry.Unauthenticated, "authentication required")
	}
	all, err := s.db.UploadsByOwner(ctx, p.OrgID, ownerOf(p), path)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := all[:0]
	for _, u := range all {
		if now.Before(u.Expires) {
			out = append(out, u)
		}
	}
	return out, nil
}

// WriteUpload stores the bytes read from r at offset, which must be the
// upload's current offset (otherwise Conflict, with the upload returned so
// that the caller can report its offset). It reads at most the bytes the
// upload still lacks; more is TooLarge and nothing is stored.
//
// When chunkSHA256 is not nil the bytes must hash to it, or nothing is stored
// (Checksum). Without it, a read that fails part-way keeps the bytes that
// arrived: WriteUpload returns their count with the read error, and the
// upload continues from there. The returned upload is the updated one.
func (s *Service) WriteUpload(ctx context.Context, p *ferry.Principal, id string, offset int64, r io.Reader, chunkSHA256 []byte) (*ferry.Upload, int64, error) {
	w, u, err := s.OpenUploadPart(ctx, p, id, offset, chunkSHA256)
	if w == nil {
		return u, 0, err
	}
	bp := s.buffer()
	_, rerr := copyBuffered(ctx, w, r, *bp)
	s.bufs.Put(bp)
	return w.Finish(rerr)
}

// UploadPart is one part of a resumable upload being written, for a caller
// that has the bytes in hand rather than behind a reader (the SFTP server):
// each Write encrypts, hashes and stores its bytes at once, and Finish
// records the part. WriteUpload is OpenUploadPart, a copy and Finish.
// An UploadPart is not safe for concurrent use.
type UploadPart struct {
	s     *Service
	ctx   context.Context // the caller's: Write stops when it ends
	wctx  context.Context // detached: what was stored is recorded regardless
	op    string
	u     *ferry.Upload
	ev    *ferry.Event
	dek   []byte
	part  db.Part
	bw    blob.Writer
	ew    *keys.Writer
	h     hash.Hash // the whole upload's SHA-256, resumed
	ch    hash.Hash // the part's, when a checksum was given
	sum   []byte    // that checksum
	limit int64     // bytes the upload still lacks
	n     int64     // bytes stored
	werr  error     // sticky: the first Write error
	done  bool
}

// OpenUploadPart begins a part of upload id at offset, with the checks of
// WriteUpload. It returns a nil part, with the upload and the error, when
// nothing may be written; a nil part and a nil error mean the upload has
// every byte already. The caller must call Finish on a part it gets.
func (s *Service) OpenUploadPart(ctx context.Context, p *ferry.Principal, id string, offset int64, chunkSHA256 []byte) (*UploadPart, *ferry.Upload, error) {
	const op = "transfer.WriteUpload"
	u, err := s.ownUpload(ctx, op, p, id)
	if err != nil {
		return nil, nil, err
	}
	if offset != u.Received {
		return nil, u, ferry.Errorf(op, ferry.Conflict, "the upload is at offset %d, not %d", u.Received, offset)
	}
	if u.Received == u.Size {
		return nil, u, nil
	}
	if u.Size == SizeDeferred && offset > math.MaxInt64/2 {
		return nil, u, ferry.E(op, ferry.TooLarge, "upload too large")
	}
	if chunkSHA256 != nil && len(chunkSHA256) != sha256.Size {
		return nil, u, ferry.E(op, ferry.Invalid, "a SHA-256 checksum is 32 bytes")
	}
	ev := s.event(p, "upload.write", u.Path)
	ev.Object, ev.Offset = u.ID, offset
	// A grant withdrawn since the upload began stops it here, before any
	// byte is read (and again at completion).
	parentPath, _ := ferry.ParentPath(u.Path)
	if err := s.check(ctx, op, p, ev, parentPath, ferry.PermWrite); err != nil {
		return nil, u, err
	}
	// From here on, stored bytes must be recorded even if the caller gives
	// up (the client went away): the record is what makes them resumable.
	w := &UploadPart{s: s, ctx: ctx, wctx: context.WithoutCancel(ctx), op: op, u: u, ev: ev, sum: chunkSHA256}
	if err := w.open(offset); err != nil {
		w.release()
		return nil, u, s.fail(ctx, ev, err)
	}
	w.limit = u.Size - offset
	if u.Size == SizeDeferred {
		w.limit = math.MaxInt64 - offset
	}
	return w, u, nil
}

// open unwraps the file's key and creates the part's blob.
func (w *UploadPart) open(offset int64) error {
	u := w.u
	var err error
	if w.dek, err = w.s.keks.Unwrap(w.wctx, u.OrgID, u.KEKID, u.WrappedKey, []byte(u.FileID)); err != nil {
		return err
	}
	w.part = db.Part{Index: u.Parts, BlobID: blob.NewID(), Offset: offset}
	keyID, err := blobKeyID(w.part.BlobID)
	if err != nil {
		return err
	}
	pk, err := keys.PartKey(w.dek, keyID)
	if err != nil {
		return err
	}
	defer clear(pk)
	if w.h, err = openHash(w.dek, u.ID, u.HashState); err != nil {
		return err
	}
	if w.bw, err = w.s.blobs.Create(w.wctx, w.part.BlobID); err != nil {
		return err
	}
	if w.ew, err = keys.NewWriter(w.bw, pk, keyID); err != nil {
		return err
	}
	if w.sum != nil {
		w.ch = sha256.New()
	}
	return nil
}

// release wipes the file's key and drops an uncommitted blob.
func (w *UploadPart) release() {
	clear(w.dek)
	if w.bw != nil {
		w.bw.Abort() // after Commit: a no-op
	}
}

// Write encrypts, hashes and stores b. Bytes beyond the upload's declared
// length are TooLarge, and then nothing of the part is kept.
func (w *UploadPart) Write(b []byte) (int, error) {
	switch {
	case w.werr != nil:
		return 0, w.werr
	case w.done:
		return 0, ferry.E(w.op, ferry.Internal, "write after the part was finished")
	case int64(len(b)) > w.limit-w.n:
		w.werr = ferry.Errorf(w.op, ferry.TooLarge, "more than the upload's declared length of %d bytes", w.u.Size)
		return 0, w.werr
	}
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	if _, err := w.ew.Write(b); err != nil {
		w.werr = err
		return 0, err
	}
	w.h.Write(b)
	if w.ch != nil {
		w.ch.Write(b)
	}
	w.n += int64(len(b))
	return len(b), nil
}

// Finish ends the part and returns the updated upload and the bytes stored.
// cause is why the caller stopped early (a read error, the session
// failing), or nil when it wrote everything it had. Without a checksum, the
// bytes written before a cause are kept and the upload continues from
// there; the cause is returned with their count. A Write error, a TooLarge
// part or a checksum mismatch keeps nothing.
func (w *UploadPart) Finish(cause error) (*ferry.Upload, int64, error) {
	if w.done {
		return w.u, 0, ferry.E(w.op, ferry.Internal, "the part was finished already")
	}
	w.done = true
	defer w.release()
	s, u, ev, wctx, n := w.s, w.u, w.ev, w.wctx, w.n
	rerr := cause
	if w.werr != nil {
		rerr = w.werr
	}
	if rerr != nil {
		rerr = classifyReadErr(w.op, rerr)
		if ferry.KindOf(rerr) == ferry.TooLarge || ferry.KindOf(rerr) == ferry.NoSpace || w.werr != nil || w.sum != nil || n == 0 {
			// Nothing is kept: a checksum cannot be verified over a cut-off
			// chunk, and a store error may have torn the part.
			return u, 0, s.fail(w.ctx, ev, rerr)
		}
	}
	if w.ch != nil && !bytes.Equal(w.ch.Sum(nil), w.sum) {
		return u, 0, s.fail(w.ctx, ev, ferry.E(w.op, ferry.Checksum, "the chunk does not match its Upload-Checksum; it was discarded"))
	}
	if n == 0 {
		return u, 0, nil
	}
	if err := w.ew.Close(); err != nil {
		return u, 0, s.fail(w.ctx, ev, err)
	}
	if err := w.bw.Commit(); err != nil {
		return u, 0, s.fail(w.ctx, ev, err)
	}
	part := w.part
	part.Size = n
	state, err := sealHash(w.dek, u.ID, w.h)
	if err != nil {
		s.deleteBlob(wctx, part.BlobID)
		return u, 0, s.fail(w.ctx, ev, err)
	}
	now := s.now().UTC()
	if err := s.db.AddPart(wctx, u, part, state, now, now.Add(s.uploadTTL)); err != nil {
		s.deleteBlob(wctx, part.BlobID)
		return u, 0, s.fail(w.ctx, ev, err)
	}
	u.Received, u.Parts, u.HashState, u.Updated, u.Expires = part.Offset+n, u.Parts+1, state, now, now.Add(s.uploadTTL)
	ev.Bytes = n
	if rerr != nil {
		ev.Detail = "kept " + strconv.FormatInt(n, 10) + " bytes of an interrupted chunk"
	}
	if err := s.append(wctx, ev); err != nil {
		return u, n, err
	}
	if s.metrics.Transfer != nil {
		s.metrics.Transfer("in", n)
	}
	return u, n, rerr
}

// CompleteUpload turns an upload whose every byte has arrived into the file
// at its path, replacing the current version. The principal's write
// permission is checked again, and the content's SHA-256 against the one
// declared at creation: on a mismatch the upload is discarded (Checksum).
func (s *Service) CompleteUpload(ctx context.Context, p *ferry.Principal, id string) (*ferry.File, error) {
	const op = "transfer.CompleteUpload"
	u, err := s.ownUpload(ctx, op, p, id)
	if err != nil {
		return nil, err
	}
	if u.Size == SizeDeferred {
		u.Size = u.Received // the length is what arrived
	}
	if u.Received != u.Size {
		return nil, ferry.Errorf(op, ferry.Conflict, "the upload has %d of %d bytes", u.Received, u.Size)
	}
	ctx = context.WithoutCancel(ctx)
	ev := s.event(p, "file.write", u.Path)
	ev.Object = u.FileID
	parentPath, name := ferry.ParentPath(u.Path)
	if err := s.check(ctx, op, p, ev, parentPath, ferry.PermWrite); err != nil {
		return nil, err
	}
	parent, err := s.db.FolderByPath(ctx, p.OrgID, parentPath)
	if ferry.KindOf(err) == ferry.NotExist {
		return nil, s.fail(ctx, ev, ferry.Errorf(op, ferry.NotExist, "folder %s does not exist", parentPath))
	} else if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	if ev.PartyID, err = s.FolderParty(ctx, parent); err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	org, err := s.db.OrgByID(ctx, p.OrgID)
	if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	ev.Org = org.Name
	dek, err := s.keks.Unwrap(ctx, u.OrgID, u.KEKID, u.WrappedKey, []byte(u.FileID))
	if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	defer clear(dek)
	h, err := openHash(dek, u.ID, u.HashState)
	if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	sum := h.Sum(nil)
	ev.Bytes, ev.SHA256 = u.Size, hex.EncodeToString(sum)
	if u.ExpectSHA256 != nil && !bytes.Equal(sum, u.ExpectSHA256) {
		if err := s.discardUpload(ctx, u); err != nil && ferry.KindOf(err) != ferry.NotExist {
			// It stays until it expires, when sweepUploads shreds it.
			s.logger.Error("discard upload", "upload", u.ID, "err", err)
		}
		return nil, s.fail(ctx, ev, ferry.Errorf(op, ferry.Checksum, "the content's SHA-256 is %x, not the %x declared; the upload was discarded", sum, u.ExpectSHA256))
	}
	now := s.now().UTC()
	f := &ferry.File{
		ID: u.FileID, OrgID: u.OrgID, FolderID: parent.ID, Name: name, Path: u.Path, Size: u.Size, SHA256: sum,
		WrappedKey: u.WrappedKey, KEKID: u.KEKID, UploaderID: ownerOf(p), PartyID: ev.PartyID,
		Created: now, Modified: now, Expires: now.AddDate(0, 0, org.RetentionDays), Parts: u.Parts,
	}
	if u.Parts == 0 {
		// An empty file: one empty stream, like Put writes.
		f.BlobID = blob.NewID()
		if _, _, err := s.writeBlob(ctx, f.BlobID, dek, bytes.NewReader(nil)); err != nil {
			return nil, s.fail(ctx, ev, err)
		}
	} else {
		parts, err := s.db.Parts(ctx, u.FileID)
		if err != nil {
			return nil, s.fail(ctx, ev, err)
		}
		if err := checkParts(parts, u.Size); err != nil || len(parts) != u.Parts {
			return nil, s.fail(ctx, ev, ferry.E(op, ferry.Integrity, "the upload's parts do not add up", err))
		}
		f.BlobID = parts[0].BlobID
	}
	old, oldBlobs, err := s.db.CompleteUpload(ctx, u, f)
	if err != nil {
		if u.Parts == 0 {
			s.deleteBlob(ctx, f.BlobID)
		}
		if ferry.KindOf(err) == ferry.Exist {
			err = ferry.Errorf(op, ferry.Exist, "%s is a folder", u.Path)
		}
		return nil, s.fail(ctx, ev, err)
	}
	ev.Detail = fmt.Sprintf("resumable upload %s in %d parts", u.ID, u.Parts)
	if old != nil {
		ev.Detail += "; replaced previous version " + old.ID
		s.deleteBlobs(ctx, oldBlobs)
	}
	if err := s.append(ctx, ev); err != nil {
		return nil, err
	}
	s.fileArrived(ctx, p, f) // folder watches (watch.go)
	return f, nil
}

// CancelUpload terminates an unfinished upload and shreds what it stored.
func (s *Service) CancelUpload(ctx context.Context, p *ferry.Principal, id string) error {
	const op = "transfer.CancelUpload"
	u, err := s.ownUpload(ctx, op, p, id)
	if err != nil {
		return err
	}
	ev := s.event(p, "upload.cancel", u.Path)
	ev.Object, ev.Bytes = u.ID, u.Received
	// Abandoning shreds what was received: it needs what writing needs (a
	// read-only token of the owner may not, found by the attack suite).
	parentPath, _ := ferry.ParentPath(u.Path)
	if err := s.check(ctx, op, p, ev, parentPath, ferry.PermWrite); err != nil {
		return err
	}
	if err := s.discardUpload(ctx, u); err != nil {
		return s.fail(ctx, ev, err)
	}
	return s.append(ctx, ev)
}

// discardUpload deletes an upload's row, which holds its wrapped data key,
// and then its parts' blobs.
func (s *Service) discardUpload(ctx context.Context, u *ferry.Upload) error {
	blobs, err := s.db.DeleteUpload(context.WithoutCancel(ctx), u)
	if err != nil {
		return err
	}
	s.deleteBlobs(ctx, blobs)
	return nil
}

// sweepUploads shreds uploads abandoned past their expiry.
func (s *Service) sweepUploads(ctx context.Context) (int, error) {
	sys := &ferry.Principal{System: true, Remote: "system"}
	n := 0
	for {
		ups, err := s.db.ExpiredUploads(ctx, s.now(), 100)
		if err != nil || len(ups) == 0 {
			return n, err
		}
		for _, u := range ups {
			ev := s.event(sys, "upload.expire", u.Path)
			ev.OrgID, ev.Object, ev.Bytes = u.OrgID, u.ID, u.Received
			ev.Detail = "abandoned; expired " + u.Expires.Format(time.RFC3339)
			if err := s.discardUpload(ctx, u); err != nil && ferry.KindOf(err) != ferry.NotExist {
				return n, s.fail(ctx, ev, err)
			}
			if err := s.append(ctx, ev); err != nil {
				return n, err
			}
			n++
		}
	}
}

// checkParts checks that parts tile [0, size) in order.
func checkParts(parts []db.Part, size int64) error {
	var off int64
	for i, p := range parts {
		if p.Index != i || p.Offset != off || p.Size <= 0 {
			return fmt.Errorf("part %d at %d+%d, expected index %d at %d", p.Index, p.Offset, p.Size, i, off)
		}
		off += p.Size
	}
	if off != size {
		return fmt.Errorf("parts hold %d bytes, not %d", off, size)
	}
	return nil
}

// sealHash saves a SHA-256 state for the database, sealed under the upload's
// data key (keys.SealState): the state holds the last incomplete block of
// the content in clear, and plaintext never enters the database.
func sealHash(dek []byte, uploadID string, h hash.Hash) ([]byte, error) {
	m, ok := h.(encoding.BinaryMarshaler)
	if !ok {
		return nil, ferry.E("transfer.sealHash", ferry.Internal, "SHA-256 state cannot be saved")
	}
	b, err := m.MarshalBinary()
	if err != nil {
		return nil, ferry.E("transfer.sealHash", ferry.Internal, err)
	}
	defer clear(b)
	return keys.SealState(dek, []byte(uploadID), b)
}

// openHash restores a state saved by sealHash. A state saved unsealed by an
// earlier version (it starts with the "sha" magic of crypto/sha256) is
// accepted so that uploads in flight across an upgrade can finish.
func openHash(dek []byte, uploadID string, state []byte) (hash.Hash, error) {
	const op = "transfer.openHash"
	plain := state
	if !bytes.HasPrefix(state, []byte("sha\x03")) {
		var err error
		if plain, err = keys.OpenState(dek, []byte(uploadID), state); err != nil {
			return nil, ferry.E(op, ferry.Integrity, "stored SHA-256 state is corrupt", err)
		}
		defer clear(plain)
	}
	h := sha256.New()
	u, ok := h.(encoding.BinaryUnmarshaler)
	if !ok {
		return nil, ferry.E(op, ferry.Internal, "SHA-256 state cannot be restored")
	}
	if err := u.UnmarshalBinary(plain); err != nil {
		return nil, ferry.E(op, ferry.Integrity, "stored SHA-256 state is corrupt", err)
	}
	return h, nil
}
