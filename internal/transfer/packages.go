package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/mail"
)

// Packages (ad hoc transfer).
//
// A package's files are ordinary files in a system-managed folder of its own,
// /.ferry-packages/ID, and its recipients' replies in /.ferry-packages/ID/reply,
// so every byte is encrypted, audited and expired like any other file. Those
// folders hang off no parent: they never appear in a listing, and grants do
// not reach them (grantSet.unmasked refuses every package path, even to
// organisation admins). Only checkPackage authorizes there, by the package's
// own record: its sender writes while it is a draft and reads it afterwards;
// a recipient (a guest signed in by one-time code for this package, or a
// Ferry user it was addressed to) reads its files only through
// OpenPackageFile, which counts downloads and writes receipts, and writes
// replies when the sender allowed them.

// PackagesRoot is the folder under which package folders live.
const PackagesRoot = "/.ferry-packages"

// DefaultPackageMaxBytes is the most a package may hold, summed over its
// files, when Config says nothing else.
const DefaultPackageMaxBytes int64 = 10 << 30

// Code and link rules.
const (
	GuestCodeTTL   = 10 * time.Minute
	GuestCodeTries = 5
	// ExpiryNotice is how long before its expiry a package's sender is told.
	ExpiryNotice = 24 * time.Hour
)

func isPackagePath(p string) bool {
	return p == PackagesRoot || strings.HasPrefix(p, PackagesRoot+"/")
}

// packageOf parses a package folder path: /.ferry-packages/ID or its reply
// folder /.ferry-packages/ID/reply.
func packageOf(path string) (id string, reply, ok bool) {
	rest, found := strings.CutPrefix(path, PackagesRoot+"/")
	if !found {
		return "", false, false
	}
	id, sub, _ := strings.Cut(rest, "/")
	switch sub {
	case "":
		return id, false, id != ""
	case "reply":
		return id, true, id != ""
	}
	return "", false, false
}

// PackageFolder returns the path of a package's folder, where its files go.
func PackageFolder(id string) string { return PackagesRoot + "/" + id }

func replyFolder(id string) string { return PackageFolder(id) + "/reply" }

// checkPackage authorizes an action at a package folder path (see the top
// of this file). Anything not allowed is audited as denied and answered as
// not existing.
func (s *Service) checkPackage(ctx context.Context, op string, p *ferry.Principal, ev *ferry.Event, path string, want ferry.Perm) error {
	deny := func(why string) error {
		ev.Outcome, ev.Detail = ferry.OutcomeDenied, why
		if err := s.append(ctx, ev); err != nil {
			return err
		}
		return ferry.E(op, ferry.NotExist, "no such file or folder")
	}
	id, reply, ok := packageOf(path)
	if !ok || p == nil {
		return deny("package folders are not reachable this way")
	}
	pkg, err := s.db.PackageByID(ctx, id)
	if ferry.KindOf(err) == ferry.NotExist || err == nil && pkg.OrgID != p.OrgID {
		return deny("no such package")
	} else if err != nil {
		return err
	}
	ev.PartyID = pkg.PartyID
	var perm ferry.Perm
	switch {
	case p.UserID != "" && p.UserID == pkg.SenderID:
		perm = ferry.PermRead
		if !reply && pkg.Status == ferry.PackageDraft {
			perm |= ferry.PermWrite | ferry.PermDelete
		}
	case reply && pkg.AllowReply && pkg.Active(s.now()):
		if r, err := s.recipientOf(ctx, p, pkg); err == nil && r != nil {
			perm = ferry.PermWrite
		}
	}
	switch ev.Action {
	case "upload.create", "upload.write", "file.write", "file.read", "file.delete":
	case "file.hold", "file.release":
		// Legal hold is for whoever holds every permission in the
		// organisation; it exposes no content.
		perm = 0
		if p.Operator || p.System || p.Role == ferry.RoleAdmin {
			perm = ferry.PermManage
		}
	default:
		perm = 0
	}
	perm &= scopePerms(p.Scope)
	if !perm.Has(want) {
		return deny("package " + id + ": missing permission " + want.String())
	}
	if ev.Action == "upload.create" {
		return s.checkPackageQuota(ctx, op, ev, pkg, reply, ev.Bytes)
	}
	return nil
}

