package transfer

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
)

// Share links (docs/SHARES.md). A visitor holding a link's token acts as a
// principal with ShareID set and no user: what it may do comes from the share
// record alone, loaded again on every request, so a revoked or expired link,
// or one used from outside its address ranges, stops at once. Every answer
// about a link that cannot be used is the same NotExist error: no oracle
// telling a guesser which tokens exist, expired or ran out.

// ShareOptions is what a user asks for when making a share link.
type ShareOptions struct {
	Path         string
	Expires      time.Time // zero: ferry.DefaultShareDays from now
	Password     string    // empty: none
	MaxDownloads int       // 0: no limit
	AllowedIPs   []netip.Prefix
	DropBox      bool // folders only: visitors upload, cannot list or read
}

// Limits on share links.
const (
	maxShareIPs       = 32
	maxShareDownloads = 1_000_000
	shareVisitTTL     = 12 * time.Hour
	// ShareNoticeQuiet is the least time between two "share link used"
	// mails about one link.
	ShareNoticeQuiet = time.Hour
	// DefaultWatchBatch is the least time between two "new file" mails
	// about one watched folder to one user; files arriving in between are
	// listed together in the next.
	DefaultWatchBatch = 10 * time.Minute
)

// shareState is the Service's state for share links and watches.
type shareState struct {
	mu     sync.Mutex
	batch  time.Duration          // watch batching window
	timers map[string]*time.Timer // watch id → pending flush
}

// SetWatchBatch sets how long "new file" notifications about one watched
// folder wait to be sent together (DefaultWatchBatch when 0).
func (s *Service) SetWatchBatch(d time.Duration) {
	s.shares.mu.Lock()
	defer s.shares.mu.Unlock()
	s.shares.batch = d
}

// watchBatch returns the watch batching window. Notifications go through
// notify and link (packages.go), like the packages' own.
func (s *Service) watchBatch() time.Duration {
	s.shares.mu.Lock()
	b := s.shares.batch
	s.shares.mu.Unlock()
	if b <= 0 {
		b = DefaultWatchBatch
	}
	return b
}

// errShareGone is the one answer about a link that cannot be used.
func errShareGone(op string) error {
	return ferry.E(op, ferry.NotExist, "this link does not exist or is no longer available")
}

func hashShareToken(tok string) []byte {
	h := sha256.Sum256([]byte("ferry share v1\x00" + tok))
	return h[:]
}

// shareTarget resolves what a share points at now: the path of its folder
// (which follows renames) or of its file.
func (s *Service) shareTarget(ctx context.Context, sh *ferry.Share) (string, *ferry.Folder, error) {
	fo, err := s.db.FolderByID(ctx, sh.FolderID)
	if err != nil {
		return "", nil, err
	}
	if sh.Folder {
		return fo.Path, fo, nil
	}
	return joinClean(fo.Path, sh.Name), fo, nil
}

