package transfer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/blob"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/guard"
	"ferry.dev/ferry/internal/keys"
	"ferry.dev/ferry/internal/mail"
)

// Service is the one path for file content (DESIGN invariant 1). Protocol
// adapters call it with the acting principal; it checks grants, encrypts or
// decrypts, stores, records metadata and appends the audit record.
type Service struct {
	db      *db.DB
	blobs   blob.Backend
	keks    keys.KEKProvider
	log     *audit.Log
	now     func() time.Time
	rand    io.Reader
	logger  *slog.Logger
	metrics Metrics
	bufs    sync.Pool // *[]byte of copyBufSize: copy buffers reused across uploads

	uploadTTL time.Duration
	mail      *mail.Outbox // nil: notifications are not sent
	pkgMax    int64        // most bytes a package may hold (0: DefaultPackageMaxBytes)
	shares    shareState   // share links and folder watches (shares.go, watch.go)
	guard     *guard.Guard // consulted before every read (guard.go); nil: none
}

const copyBufSize = 256 << 10

// Metrics receives counts of finished transfers. Any field may be nil.
type Metrics struct {
	Transfer func(direction string, bytes int64) // "in" or "out"
}

// Config holds a Service's dependencies.
type Config struct {
	DB      *db.DB
	Blobs   blob.Backend
	KEKs    keys.KEKProvider
	Audit   *audit.Log
	Now     func() time.Time
	Rand    io.Reader // crypto/rand.Reader when nil
	Logger  *slog.Logger
	Metrics Metrics
	// UploadTTL is how long a resumable upload may sit without a write
	// before it is shredded (DefaultUploadTTL when 0).
	UploadTTL time.Duration
	// Mail is the outbox for notifications (packages); nil sends none.
	Mail *mail.Outbox
	// Guard is the exfiltration guard, consulted before every read (nil:
	// none).
	Guard *guard.Guard
}