// checkPackageQuota refuses an upload of size bytes that would take the
// package's folder past the limit: before any byte is sent.
func (s *Service) checkPackageQuota(ctx context.Context, op string, ev *ferry.Event, pkg *ferry.Package, reply bool, size int64) error {
	folder := pkg.FolderID
	if reply {
		folder = pkg.ReplyFolderID
	}
	files, err := s.db.FilesInFolder(ctx, folder)
	if err != nil {
		return err
	}
	total := size
	for _, f := range files {
		total += f.Size
	}
	if total > s.packageMax() {
		ev.Outcome, ev.Detail = ferry.OutcomeDenied, fmt.Sprintf("package quota: %d bytes of %d", total, s.packageMax())
		if err := s.append(ctx, ev); err != nil {
			return err
		}
		return ferry.Errorf(op, ferry.TooLarge, "a package may hold at most %d bytes; this file would make it %d", s.packageMax(), total)
	}
	return nil
}

func (s *Service) packageMax() int64 {
	if s.pkgMax > 0 {
		return s.pkgMax
	}
	return DefaultPackageMaxBytes
}

// SetPackageMaxBytes sets the most a package may hold (0: the default).
func (s *Service) SetPackageMaxBytes(n int64) { s.pkgMax = n }

// recipientOf returns the recipient record p acts as on pkg: a guest signed
// in for this very package, or a Ferry user it was addressed to. nil when p
// is neither.
func (s *Service) recipientOf(ctx context.Context, p *ferry.Principal, pkg *ferry.Package) (*ferry.PackageRecipient, error) {
	rs, err := s.db.RecipientsOf(ctx, pkg.ID)
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		switch {
		case p.Guest != "" && p.PackageID == pkg.ID && p.UserID == "" && r.Email == p.Guest && r.UserID == "" && !pkg.RequireSignIn:
			return r, nil
		case p.UserID != "" && p.Guest == "" && p.OrgID == pkg.OrgID && (r.UserID == p.UserID || r.Email == strings.ToLower(p.Email)):
			return r, nil
		}
	}
	return nil, nil
}

// PackageDraft is what a sender composes.
type PackageDraft struct {
	To            []string
	Subject       string
	Message       string
	Expires       time.Duration // 0: the organisation's file expiry policy
	MaxDownloads  int           // per file and recipient; 0: unlimited
	RequireSignIn bool
	Notify        bool
	AllowReply    bool
}

// PackageView is a package as its sender (or a signed-in recipient) sees it.
type PackageView struct {
	*ferry.Package
	Recipients []*ferry.PackageRecipient
	Files      []*ferry.File
	Replies    []*ferry.PackageReply
	Receipts   []*ferry.PackageReceipt
	ReplyFiles []*ferry.File
}