func joinClean(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// CreateShare makes a share link for the file or folder at o.Path and returns
// it with its token, which is shown this once and never stored. The
// principal needs share permission: on the folder, or on a file's folder.
func (s *Service) CreateShare(ctx context.Context, p *ferry.Principal, o ShareOptions) (*ferry.Share, string, error) {
	const op = "transfer.CreateShare"
	pth, err := clean(op, p, o.Path)
	if err != nil {
		return nil, "", err
	}
	if p.UserID == "" || p.ShareID != "" || p.PackageID != "" {
		return nil, "", ferry.E(op, ferry.Permission, "only users can make share links")
	}
	if isPackagePath(pth) {
		return nil, "", ferry.E(op, ferry.NotExist, "no such file or folder")
	}
	ev := s.event(p, "share.create", pth)
	now := s.now().UTC()
	sh := &ferry.Share{ID: ferry.NewID(s.rand), OrgID: p.OrgID, UserID: p.UserID, Email: p.Email, Path: pth, Created: now,
		MaxDownloads: o.MaxDownloads, DropBox: o.DropBox}
	fo, ferr := s.db.FolderByPath(ctx, p.OrgID, pth)
	switch {
	case ferr == nil:
		sh.Folder, sh.FolderID = true, fo.ID
		if err := s.check(ctx, op, p, ev, pth, ferry.PermShare); err != nil {
			return nil, "", err
		}
	case ferry.KindOf(ferr) == ferry.NotExist:
		parentPath, name := ferry.ParentPath(pth)
		if err := s.check(ctx, op, p, ev, parentPath, ferry.PermShare); err != nil {
			return nil, "", err
		}
		if fo, err = s.db.FolderByPath(ctx, p.OrgID, parentPath); err != nil {
			return nil, "", s.notFound(ctx, op, ev, err)
		}
		f, err := s.db.FileByName(ctx, fo.ID, name)
		if err != nil {
			return nil, "", s.notFound(ctx, op, ev, err)
		}
		sh.FolderID, sh.Name = fo.ID, name
		ev.SHA256 = hex.EncodeToString(f.SHA256)
	default:
		return nil, "", s.fail(ctx, ev, ferr)
	}
	if ev.PartyID, err = s.FolderParty(ctx, fo); err != nil {
		return nil, "", s.fail(ctx, ev, err)
	}
	if err := s.shareOptions(ctx, op, p, sh, o, now); err != nil {
		return nil, "", s.fail(ctx, ev, err)
	}
	var raw [32]byte
	if _, err := io.ReadFull(s.rand, raw[:]); err != nil {
		return nil, "", s.fail(ctx, ev, ferry.E(op, ferry.Internal, err))
	}
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	sh.TokenHash = hashShareToken(tok)
	// The exfiltration guard: sharing a canary (or a folder holding one)
	// freezes the sharer and is refused.
	if err := s.guardShare(ctx, p, pth); err != nil {
		ev.Outcome, ev.Detail = ferry.OutcomeDenied, "refused by the guard: "+ferry.Message(err)
		if aerr := s.append(ctx, ev); aerr != nil {
			return nil, "", aerr
		}
		return nil, "", err
	}
	if err := s.db.CreateShare(ctx, sh); err != nil {
		return nil, "", s.fail(ctx, ev, err)
	}
	ev.Object = sh.ID
	ev.Detail = shareDetail(sh)
	if err := s.append(ctx, ev); err != nil {
		return nil, "", err
	}
	return sh, tok, nil
}

// shareOptions validates and applies the options of a new link.
func (s *Service) shareOptions(ctx context.Context, op string, p *ferry.Principal, sh *ferry.Share, o ShareOptions, now time.Time) error {
	org, err := s.db.OrgByID(ctx, p.OrgID)
	if err != nil {
		return err
	}
	maxDays := org.RetentionDays
	if maxDays <= 0 {
		maxDays = ferry.DefaultRetentionDays
	}
	latest := now.AddDate(0, 0, maxDays)
	sh.Expires = o.Expires.UTC()
	if o.Expires.IsZero() {
		sh.Expires = now.AddDate(0, 0, min(ferry.DefaultShareDays, maxDays))
	}
	switch {
	case !sh.Expires.After(now):
		return ferry.E(op, ferry.Invalid, "the expiry must be in the future")
	case sh.Expires.After(latest.Add(time.Minute)):
		return ferry.Errorf(op, ferry.Invalid, "a share link may last at most %d days (the organisation's retention)", maxDays)
	case o.DropBox && !sh.Folder:
		return ferry.E(op, ferry.Invalid, "only a folder can be a drop box")
	case o.MaxDownloads < 0 || o.MaxDownloads > maxShareDownloads:
		return ferry.Errorf(op, ferry.Invalid, "maximum downloads must be between 0 (no limit) and %d", maxShareDownloads)
	case o.DropBox && o.MaxDownloads != 0:
		return ferry.E(op, ferry.Invalid, "a drop box has no downloads to limit")
	case len(o.AllowedIPs) > maxShareIPs:
		return ferry.Errorf(op, ferry.Invalid, "at most %d address ranges", maxShareIPs)
	}
	for _, pf := range o.AllowedIPs {
		if !pf.IsValid() {
			return ferry.E(op, ferry.Invalid, "invalid address range")
		}
		sh.AllowedIPs = append(sh.AllowedIPs, pf.Masked())
	}
	if o.Password != "" {
		if sh.PasswordHash, err = auth.HashPassword(o.Password, auth.DefaultPasswordParams, s.rand); err != nil {
			return err
		}
	}
	return nil
}

func shareDetail(sh *ferry.Share) string {
	var b strings.Builder
	if sh.Folder {
		b.WriteString("folder")
	} else {
		b.WriteString("file")
	}
	if sh.DropBox {
		b.WriteString(", drop box")
	}
	b.WriteString(", expires " + sh.Expires.Format(time.RFC3339))
	if sh.PasswordHash != "" {
		b.WriteString(", password")
	}
	if sh.MaxDownloads > 0 {
		b.WriteString(", max downloads " + strconv.Itoa(sh.MaxDownloads))
	}
	if len(sh.AllowedIPs) > 0 {
		ips := make([]string, len(sh.AllowedIPs))
		for i, a := range sh.AllowedIPs {
			ips[i] = a.String()
		}
		b.WriteString(", from " + strings.Join(ips, " "))
	}
	return b.String()
}

// Shares lists share links that are neither revoked nor expired: the
// principal's own, or with all set (organisation admins and the operator
// only) every link of the organisation.
func (s *Service) Shares(ctx context.Context, p *ferry.Principal, all bool) ([]*ferry.Share, error) {
	const op = "transfer.Shares"
	if p == nil || p.OrgID == "" || p.ShareID != "" {
		return nil, ferry.E(op, ferry.Unauthenticated, "authentication required")
	}
	if all {
		if p.Role != ferry.RoleAdmin && !p.Operator {
			return nil, ferry.E(op, ferry.Permission, "only organisation admins see every share link")
		}
		return s.db.SharesOfOrg(ctx, p.OrgID, s.now())
	}
	return s.db.SharesOfUser(ctx, p.UserID, s.now())
}

// RevokeShare revokes a share link: it stops working at once. Its maker and
// the organisation's admins may revoke it; to anyone else it does not exist.
func (s *Service) RevokeShare(ctx context.Context, p *ferry.Principal, id string) error {
	const op = "transfer.RevokeShare"
	if p == nil || p.OrgID == "" || p.ShareID != "" {
		return ferry.E(op, ferry.Unauthenticated, "authentication required")
	}
	ev := s.event(p, "share.revoke", "")
	ev.Object = id
	if p.Scope != 0 && !p.Scope.Has(ferry.ScopeShare) {
		ev.Outcome, ev.Detail = ferry.OutcomeDenied, "token scope "+p.Scope.String()
		if aerr := s.append(ctx, ev); aerr != nil {
			return aerr
		}
		return ferry.Errorf(op, ferry.Permission, "this token's scope (%s) does not allow managing share links", p.Scope.String())
	}
	sh, err := s.db.ShareByID(ctx, id)
	if err != nil || sh.OrgID != p.OrgID || (sh.UserID != p.UserID && p.Role != ferry.RoleAdmin && !p.Operator) {
		ev.Outcome, ev.Detail = ferry.OutcomeDenied, "no such share link"
		if aerr := s.append(ctx, ev); aerr != nil {
			return aerr
		}
		return ferry.E(op, ferry.NotExist, "no such share link")
	}
	ev.Path = sh.Path
	if fo, err := s.db.FolderByID(ctx, sh.FolderID); err == nil {
		ev.PartyID, _ = s.FolderParty(ctx, fo)
	}
	if sh.Revoked {
		return nil
	}
	if err := s.db.RevokeShare(ctx, id); err != nil {
		return s.fail(ctx, ev, err)
	}
	ev.Detail = "shared by " + sh.Email
	return s.append(ctx, ev)
}

// ShareVisit is a visitor's hold on a share link for one request.
type ShareVisit struct {
	Share *ferry.Share
	// Principal is the visitor; nil while a password is due.
	Principal *ferry.Principal
	// Path is where the shared file or folder is now.
	Path string
	// NeedPassword is set when the link has a password the visitor has not
	// given in this browser.
	NeedPassword bool
	folder       *ferry.Folder
}

// Name is what the visitor sees the shared item called.
func (v *ShareVisit) Name() string {
	if v.Path == "/" {
		return "Shared folder"
	}
	_, n := ferry.ParentPath(v.Path)
	return n
}

// VisitShare resolves a link's token for a visitor at remote. visitSecret is
// the secret the visitor got for giving the link's password (the empty
// string when none). Every reason the link cannot be used — unknown,
// malformed, revoked, expired, used up, outside its address ranges, its file
// or folder gone — gives the same NotExist error, audited as share.denied.
func (s *Service) VisitShare(ctx context.Context, token, remote, visitSecret string) (*ShareVisit, error) {
	const op = "transfer.VisitShare"
	anon := &ferry.Principal{Remote: remote, Protocol: "https", Email: "share-visitor"}
	if len(token) != 43 {
		return nil, s.shareDenied(ctx, op, anon, nil, "malformed token")
	}
	sh, err := s.db.ShareByTokenHash(ctx, hashShareToken(token))
	if ferry.KindOf(err) == ferry.NotExist {
		return nil, s.shareDenied(ctx, op, anon, nil, "unknown token")
	} else if err != nil {
		return nil, err
	}
	// The stored hash is the lookup key; compare again in constant time.
	if subtle.ConstantTimeCompare(sh.TokenHash, hashShareToken(token)) != 1 {
		return nil, s.shareDenied(ctx, op, anon, nil, "unknown token")
	}
	p := visitor(sh, remote)
	v, err := s.visitCheck(ctx, op, p, sh)
	if err != nil {
		return nil, err
	}
	if sh.PasswordHash != "" {
		ok := false
		if visitSecret != "" {
			if ok, err = s.db.ShareVisitValid(ctx, hashShareToken(visitSecret), sh.ID, s.now()); err != nil {
				return nil, err
			}
		}
		if !ok {
			v.NeedPassword, v.Principal = true, nil
		}
	}
	return v, nil
}

func visitor(sh *ferry.Share, remote string) *ferry.Principal {
	return &ferry.Principal{ShareID: sh.ID, OrgID: sh.OrgID, Remote: remote, Protocol: "https", Email: "share:" + sh.ID}
}

// visitCheck checks a share's state for a request by its visitor p, from the
// record just loaded.
func (s *Service) visitCheck(ctx context.Context, op string, p *ferry.Principal, sh *ferry.Share) (*ShareVisit, error) {
	now := s.now()
	switch {
	case sh.Revoked:
		return nil, s.shareDenied(ctx, op, p, sh, "revoked")
	case !now.Before(sh.Expires):
		return nil, s.shareDenied(ctx, op, p, sh, "expired")
	case !sh.Folder && sh.Exhausted():
		return nil, s.shareDenied(ctx, op, p, sh, "download limit reached")
	case !sh.AddrAllowed(p.Remote):
		return nil, s.shareDenied(ctx, op, p, sh, "address outside the link's ranges")
	}
	pth, fo, err := s.shareTarget(ctx, sh)
	if err == nil && isPackagePath(pth) {
		err = ferry.E(op, ferry.NotExist, "package folder")
	}
	if ferry.KindOf(err) == ferry.NotExist {
		return nil, s.shareDenied(ctx, op, p, sh, "shared item no longer exists")
	} else if err != nil {
		return nil, err
	}
	// A link lasts only as long as its maker could make it: a disabled
	// account or a withdrawn share permission ends it.
	if ok, err := s.makerMayShare(ctx, sh, fo); err != nil {
		return nil, err
	} else if !ok {
		return nil, s.shareDenied(ctx, op, p, sh, "its maker may no longer share it")
	}
	if !sh.Folder {
		if _, err := s.db.FileByName(ctx, fo.ID, sh.Name); ferry.KindOf(err) == ferry.NotExist {
			return nil, s.shareDenied(ctx, op, p, sh, "shared file no longer exists")
		} else if err != nil {
			return nil, err
		}
	}
	return &ShareVisit{Share: sh, Principal: p, Path: pth, folder: fo}, nil
}

// makerMayShare reports whether the link's maker is still an enabled user
// of its organisation with share permission on the shared folder (or the
// shared file's folder).
func (s *Service) makerMayShare(ctx context.Context, sh *ferry.Share, fo *ferry.Folder) (bool, error) {
	u, err := s.db.UserByID(ctx, sh.UserID)
	if ferry.KindOf(err) == ferry.NotExist {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if u.Disabled || u.OrgID != sh.OrgID {
		return false, nil
	}
	a, err := s.accessAt(ctx, &ferry.Principal{UserID: u.ID, Email: u.Email, OrgID: u.OrgID, Role: u.Role}, fo.Path)
	if err != nil {
		return false, err
	}
	return a.perm.Has(ferry.PermShare), nil
}

// shareDenied audits a refused use of a link and returns the uniform error.
func (s *Service) shareDenied(ctx context.Context, op string, p *ferry.Principal, sh *ferry.Share, why string) error {
	ev := s.event(p, "share.denied", "")
	ev.Outcome, ev.Detail = ferry.OutcomeDenied, why
	if sh != nil {
		ev.Object, ev.Path = sh.ID, sh.Path
		ev.Detail += "; shared by " + sh.Email
	}
	if err := s.append(ctx, ev); err != nil {
		return err
	}
	return errShareGone(op)
}

// reload loads the visit's share again and checks it, so that revocation,
// expiry and address ranges hold on every step of a request.
func (s *Service) reload(ctx context.Context, op string, v *ShareVisit) (*ShareVisit, error) {
	if v == nil || v.Principal == nil || v.Share == nil {
		return nil, ferry.E(op, ferry.Unauthenticated, "the link's password is required")
	}
	sh, err := s.db.ShareByID(ctx, v.Share.ID)
	if ferry.KindOf(err) == ferry.NotExist {
		return nil, errShareGone(op)
	} else if err != nil {
		return nil, err
	}
	nv, err := s.visitCheck(ctx, op, v.Principal, sh)
	if err != nil {
		return nil, err
	}
	return nv, nil
}

// UnlockShare checks a link's password. On success it returns a new secret
// for the visitor's browser, which VisitShare accepts until the link ends or
// 12 hours pass. A wrong password is Unauthenticated and audited.
func (s *Service) UnlockShare(ctx context.Context, v *ShareVisit, remote, password string) (string, error) {
	const op = "transfer.UnlockShare"
	sh := v.Share
	p := visitor(sh, remote)
	if sh.PasswordHash == "" {
		return "", nil
	}
	if len(password) > 1024 || !auth.VerifyPassword(sh.PasswordHash, password) {
		ev := s.event(p, "share.denied", v.Path)
		ev.Outcome, ev.Object, ev.Detail = ferry.OutcomeDenied, sh.ID, "wrong password; shared by "+sh.Email
		if err := s.append(ctx, ev); err != nil {
			return "", err
		}
		return "", ferry.E(op, ferry.Unauthenticated, "wrong password")
	}
	var raw [32]byte
	if _, err := io.ReadFull(s.rand, raw[:]); err != nil {
		return "", ferry.E(op, ferry.Internal, err)
	}
	secret := base64.RawURLEncoding.EncodeToString(raw[:])
	now := s.now()
	until := min(sh.Expires.UnixMicro(), now.Add(shareVisitTTL).UnixMicro())
	if err := s.db.DeleteExpiredShareVisits(ctx, now); err != nil {
		return "", err
	}
	if err := s.db.CreateShareVisit(ctx, hashShareToken(secret), sh.ID, now, time.UnixMicro(until)); err != nil {
		return "", err
	}
	s.shareUsed(ctx, v, p, "password", v.Path, 0)
	return secret, nil
}

// ShareList lists a folder inside a shared folder: rel is a path relative to
// the shared folder ("" for itself). A drop box cannot be listed.
func (s *Service) ShareList(ctx context.Context, v *ShareVisit, rel string) ([]Entry, error) {
	const op = "transfer.ShareList"
	v, err := s.reload(ctx, op, v)
	if err != nil {
		return nil, err
	}
	if !v.Share.Folder {
		return nil, ferry.E(op, ferry.Invalid, "this link shares one file")
	}
	if v.Share.DropBox {
		return nil, ferry.E(op, ferry.Permission, "this link only accepts uploads")
	}
	p := v.Principal
	pth, err := shareJoin(op, v.Path, rel)
	if err != nil {
		return nil, err
	}
	ev := s.event(p, "folder.list", pth)
	ev.Detail = "via share link " + v.Share.ID + " of " + v.Share.Email
	fo, err := s.db.FolderByPath(ctx, p.OrgID, pth)
	if err != nil {
		return nil, s.shareMiss(ctx, op, ev, err)
	}
	ev.Object = fo.ID
	ev.PartyID, _ = s.FolderParty(ctx, fo)
	subs, err := s.db.ChildFolders(ctx, fo.ID)
	if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	files, err := s.db.FilesInFolder(ctx, fo.ID)
	if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	out := make([]Entry, 0, len(subs)+len(files))
	for _, sub := range subs {
		if isPackagePath(sub.Path) {
			continue
		}
		out = append(out, Entry{Name: sub.Name, Folder: true, Modified: sub.Created})
	}
	for _, f := range files {
		out = append(out, Entry{Name: f.Name, Size: f.Size, SHA256: f.SHA256, Modified: f.Modified, Expires: f.Expires})
	}
	ev.Detail += "; entries: " + strconv.Itoa(len(out))
	if err := s.append(ctx, ev); err != nil {
		return nil, err
	}
	return out, nil
}

// shareMiss records a visitor's request for something that is not in the
// shared folder, keeping the link and its maker in the record.
func (s *Service) shareMiss(ctx context.Context, op string, ev *ferry.Event, err error) error {
	if ferry.KindOf(err) != ferry.NotExist {
		return s.fail(ctx, ev, err)
	}
	ev.Outcome, ev.Detail = ferry.OutcomeError, "no such file or folder; "+ev.Detail
	if aerr := s.append(ctx, ev); aerr != nil {
		return aerr
	}
	return ferry.E(op, ferry.NotExist, "no such file or folder")
}

// shareJoin puts a visitor's relative path under the shared folder. It is
// cleaned like every path: "..", "." and empty elements are refused, so the
// result is always the folder or below it.
func shareJoin(op, base, rel string) (string, error) {
	rel = strings.Trim(rel, "/")
	if rel == "" {
		return base, nil
	}
	c, err := ferry.CleanPath("/" + rel)
	if err != nil {
		return "", ferry.E(op, ferry.NotExist, "no such file or folder", err)
	}
	full := joinClean(base, strings.TrimPrefix(c, "/"))
	if full != base && !strings.HasPrefix(full, strings.TrimSuffix(base, "/")+"/") {
		return "", ferry.E(op, ferry.NotExist, "no such file or folder")
	}
	// Packages live in a system folder reached only through their own
	// rules, even when the root is shared.
	if isPackagePath(full) {
		return "", ferry.E(op, ferry.NotExist, "no such file or folder")
	}
	return full, nil
}

// ShareStat describes the shared file, or a file inside a shared folder, for
// the visitor's page. It reads nothing and counts no download.
func (s *Service) ShareStat(ctx context.Context, v *ShareVisit, rel string) (*ferry.File, error) {
	const op = "transfer.ShareStat"
	v, err := s.reload(ctx, op, v)
	if err != nil {
		return nil, err
	}
	if v.Share.DropBox {
		return nil, ferry.E(op, ferry.Permission, "this link only accepts uploads")
	}
	pth := v.Path
	if v.Share.Folder {
		if pth, err = shareJoin(op, v.Path, rel); err != nil {
			return nil, err
		}
	} else if strings.Trim(rel, "/") != "" {
		return nil, ferry.E(op, ferry.NotExist, "no such file or folder")
	}
	parent, name := ferry.ParentPath(pth)
	fo, err := s.db.FolderByPath(ctx, v.Share.OrgID, parent)
	if err != nil {
		return nil, ferry.E(op, ferry.NotExist, "no such file or folder")
	}
	f, err := s.db.FileByName(ctx, fo.ID, name)
	if err != nil {
		return nil, ferry.E(op, ferry.NotExist, "no such file or folder")
	}
	return f, nil
}

// ShareOpen authorizes a visitor's download of the shared file, or of a
// file inside a shared folder (rel relative to it), and counts it against
// the link's limit, atomically: once the limit is reached no further
// download starts, however many race. Reading is audited as for any
// download, naming the link and its maker.
func (s *Service) ShareOpen(ctx context.Context, v *ShareVisit, rel string) (*Download, error) {
	const op = "transfer.ShareOpen"
	v, err := s.reload(ctx, op, v)
	if err != nil {
		return nil, err
	}
	if v.Share.DropBox {
		return nil, ferry.E(op, ferry.Permission, "this link only accepts uploads")
	}
	p := v.Principal
	pth := v.Path
	if v.Share.Folder {
		if pth, err = shareJoin(op, v.Path, rel); err != nil {
			return nil, err
		}
	} else if strings.Trim(rel, "/") != "" {
		return nil, ferry.E(op, ferry.NotExist, "no such file or folder")
	}
	ev := s.event(p, "file.read", pth)
	ev.Detail = "via share link " + v.Share.ID + " of " + v.Share.Email
	parent, name := ferry.ParentPath(pth)
	if pth == v.Path && v.Share.Folder {
		return nil, ferry.E(op, ferry.Invalid, "that is a folder")
	}
	fo, err := s.db.FolderByPath(ctx, p.OrgID, parent)
	if err != nil {
		return nil, s.shareMiss(ctx, op, ev, err)
	}
	f, err := s.db.FileByName(ctx, fo.ID, name)
	if err != nil {
		return nil, s.shareMiss(ctx, op, ev, err)
	}
	ev.Object, ev.PartyID, ev.SHA256 = f.ID, f.PartyID, hex.EncodeToString(f.SHA256)
	// A frozen link is refused before its download is counted: Read would
	// refuse it anyway, but only after the limit had been spent.
	if err := s.guardFrozen(ctx, op, p, ev); err != nil {
		return nil, err
	}
	if err := s.db.CountShareDownload(ctx, v.Share.ID, s.now()); ferry.KindOf(err) == ferry.NotExist {
		return nil, s.shareDenied(ctx, op, p, v.Share, "download limit reached")
	} else if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	s.shareUsed(ctx, v, p, "download", pth, f.Size)
	return &Download{File: f, s: s, p: p, ev: ev}, nil
}

// SharePut stores a visitor's upload to a drop box as the file name in the
// shared folder. A name already taken gets a suffix rather than replacing
// anything: a visitor never overwrites or learns of a file. The write goes
// through Put (encryption, party, audit) with the drop box's write
// permission (shareGrants).
func (s *Service) SharePut(ctx context.Context, v *ShareVisit, name string, r io.Reader) (*ferry.File, error) {
	const op = "transfer.SharePut"
	v, err := s.reload(ctx, op, v)
	if err != nil {
		return nil, err
	}
	if !v.Share.DropBox {
		return nil, ferry.E(op, ferry.Permission, "this link does not accept uploads")
	}
	name = path.Base(strings.ReplaceAll(name, "\\", "/")) // browsers may send a client path
	if err := ferry.ValidName(name); err != nil {
		return nil, err
	}
	target := joinClean(v.Path, name)
	if _, err := s.db.FileByName(ctx, v.folder.ID, name); err == nil {
		ext := path.Ext(name)
		var sfx [4]byte
		if _, err := io.ReadFull(s.rand, sfx[:]); err != nil {
			// A suffix not random could name a file an earlier visitor
			// dropped, and Put would replace it.
			return nil, ferry.E(op, ferry.Internal, "cannot choose a free name", err)
		}
		alt := strings.TrimSuffix(name, ext) + " (" + hex.EncodeToString(sfx[:]) + ")" + ext
		if ferry.ValidName(alt) != nil {
			return nil, ferry.E(op, ferry.Invalid, "choose a shorter file name")
		}
		target = joinClean(v.Path, alt)
	}
	f, err := s.Put(ctx, v.Principal, target, r)
	if err != nil {
		return nil, err
	}
	s.shareUsed(ctx, v, v.Principal, "upload", target, f.Size)
	return f, nil
}

// shareGrants is what a share-link visitor is granted through the ordinary
// checks: only a drop box's write permission on its folder, and only while
// the link is usable from the visitor's address. Reads and listings of
// shared items go through ShareOpen and ShareList, which authorize from the
// share record themselves.
func (s *Service) shareGrants(ctx context.Context, p *ferry.Principal) (grantSet, error) {
	sh, err := s.db.ShareByID(ctx, p.ShareID)
	if ferry.KindOf(err) == ferry.NotExist {
		return grantSet{}, nil
	} else if err != nil {
		return grantSet{}, err
	}
	if !sh.DropBox || !sh.Active(s.now()) || sh.OrgID != p.OrgID || !sh.AddrAllowed(p.Remote) {
		return grantSet{}, nil
	}
	fo, err := s.db.FolderByID(ctx, sh.FolderID)
	if err != nil {
		return grantSet{}, nil
	}
	return grantSet{grants: []db.PathGrant{{Path: fo.Path, Perms: ferry.PermWrite}}, mask: ferry.PermWrite}, nil
}

// shareUsed records a use of a link, audits it, and mails the link's maker
// (at most once an hour per link).
func (s *Service) shareUsed(ctx context.Context, v *ShareVisit, p *ferry.Principal, action, pth string, size int64) {
	sh := v.Share
	now := s.now()
	ctx = context.WithoutCancel(ctx)
	if err := s.db.RecordShareUse(ctx, ferry.NewID(s.rand), sh.ID, action, pth, p.Remote, now); err != nil {
		s.logger.Error("record share use", "share", sh.ID, "err", err)
	}
	ev := s.event(p, "share.use", pth)
	ev.Object, ev.Bytes = sh.ID, size
	ev.Detail = action + "; shared by " + sh.Email
	if v.folder != nil {
		ev.PartyID, _ = s.FolderParty(ctx, v.folder)
	}
	if err := s.append(ctx, ev); err != nil {
		s.logger.Error("audit append failed", "action", ev.Action, "err", err)
	}
	if s.mail == nil || action == "password" {
		return
	}
	claimed, err := s.db.ClaimShareNotice(ctx, sh.ID, now, now.Add(-ShareNoticeQuiet))
	if err != nil || !claimed {
		return
	}
	data := map[string]any{
		"Sharer": sh.Email, "Path": sh.Path, "Action": action, "File": pth, "Remote": p.Remote,
		"Time": now.UTC().Format(time.RFC1123), "Link": s.link("/shares"), "ShareID": sh.ID,
		"Downloads": fmt.Sprint(sh.Downloads + boolToInt(action == "download")),
	}
	s.notify(ctx, "share_used", []string{sh.Email}, data)
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