// New returns a transfer service.
func New(c Config) *Service {
	ttl := c.UploadTTL
	if ttl <= 0 {
		ttl = DefaultUploadTTL
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	return &Service{db: c.DB, blobs: c.Blobs, keks: c.KEKs, log: c.Audit, now: c.Now, rand: c.Rand, logger: c.Logger, metrics: c.Metrics, uploadTTL: ttl, mail: c.Mail, guard: c.Guard}
}

// access is what a principal may do at a path.
type access struct {
	perm    ferry.Perm
	visible bool // the path is on the way to something the principal may see
}

// accessAt computes the principal's permissions on a clean path: organisation
// admins and the operator hold every permission in their organisation; others
// hold the union of their grants on the path and its ancestors.
func (s *Service) accessAt(ctx context.Context, p *ferry.Principal, path string) (access, error) {
	g, err := s.grantsOf(ctx, p)
	if err != nil {
		return access{}, err
	}
	return g.at(path), nil
}

// grantSet is what a principal was granted, loaded once for a request.
type grantSet struct {
	all    bool // organisation admin, operator or system: everything
	grants []db.PathGrant
	mask   ferry.Perm // what the principal's token scope allows
}

func (s *Service) grantsOf(ctx context.Context, p *ferry.Principal) (grantSet, error) {
	if s.guard.Frozen(guard.Subject(p)) { // a frozen principal may do nothing (guard.go)
		return grantSet{}, ferry.E("transfer", ferry.Permission, ferry.Message(guard.ErrFrozen))
	}
	if p.ShareID != "" { // a share-link visitor: the share record decides (shares.go)
		return s.shareGrants(ctx, p)
	}
	mask := scopePerms(p.Scope)
	if p.Operator || p.System || p.Role == ferry.RoleAdmin {
		return grantSet{all: true, mask: mask}, nil
	}
	grants, err := s.db.GrantsForUser(ctx, p.UserID)
	return grantSet{grants: grants, mask: mask}, err
}

// scopePerms returns the permissions an API token's scope leaves usable: read
// for list and read, write for write and delete, share for share; manage
// needs every scope. A zero scope (sessions, SFTP) restricts nothing.
func scopePerms(sc ferry.Scope) ferry.Perm {
	if sc == 0 || sc == ferry.ScopeAll {
		return ferry.PermAll
	}
	var m ferry.Perm
	if sc.Has(ferry.ScopeRead) {
		m |= ferry.PermList | ferry.PermRead
	}
	if sc.Has(ferry.ScopeWrite) {
		m |= ferry.PermWrite | ferry.PermDelete
	}
	if sc.Has(ferry.ScopeShare) {
		m |= ferry.PermShare
	}
	return m
}

// at computes the access the grants give at a clean path, within the token
// scope's mask.
func (g grantSet) at(path string) access {
	a := g.unmasked(path)
	a.perm &= g.mask
	return a
}

func (g grantSet) unmasked(path string) access {
	if isPackagePath(path) {
		return access{} // packages are reached only through their own rules (packages.go)
	}
	if g.all {
		return access{perm: ferry.PermAll, visible: true}
	}
	var a access
	for _, gr := range g.grants {
		switch {
		case isAncestorOrSelf(gr.Path, path):
			a.perm |= gr.Perms
		case isAncestorOrSelf(path, gr.Path):
			a.visible = true
		}
	}
	// The root is the way to everything: every member of the organisation
	// sees it, if only as an empty folder.
	if a.perm != 0 || path == "/" {
		a.visible = true
	}
	return a
}

func isAncestorOrSelf(anc, p string) bool {
	return anc == "/" || anc == p || strings.HasPrefix(p, anc+"/")
}

// check returns nil if the principal holds want at path; otherwise a NotExist
// error when the path is invisible to them (no existence oracle), or a
// Permission error, both audited as denied.
func (s *Service) check(ctx context.Context, op string, p *ferry.Principal, ev *ferry.Event, path string, want ferry.Perm) error {
	if err := s.guardFrozen(ctx, op, p, ev); err != nil { // guard.go
		return err
	}
	if isPackagePath(path) {
		return s.checkPackage(ctx, op, p, ev, path, want)
	}
	g, err := s.grantsOf(ctx, p)
	if err != nil {
		return err
	}
	a := g.at(path)
	if a.perm.Has(want) {
		return nil
	}
	ev.Outcome = ferry.OutcomeDenied
	ev.Detail = "missing permission " + want.String()
	scoped := g.unmasked(path).perm.Has(want)
	if scoped {
		ev.Detail += " (token scope " + p.Scope.String() + ")"
	}
	if aerr := s.append(ctx, ev); aerr != nil {
		return aerr
	}
	if !a.visible {
		return ferry.E(op, ferry.NotExist, "no such file or folder")
	}
	if scoped {
		return ferry.Errorf(op, ferry.Permission, "this token's scope (%s) does not allow %q", p.Scope.String(), want.String())
	}
	return ferry.Errorf(op, ferry.Permission, "you need %q permission on %s", want.String(), path)
}

// event starts an audit event for an action by p.
func (s *Service) event(p *ferry.Principal, action, path string) *ferry.Event {
	return &ferry.Event{
		Action: action, Outcome: ferry.OutcomeOK, Actor: p.Name(), ActorID: p.UserID, OrgID: p.OrgID,
		Path: path, Remote: p.Remote, Session: p.SessionID, Token: p.TokenID, Protocol: p.Protocol,
	}
}

// append fills in names and appends ev to the audit log.
func (s *Service) append(ctx context.Context, ev *ferry.Event) error {
	if ev.OrgID != "" && ev.Org == "" {
		if o, err := s.db.OrgByID(ctx, ev.OrgID); err == nil {
			ev.Org = o.Name
		}
	}
	if ev.PartyID != "" && ev.Party == "" {
		if pt, err := s.db.PartyByID(ctx, ev.PartyID); err == nil {
			ev.Party = pt.Name
		}
	}
	// The audit record must not be lost with a cancelled request.
	return s.log.Append(context.WithoutCancel(ctx), ev)
}

// fail records a failed action and returns err.
func (s *Service) fail(ctx context.Context, ev *ferry.Event, err error) error {
	ev.Outcome = ferry.OutcomeError
	ev.Detail = ferry.KindOf(err).String() + ": " + ferry.Message(err)
	if aerr := s.append(ctx, ev); aerr != nil {
		s.logger.Error("audit append failed", "action", ev.Action, "err", aerr)
	}
	return err
}

// clean validates a path and principal.
func clean(op string, p *ferry.Principal, path string) (string, error) {
	if p == nil || p.OrgID == "" {
		return "", ferry.E(op, ferry.Unauthenticated, "authentication required")
	}
	return ferry.CleanPath(path)
}

// FolderParty returns the effective party of a folder: its own, or the
// nearest ancestor's ("" for none).
func (s *Service) FolderParty(ctx context.Context, f *ferry.Folder) (string, error) {
	for i := 0; i < ferry.MaxPathLen; i++ {
		if f.PartyID != "" || f.ParentID == "" {
			return f.PartyID, nil
		}
		parent, err := s.db.FolderByID(ctx, f.ParentID)
		if err != nil {
			return "", err
		}
		f = parent
	}
	return "", nil
}

// Put stores the content read from r as the file at path, replacing any
// current version only once the new one is complete: a failed or cut-off
// upload leaves no file and the old version intact. The parent folder must
// exist and the principal needs write permission on it.
//
// Put reads from r only after every check has passed, so a caller streaming
// r from a client (SFTP) learns of a refusal before sending any content.
func (s *Service) Put(ctx context.Context, p *ferry.Principal, path string, r io.Reader) (*ferry.File, error) {
	const op = "transfer.Put"
	path, err := clean(op, p, path)
	if err != nil {
		return nil, err
	}
	if path == "/" {
		return nil, ferry.E(op, ferry.Invalid, "a file needs a name")
	}
	ev := s.event(p, "file.write", path)
	parentPath, name := ferry.ParentPath(path)
	if err := s.check(ctx, op, p, ev, parentPath, ferry.PermWrite); err != nil {
		return nil, err
	}
	parent, err := s.db.FolderByPath(ctx, p.OrgID, parentPath)
	if ferry.KindOf(err) == ferry.NotExist {
		return nil, s.fail(ctx, ev, ferry.Errorf(op, ferry.NotExist, "folder %s does not exist", parentPath))
	} else if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	party, err := s.FolderParty(ctx, parent)
	if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	ev.PartyID = party
	org, err := s.db.OrgByID(ctx, p.OrgID)
	if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	ev.Org = org.Name

	now := s.now().UTC()
	f := &ferry.File{
		ID: ferry.NewID(s.rand), OrgID: p.OrgID, FolderID: parent.ID, Name: name, Path: path,
		BlobID: blob.NewID(), UploaderID: p.UserID, PartyID: party, Created: now, Modified: now,
		Expires: now.AddDate(0, 0, org.RetentionDays),
	}
	if f.UploaderID == "" {
		f.UploaderID = p.Name()
	}
	ev.Object = f.ID
	dek, err := keys.NewDataKey(s.rand)
	if err != nil {
		return nil, s.fail(ctx, ev, ferry.E(op, ferry.Internal, err))
	}
	defer clear(dek)
	f.WrappedKey, f.KEKID, err = s.keks.Wrap(ctx, p.OrgID, dek, []byte(f.ID))
	if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	size, sum, err := s.writeBlob(ctx, f.BlobID, dek, r)
	if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	f.Size, f.SHA256 = size, sum
	ev.Bytes, ev.SHA256 = size, hex.EncodeToString(sum)
	old, oldBlobs, err := s.db.PutFile(ctx, f, parentPath)
	if err != nil {
		s.deleteBlob(ctx, f.BlobID)
		return nil, s.fail(ctx, ev, err)
	}
	if old != nil {
		ev.Detail = "replaced previous version " + old.ID
		s.deleteBlobs(ctx, oldBlobs)
	}
	if s.metrics.Transfer != nil {
		s.metrics.Transfer("in", size)
	}
	if err := s.append(ctx, ev); err != nil {
		return nil, err
	}
	s.fileArrived(ctx, p, f) // folder watches (watch.go)
	return f, nil
}

// writeBlob encrypts r into a new blob, committing it only when r ended
// cleanly. Plaintext exists only in memory, one segment at a time.
func (s *Service) writeBlob(ctx context.Context, blobID string, dek []byte, r io.Reader) (int64, []byte, error) {
	const op = "transfer.Put"
	keyID, err := blobKeyID(blobID)
	if err != nil {
		return 0, nil, err
	}
	bw, err := s.blobs.Create(ctx, blobID)
	if err != nil {
		return 0, nil, err
	}
	ew, err := keys.NewWriter(bw, dek, keyID)
	if err != nil {
		bw.Abort()
		return 0, nil, err
	}
	h := sha256.New()
	bp := s.buffer()
	n, err := copyBuffered(ctx, io.MultiWriter(ew, h), r, *bp)
	s.bufs.Put(bp)
	if err == nil {
		err = ew.Close()
	}
	if err == nil {
		err = bw.Commit()
	}
	if err != nil {
		bw.Abort()
		return 0, nil, classifyReadErr(op, err)
	}
	return n, h.Sum(nil), nil
}

func (s *Service) buffer() *[]byte {
	if b, ok := s.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, copyBufSize)
	return &b
}