// CreatePackage validates a draft and stores the package (status draft)
// with its folders and recipients. Everything is checked here, before any
// file is uploaded or mail sent: addresses (invalid or duplicated ones are
// an Invalid error naming them), line breaks in the subject, lengths, the
// expiry.
func (s *Service) CreatePackage(ctx context.Context, p *ferry.Principal, d PackageDraft) (*ferry.Package, error) {
	const op = "transfer.CreatePackage"
	if p == nil || p.UserID == "" || p.OrgID == "" || p.Guest != "" {
		return nil, ferry.E(op, ferry.Unauthenticated, "sign in to send packages")
	}
	if err := shareScope(op, p); err != nil {
		return nil, s.refusePackage(ctx, p, "package.create", "", err)
	}
	if p.Role == ferry.RoleExternal {
		return nil, s.refusePackage(ctx, p, "package.create", "", ferry.E(op, ferry.Permission, "external users cannot send packages"))
	}
	d.Subject = strings.TrimSpace(d.Subject)
	if err := ferry.ValidHeaderText(op, "the subject", d.Subject); err != nil {
		return nil, err
	}
	if len(d.Subject) > ferry.MaxSubjectLen {
		return nil, ferry.Errorf(op, ferry.Invalid, "the subject is longer than %d bytes", ferry.MaxSubjectLen)
	}
	if len(d.Message) > ferry.MaxMessageLen {
		return nil, ferry.Errorf(op, ferry.Invalid, "the message is longer than %d bytes", ferry.MaxMessageLen)
	}
	if d.MaxDownloads < 0 || d.MaxDownloads > 1000 {
		return nil, ferry.E(op, ferry.Invalid, "max downloads must be between 0 (unlimited) and 1000")
	}
	var to []string
	for _, t := range d.To {
		to = append(to, strings.Split(t, ",")...)
	}
	addrs, err := mail.ParseRecipients(to)
	if err != nil {
		return nil, err
	}
	org, err := s.db.OrgByID(ctx, p.OrgID)
	if err != nil {
		return nil, err
	}
	maxExp := time.Duration(org.RetentionDays) * 24 * time.Hour
	if org.RetentionDays <= 0 {
		maxExp = ferry.DefaultRetentionDays * 24 * time.Hour
	}
	switch {
	case d.Expires == 0:
		d.Expires = maxExp
	case d.Expires < time.Hour:
		return nil, ferry.E(op, ferry.Invalid, "a package must stay available for at least an hour")
	case d.Expires > maxExp:
		return nil, ferry.Errorf(op, ferry.Invalid, "your organisation keeps files at most %d days", int(maxExp/(24*time.Hour)))
	}
	now := s.now().UTC()
	pkg := &ferry.Package{
		ID: ferry.NewID(s.rand), OrgID: p.OrgID, SenderID: p.UserID, SenderEmail: p.Email, Subject: d.Subject, Message: d.Message,
		Status: ferry.PackageDraft, Expires: now.Add(d.Expires), MaxDownloads: d.MaxDownloads,
		RequireSignIn: d.RequireSignIn, Notify: d.Notify, AllowReply: d.AllowReply, Created: now,
	}
	ev := s.event(p, "package.create", PackageFolder(pkg.ID))
	ev.Object = pkg.ID
	var rcpts []*ferry.PackageRecipient
	for _, a := range addrs {
		a = strings.ToLower(a)
		r := &ferry.PackageRecipient{ID: ferry.NewID(s.rand), PackageID: pkg.ID, Email: a, Created: now, TokenHash: s.randomHash()}
		// A user of the sender's organisation signs in to see it; anyone
		// else (users of other organisations included: tenants stay apart)
		// is a guest with a one-time code.
		if u, err := s.db.UserByEmail(ctx, a); err == nil && !u.Disabled && u.OrgID == p.OrgID {
			r.UserID = u.ID
			if u.PartyID != "" && pkg.PartyID == "" {
				pkg.PartyID = u.PartyID
			}
		}
		rcpts = append(rcpts, r)
	}
	if pkg.PartyID == "" {
		pkg.PartyID, err = s.partyByDomain(ctx, p.OrgID, addrs)
		if err != nil {
			return nil, s.fail(ctx, ev, err)
		}
	}
	ev.PartyID = pkg.PartyID
	root, err := s.packagesRoot(ctx, p.OrgID)
	if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	folder := &ferry.Folder{ID: ferry.NewID(s.rand), OrgID: p.OrgID, ParentID: root.ID, Name: pkg.ID, Path: PackageFolder(pkg.ID), PartyID: pkg.PartyID, Created: now}
	rf := &ferry.Folder{ID: ferry.NewID(s.rand), OrgID: p.OrgID, ParentID: folder.ID, Name: "reply", Path: replyFolder(pkg.ID), Created: now}
	pkg.FolderID, pkg.ReplyFolderID = folder.ID, rf.ID
	if err := s.db.CreatePackage(ctx, pkg, []*ferry.Folder{folder, rf}, rcpts); err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	ev.Detail = "to " + strings.Join(addrs, ", ") + "; expires " + pkg.Expires.Format(time.RFC3339)
	if err := s.append(ctx, ev); err != nil {
		return nil, err
	}
	return pkg, nil
}

// shareScope refuses an API token whose scope lacks "share": composing,
// sending and recalling packages need it.
func shareScope(op string, p *ferry.Principal) error {
	if p.Scope != 0 && !p.Scope.Has(ferry.ScopeShare) {
		return ferry.Errorf(op, ferry.Permission, "this token's scope (%s) does not allow sending packages", p.Scope.String())
	}
	return nil
}

func (s *Service) randomHash() []byte {
	var b [32]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		panic("transfer: reading random bytes: " + err.Error())
	}
	h := sha256.Sum256(b[:])
	return h[:]
}

// partyByDomain finds the party one of whose contacts shares a recipient's
// email domain.
func (s *Service) partyByDomain(ctx context.Context, orgID string, addrs []string) (string, error) {
	parties, err := s.db.PartiesOfOrg(ctx, orgID)
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		_, dom, _ := strings.Cut(strings.ToLower(a), "@")
		for _, pt := range parties {
			for _, c := range pt.Contacts {
				if _, cd, _ := strings.Cut(strings.ToLower(c), "@"); cd == dom {
					return pt.ID, nil
				}
			}
		}
	}
	return "", nil
}

// packagesRoot returns (creating it if needed) the folder above every
// package folder of an organisation. It has no parent, so it is no child of
// the root folder and never listed.
func (s *Service) packagesRoot(ctx context.Context, orgID string) (*ferry.Folder, error) {
	f, err := s.db.FolderByPath(ctx, orgID, PackagesRoot)
	if ferry.KindOf(err) != ferry.NotExist {
		return f, err
	}
	f = &ferry.Folder{ID: ferry.NewID(s.rand), OrgID: orgID, Name: PackagesRoot[1:], Path: PackagesRoot, Created: s.now().UTC()}
	if err := s.db.CreateFolder(ctx, f); ferry.KindOf(err) == ferry.Exist {
		return s.db.FolderByPath(ctx, orgID, PackagesRoot)
	} else if err != nil {
		return nil, err
	}
	return f, nil
}

// ownPackage returns a package p sent; anything else is NotExist, audited
// as a denied action (someone else's package id, or a guessed one).
func (s *Service) ownPackage(ctx context.Context, op, action string, p *ferry.Principal, id string) (*ferry.Package, error) {
	if p == nil || p.UserID == "" {
		return nil, ferry.E(op, ferry.Unauthenticated, "authentication required")
	}
	pkg, err := s.db.PackageByID(ctx, id)
	if ferry.KindOf(err) == ferry.NotExist || err == nil && pkg.SenderID != p.UserID {
		return nil, s.refusePackage(ctx, p, action, id, ferry.E(op, ferry.NotExist, "no such package"))
	}
	return pkg, err
}

// refusePackage audits a refused package action as denied, naming the
// package id asked for (the same words whether it exists elsewhere or not:
// the record is the caller's organisation's), and returns err.
func (s *Service) refusePackage(ctx context.Context, p *ferry.Principal, action, id string, err error) error {
	if p == nil {
		return err
	}
	ev := s.event(p, action, "")
	ev.Object, ev.Outcome, ev.Detail = id, ferry.OutcomeDenied, ferry.Message(err)
	if aerr := s.append(ctx, ev); aerr != nil {
		return aerr
	}
	return err
}

// SendPackage sends a draft: each recipient gets a link of its own (a
// 256-bit secret stored only hashed) by mail; the package's files expire
// with it.
func (s *Service) SendPackage(ctx context.Context, p *ferry.Principal, id string) (*ferry.Package, error) {
	const op = "transfer.SendPackage"
	if err := shareScope(op, p); err != nil {
		return nil, s.refusePackage(ctx, p, "package.send", id, err)
	}
	pkg, err := s.ownPackage(ctx, op, "package.send", p, id)
	if err != nil {
		return nil, err
	}
	ev := s.event(p, "package.send", PackageFolder(id))
	ev.Object, ev.PartyID = id, pkg.PartyID
	if pkg.Status != ferry.PackageDraft {
		return nil, ferry.E(op, ferry.Conflict, "the package was already sent")
	}
	files, err := s.db.FilesInFolder(ctx, pkg.FolderID)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, ferry.E(op, ferry.Invalid, "the package has no files; upload at least one")
	}
	var total int64
	var names []string
	for _, f := range files {
		total += f.Size
		names = append(names, f.Name)
	}
	if total > s.packageMax() {
		return nil, s.fail(ctx, ev, ferry.Errorf(op, ferry.TooLarge, "a package may hold at most %d bytes, this one has %d", s.packageMax(), total))
	}
	rcpts, err := s.db.RecipientsOf(ctx, id)
	if err != nil {
		return nil, err
	}
	secrets := map[string]string{}
	hashes := map[string][]byte{}
	for _, r := range rcpts {
		var b [32]byte
		if _, err := io.ReadFull(s.rand, b[:]); err != nil {
			return nil, ferry.E(op, ferry.Internal, err)
		}
		sec := base64.RawURLEncoding.EncodeToString(b[:])
		secrets[r.ID] = sec
		hashes[r.ID] = HashToken(sec)
	}
	now := s.now().UTC()
	if err := s.db.SendPackage(ctx, id, now, pkg.Expires, hashes); err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	pkg.Status, pkg.Sent = ferry.PackageSent, now
	ev.Bytes = total
	ev.Detail = fmt.Sprintf("%d files to %d recipients", len(files), len(rcpts))
	if err := s.append(ctx, ev); err != nil {
		return nil, err
	}
	for _, r := range rcpts {
		link := "/p/" + secrets[r.ID]
		if r.UserID != "" || pkg.RequireSignIn {
			link = "/packages/" + id
		}
		s.notify(ctx, "package.received", []string{r.Email}, map[string]any{
			"Sender": pkg.SenderEmail, "Subject": pkg.Subject, "Message": pkg.Message, "Files": names,
			"Expires": pkg.Expires.Format("2006-01-02 15:04 MST"), "Link": s.link(link), "SignIn": r.UserID != "" || pkg.RequireSignIn,
		})
	}
	return pkg, nil
}