// copyBuffered copies with buf, stopping when ctx is done.
func copyBuffered(ctx context.Context, dst io.Writer, src io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := src.Read(buf)
		if m > 0 {
			if _, err := dst.Write(buf[:m]); err != nil {
				return n, err
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// classifyReadErr gives an error from reading an upload body or writing the
// blob its kind.
func classifyReadErr(op string, err error) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return ferry.E(op, ferry.TooLarge, fmt.Sprintf("the upload exceeds the limit of %d bytes", mbe.Limit), err)
	case ferry.KindOf(err) != ferry.Other:
		return err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ferry.E(op, ferry.Invalid, "upload cancelled", err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return ferry.E(op, ferry.Invalid, "upload cut off before its end", err)
	}
	return ferry.E(op, ferry.Invalid, "upload interrupted", err)
}

func blobKeyID(blobID string) ([16]byte, error) {
	var id [16]byte
	b, err := hex.DecodeString(blobID)
	if err != nil || len(b) != 16 {
		return id, ferry.E("transfer.blobKeyID", ferry.Internal, "malformed blob id")
	}
	copy(id[:], b)
	return id, nil
}

// deleteBlobs deletes the blobs of a file whose row is gone.
func (s *Service) deleteBlobs(ctx context.Context, ids []string) {
	for _, id := range ids {
		s.deleteBlob(ctx, id)
	}
}

func (s *Service) deleteBlob(ctx context.Context, id string) {
	if err := s.blobs.Delete(context.WithoutCancel(ctx), id); err != nil && ferry.KindOf(err) != ferry.NotExist {
		s.logger.Error("delete blob", "blob", id, "err", err)
	}
}