// HashToken is how a package link's secret is stored.
func HashToken(secret string) []byte {
	h := sha256.Sum256([]byte("ferry package link v1\x00" + secret))
	return h[:]
}

func (s *Service) link(path string) string {
	if s.mail == nil {
		return path
	}
	return s.mail.Link(path)
}

// Link returns the absolute URL of path on the public listener as configured
// (--public-url), or path itself when the service has no outbox.
func (s *Service) Link(path string) string { return s.link(path) }

// notify enqueues a notification; a failure is logged, never fatal to the
// action that caused it (the outbox itself retries delivery).
func (s *Service) notify(ctx context.Context, kind string, to []string, data map[string]any) {
	if s.mail == nil {
		s.logger.Warn("no mail outbox: notification not sent", "kind", kind)
		return
	}
	if err := s.mail.Notify(context.WithoutCancel(ctx), kind, "en", to, data); err != nil {
		s.logger.Error("notification", "kind", kind, "err", err)
	}
}

// RecallPackage stops a package's links at once and crypto-shreds its
// files and replies, except files on legal hold.
func (s *Service) RecallPackage(ctx context.Context, p *ferry.Principal, id string) error {
	const op = "transfer.RecallPackage"
	if err := shareScope(op, p); err != nil {
		return s.refusePackage(ctx, p, "package.recall", id, err)
	}
	pkg, err := s.ownPackage(ctx, op, "package.recall", p, id)
	if err != nil {
		return err
	}
	ctx = context.WithoutCancel(ctx)
	ev := s.event(p, "package.recall", PackageFolder(id))
	ev.Object, ev.PartyID = id, pkg.PartyID
	if err := s.db.RecallPackage(ctx, id, s.now().UTC()); err != nil {
		return s.fail(ctx, ev, err)
	}
	shredded, held := 0, 0
	for _, folder := range []string{pkg.FolderID, pkg.ReplyFolderID} {
		files, err := s.db.FilesInFolder(ctx, folder)
		if err != nil {
			return s.fail(ctx, ev, err)
		}
		for _, f := range files {
			if f.Hold {
				held++
				continue
			}
			fev := s.event(p, "file.delete", f.Path)
			fev.Object, fev.PartyID, fev.Detail = f.ID, f.PartyID, "package "+id+" recalled"
			if err := s.shred(ctx, f, fev); err != nil {
				return err
			}
			shredded++
		}
	}
	ev.Detail = fmt.Sprintf("%d files shredded, %d on hold kept", shredded, held)
	return s.append(ctx, ev)
}

// Packages lists the packages p sent and those addressed to p.
func (s *Service) Packages(ctx context.Context, p *ferry.Principal) (sent, received []*ferry.Package, err error) {
	if p == nil || p.UserID == "" {
		return nil, nil, ferry.E("transfer.Packages", ferry.Unauthenticated, "authentication required")
	}
	if sent, err = s.db.PackagesBySender(ctx, p.UserID); err != nil {
		return nil, nil, err
	}
	received, err = s.db.PackagesReceived(ctx, p.UserID, strings.ToLower(p.Email))
	return sent, received, err
}

// Package returns a package with its recipients, files, replies and
// receipts, for its sender; a Ferry user it was sent to sees it without the
// other recipients and receipts.
func (s *Service) Package(ctx context.Context, p *ferry.Principal, id string) (*PackageView, error) {
	const op = "transfer.Package"
	if p == nil || p.OrgID == "" {
		return nil, ferry.E(op, ferry.Unauthenticated, "authentication required")
	}
	pkg, err := s.db.PackageByID(ctx, id)
	if ferry.KindOf(err) == ferry.NotExist {
		return nil, s.refusePackage(ctx, p, "package.open", id, ferry.E(op, ferry.NotExist, "no such package"))
	} else if err != nil {
		return nil, err
	}
	v := &PackageView{Package: pkg}
	switch {
	case p.UserID != "" && pkg.SenderID == p.UserID:
		if v.Recipients, err = s.db.RecipientsOf(ctx, id); err != nil {
			return nil, err
		}
		if v.Receipts, err = s.db.ReceiptsOf(ctx, id); err != nil {
			return nil, err
		}
		if v.ReplyFiles, err = s.db.FilesInFolder(ctx, pkg.ReplyFolderID); err != nil {
			return nil, err
		}
	default:
		r, err := s.recipientOf(ctx, p, pkg)
		if err != nil {
			return nil, err
		}
		if r == nil || pkg.Status == ferry.PackageDraft {
			return nil, s.refusePackage(ctx, p, "package.open", id, ferry.E(op, ferry.NotExist, "no such package"))
		}
		if !pkg.Active(s.now()) {
			return nil, ferry.E(op, ferry.Expired, "this package is no longer available")
		}
		v.Recipients = []*ferry.PackageRecipient{r}
		if err := s.db.MarkOpened(ctx, r.ID, s.now().UTC()); err != nil {
			return nil, err
		}
	}
	if v.Files, err = s.db.FilesInFolder(ctx, pkg.FolderID); err != nil {
		return nil, err
	}
	if v.Replies, err = s.db.RepliesOf(ctx, id); err != nil {
		return nil, err
	}
	if p.UserID != pkg.SenderID {
		mine := v.Replies[:0]
		for _, r := range v.Replies {
			if r.RecipientID == v.Recipients[0].ID {
				mine = append(mine, r)
			}
		}
		v.Replies = mine
	}
	return v, nil
}

// PackageLink resolves a package link's secret for the guest pages. An
// unknown secret, and one whose package is recalled or expired or whose
// files the recipient has all downloaded as often as allowed, are the same
// NotExist error (no oracle); each is audited as a denied package.open.
func (s *Service) PackageLink(ctx context.Context, secret, remote string) (*ferry.Package, *ferry.PackageRecipient, error) {
	const op = "transfer.PackageLink"
	gone := ferry.E(op, ferry.NotExist, "this link is not valid or no longer available")
	ev := &ferry.Event{Action: "package.open", Outcome: ferry.OutcomeDenied, Actor: "anonymous", Remote: remote, Protocol: "https"}
	deny := func(why string) error {
		ev.Detail = why
		if err := s.append(ctx, ev); err != nil {
			return err
		}
		return gone
	}
	if len(secret) != 43 {
		return nil, nil, deny("malformed link")
	}
	r, err := s.db.RecipientByTokenHash(ctx, HashToken(secret))
	if ferry.KindOf(err) == ferry.NotExist {
		return nil, nil, deny("unknown link")
	} else if err != nil {
		return nil, nil, err
	}
	pkg, err := s.db.PackageByID(ctx, r.PackageID)
	if err != nil {
		return nil, nil, err
	}
	ev.Actor, ev.OrgID, ev.Object, ev.PartyID = r.Email, pkg.OrgID, pkg.ID, pkg.PartyID
	if !pkg.Active(s.now()) {
		return nil, nil, deny("package " + pkg.Status + ", expires " + pkg.Expires.Format(time.RFC3339))
	}
	if pkg.MaxDownloads > 0 {
		exhausted, err := s.exhausted(ctx, pkg, r)
		if err != nil {
			return nil, nil, err
		}
		if exhausted {
			return nil, nil, deny("every file downloaded the most times allowed")
		}
	}
	return pkg, r, nil
}

// exhausted reports whether the recipient downloaded every file of the
// package as often as allowed: the link has nothing more to give.
func (s *Service) exhausted(ctx context.Context, pkg *ferry.Package, r *ferry.PackageRecipient) (bool, error) {
	files, err := s.db.FilesInFolder(ctx, pkg.FolderID)
	if err != nil {
		return false, err
	}
	counts, err := s.db.Downloads(ctx, r.ID)
	if err != nil {
		return false, err
	}
	for _, f := range files {
		if counts[f.ID] < pkg.MaxDownloads {
			return false, nil
		}
	}
	return true, nil
}

// MailGuestCode sends a recipient its one-time code (issued by auth); with
// an empty code it records that a code was asked for and refused (too
// many requests).
func (s *Service) MailGuestCode(ctx context.Context, pkg *ferry.Package, r *ferry.PackageRecipient, code string, remote string) error {
	ev := &ferry.Event{Action: "package.otp.send", Outcome: ferry.OutcomeOK, Actor: r.Email, OrgID: pkg.OrgID, Object: pkg.ID, PartyID: pkg.PartyID, Remote: remote, Protocol: "https"}
	if code == "" {
		ev.Outcome, ev.Detail = ferry.OutcomeDenied, "too many codes asked for"
		return s.append(ctx, ev)
	}
	if err := s.append(ctx, ev); err != nil {
		return err
	}
	s.notify(ctx, "package.code", []string{r.Email}, map[string]any{"Code": code, "Sender": pkg.SenderEmail, "Subject": pkg.Subject, "Minutes": int(GuestCodeTTL / time.Minute)})
	return nil
}

// OpenPackageFile authorizes a recipient's download of one of a package's
// files: the package must be active, p one of its recipients (see
// recipientOf) and the file's download limit for p not reached. The
// download is counted and a receipt recorded (and mailed to the sender if
// asked) before the handle is returned; Read audits it as file.read with the
// recipient as actor and the package's party.
func (s *Service) OpenPackageFile(ctx context.Context, p *ferry.Principal, id, fileID string) (*Download, error) {
	const op = "transfer.OpenPackageFile"
	if p == nil || p.OrgID == "" {
		return nil, ferry.E(op, ferry.Unauthenticated, "authentication required")
	}
	pkg, err := s.db.PackageByID(ctx, id)
	if ferry.KindOf(err) == ferry.NotExist || err == nil && pkg.OrgID != p.OrgID {
		// Another organisation's package, or none: refused like a
		// non-recipient of one's own organisation's, and audited too.
		return nil, s.refusePackage(ctx, p, "file.read", id, ferry.E(op, ferry.NotExist, "no such file"))
	} else if err != nil {
		return nil, err
	}
	ev := s.event(p, "file.read", PackageFolder(id))
	ev.PartyID = pkg.PartyID
	deny := func(kind ferry.Kind, msg, why string) error {
		ev.Outcome, ev.Detail = ferry.OutcomeDenied, "package "+id+": "+why
		if err := s.append(ctx, ev); err != nil {
			return err
		}
		return ferry.E(op, kind, msg)
	}
	r, err := s.recipientOf(ctx, p, pkg)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, deny(ferry.NotExist, "no such file", "not a recipient")
	}
	if !pkg.Active(s.now()) {
		return nil, deny(ferry.NotExist, "this package is no longer available", "package "+pkg.Status+" or expired")
	}
	f, err := s.db.FileByID(ctx, fileID)
	if err != nil || f.FolderID != pkg.FolderID {
		return nil, deny(ferry.NotExist, "no such file", "no such file "+fileID)
	}
	ev.Path, ev.Object, ev.SHA256 = f.Path, f.ID, hex.EncodeToString(f.SHA256)
	// A frozen recipient is refused before the download is counted and a
	// receipt written (Read would refuse it, after both).
	if err := s.guardFrozen(ctx, op, p, ev); err != nil {
		return nil, err
	}
	ok, err := s.db.CountDownload(ctx, r.ID, f.ID, pkg.MaxDownloads)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, deny(ferry.Expired, fmt.Sprintf("the download limit of this file (%d) is reached", pkg.MaxDownloads), "download limit reached")
	}
	ev.Detail = "package " + id
	now := s.now().UTC()
	rc := &ferry.PackageReceipt{ID: ferry.NewID(s.rand), PackageID: id, RecipientID: r.ID, Email: r.Email, FileID: f.ID, FileName: f.Name, Bytes: f.Size, Remote: p.Remote, Time: now}
	if err := s.db.AddReceipt(ctx, rc); err != nil {
		return nil, err
	}
	if pkg.Notify {
		s.notify(ctx, "package.downloaded", []string{pkg.SenderEmail}, map[string]any{
			"Recipient": r.Email, "File": f.Name, "Subject": pkg.Subject, "Time": now.Format("2006-01-02 15:04:05 MST"),
			"Remote": p.Remote, "Link": s.link("/packages/" + id),
		})
	}
	return &Download{File: f, s: s, p: p, ev: ev}, nil
}

// PutReply stores a file a recipient sends back into the package's reply
// folder (when the sender allowed replies) and tells the sender.
func (s *Service) PutReply(ctx context.Context, p *ferry.Principal, id, name string, r io.Reader) (*ferry.File, error) {
	const op = "transfer.PutReply"
	if err := ferry.ValidName(name); err != nil {
		return nil, err
	}
	if err := ferry.ValidHeaderText(op, "the file name", name); err != nil {
		return nil, err
	}
	pkg, err := s.db.PackageByID(ctx, id)
	if err != nil || p == nil || pkg.OrgID != p.OrgID {
		return nil, s.refusePackage(ctx, p, "package.reply", id, ferry.E(op, ferry.NotExist, "no such package"))
	}
	rcpt, err := s.recipientOf(ctx, p, pkg)
	if err != nil {
		return nil, err
	}
	if rcpt == nil {
		return nil, s.refusePackage(ctx, p, "package.reply", id, ferry.E(op, ferry.NotExist, "no such package"))
	}
	if !pkg.AllowReply {
		return nil, ferry.E(op, ferry.Permission, "the sender did not allow replies to this package")
	}
	if _, err := s.db.FileByName(ctx, pkg.ReplyFolderID, name); err == nil {
		return nil, ferry.Errorf(op, ferry.Exist, "a reply called %q is already there; rename your file", name)
	}
	replies, err := s.db.FilesInFolder(ctx, pkg.ReplyFolderID)
	if err != nil {
		return nil, err
	}
	left := s.packageMax()
	for _, f := range replies {
		left -= f.Size
	}
	f, err := s.Put(ctx, p, replyFolder(id)+"/"+name, &quotaReader{r: r, left: left})
	if err != nil {
		return nil, err
	}
	if err := s.packageReplied(ctx, p, pkg, rcpt, f); err != nil {
		return nil, err
	}
	return f, nil
}

func (s *Service) packageReplied(ctx context.Context, p *ferry.Principal, pkg *ferry.Package, rcpt *ferry.PackageRecipient, f *ferry.File) error {
	if err := s.db.SetFolderFilesExpiry(ctx, pkg.ReplyFolderID, pkg.Expires); err != nil {
		return err
	}
	now := s.now().UTC()
	if err := s.db.AddReply(ctx, &ferry.PackageReply{ID: ferry.NewID(s.rand), PackageID: pkg.ID, RecipientID: rcpt.ID, Email: rcpt.Email, FileID: f.ID, Name: f.Name, Size: f.Size, Created: now}); err != nil {
		return err
	}
	ev := s.event(p, "package.reply", f.Path)
	ev.Object, ev.PartyID, ev.Bytes, ev.SHA256, ev.Detail = pkg.ID, pkg.PartyID, f.Size, hex.EncodeToString(f.SHA256), "file "+f.ID
	if err := s.append(ctx, ev); err != nil {
		return err
	}
	s.notify(ctx, "package.reply", []string{pkg.SenderEmail}, map[string]any{"Recipient": rcpt.Email, "File": f.Name, "Subject": pkg.Subject, "Link": s.link("/packages/" + pkg.ID)})
	return nil
}

// NotifyExpiring mails the senders of packages that expire within
// ExpiryNotice, once per package. The sweeper calls it.
func (s *Service) NotifyExpiring(ctx context.Context) (int, error) {
	now := s.now().UTC()
	pkgs, err := s.db.PackagesExpiring(ctx, now, now.Add(ExpiryNotice), 500)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, pkg := range pkgs {
		ok, err := s.db.MarkExpiryNoticed(ctx, pkg.ID)
		if err != nil {
			return n, err
		}
		if !ok {
			continue
		}
		s.notify(ctx, "package.expiring", []string{pkg.SenderEmail}, map[string]any{
			"Subject": pkg.Subject, "Expires": pkg.Expires.Format("2006-01-02 15:04 MST"), "Link": s.link("/packages/" + pkg.ID),
		})
		n++
	}
	return n, nil
}

// SetMail sets the outbox notifications go to; ferry serve creates the
// outbox after the service. Call it before serving.
func (s *Service) SetMail(o *mail.Outbox) { s.mail = o }

// quotaReader fails with TooLarge once more than left bytes were read.
type quotaReader struct {
	r    io.Reader
	left int64
}

func (q *quotaReader) Read(p []byte) (int, error) {
	n, err := q.r.Read(p)
	q.left -= int64(n)
	if q.left < 0 {
		return n, ferry.E("transfer.PutReply", ferry.TooLarge, "the replies would take the package past its quota")
	}
	return n, err
}
