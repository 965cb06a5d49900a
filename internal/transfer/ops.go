package transfer

import (
	"context"
	"encoding/hex"
	"strconv"
	"time"

	"ferry.dev/ferry/internal/ferry"
)

// Entry is one item of a folder listing.
type Entry struct {
	Name     string
	Folder   bool
	Size     int64
	SHA256   []byte
	Modified time.Time
	Expires  time.Time
	Hold     bool
}

// Stat describes the file or folder at path. Files need list or read
// permission on their folder; folders need to be visible to the principal.
func (s *Service) Stat(ctx context.Context, p *ferry.Principal, path string) (*ferry.File, *ferry.Folder, error) {
	const op = "transfer.Stat"
	path, err := clean(op, p, path)
	if err != nil {
		return nil, nil, err
	}
	a, err := s.accessAt(ctx, p, path)
	if err != nil {
		return nil, nil, err
	}
	if fo, err := s.db.FolderByPath(ctx, p.OrgID, path); err == nil {
		if !a.visible {
			return nil, nil, ferry.E(op, ferry.NotExist, "no such file or folder")
		}
		return nil, fo, nil
	} else if ferry.KindOf(err) != ferry.NotExist {
		return nil, nil, err
	}
	parentPath, name := ferry.ParentPath(path)
	pa, err := s.accessAt(ctx, p, parentPath)
	if err != nil {
		return nil, nil, err
	}
	if pa.perm&(ferry.PermList|ferry.PermRead) == 0 {
		if pa.visible {
			return nil, nil, ferry.Errorf(op, ferry.Permission, "you need %q permission on %s", "list", parentPath)
		}
		return nil, nil, ferry.E(op, ferry.NotExist, "no such file or folder")
	}
	parent, err := s.db.FolderByPath(ctx, p.OrgID, parentPath)
	if err != nil {
		return nil, nil, ferry.E(op, ferry.NotExist, "no such file or folder", err)
	}
	f, err := s.db.FileByName(ctx, parent.ID, name)
	if err != nil {
		return nil, nil, ferry.E(op, ferry.NotExist, "no such file or folder", err)
	}
	return f, nil, nil
}

// List returns the entries of the folder at path that the principal may see:
// everything with list permission; otherwise only the sub-folders leading to
// something granted. The listing is audited.
func (s *Service) List(ctx context.Context, p *ferry.Principal, path string) ([]Entry, error) {
	const op = "transfer.List"
	path, err := clean(op, p, path)
	if err != nil {
		return nil, err
	}
	ev := s.event(p, "folder.list", path)
	if err := s.guardFrozen(ctx, op, p, ev); err != nil { // audited, as every refusal
		return nil, err
	}
	grants, err := s.grantsOf(ctx, p)
	if err != nil {
		return nil, err
	}
	a := grants.at(path)
	if !a.visible {
		ev.Outcome, ev.Detail = ferry.OutcomeDenied, "not visible"
		if err := s.append(ctx, ev); err != nil {
			return nil, err
		}
		return nil, ferry.E(op, ferry.NotExist, "no such folder")
	}
	fo, err := s.db.FolderByPath(ctx, p.OrgID, path)
	if err != nil {
		return nil, s.notFound(ctx, op, ev, err)
	}
	ev.Object = fo.ID
	ev.PartyID, _ = s.FolderParty(ctx, fo)
	subs, err := s.db.ChildFolders(ctx, fo.ID)
	if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	var out []Entry
	for _, sub := range subs {
		if !a.perm.Has(ferry.PermList) && !grants.at(sub.Path).visible {
			continue
		}
		out = append(out, Entry{Name: sub.Name, Folder: true, Modified: sub.Created})
	}
	if a.perm.Has(ferry.PermList) {
		files, err := s.db.FilesInFolder(ctx, fo.ID)
		if err != nil {
			return nil, s.fail(ctx, ev, err)
		}
		for _, f := range files {
			out = append(out, Entry{Name: f.Name, Size: f.Size, SHA256: f.SHA256, Modified: f.Modified, Expires: f.Expires, Hold: f.Hold})
		}
	}
	ev.Detail = "entries: " + strconv.Itoa(len(out))
	if err := s.append(ctx, ev); err != nil {
		return nil, err
	}
	return out, nil
}

// Mkdir creates the folder at path; the principal needs write permission on
// the parent, which must exist.
func (s *Service) Mkdir(ctx context.Context, p *ferry.Principal, path string) (*ferry.Folder, error) {
	return s.mkdir(ctx, "transfer.Mkdir", p, path, "", false)
}

// CreateFolder creates the folder at path and any missing parents, optionally
// naming the party whose data it holds. It is for organisation admins and the
// operator (manage permission on the nearest existing ancestor).
func (s *Service) CreateFolder(ctx context.Context, p *ferry.Principal, path, partyID string) (*ferry.Folder, error) {
	return s.mkdir(ctx, "transfer.CreateFolder", p, path, partyID, true)
}

func (s *Service) mkdir(ctx context.Context, op string, p *ferry.Principal, path, partyID string, parents bool) (*ferry.Folder, error) {
	path, err := clean(op, p, path)
	if err != nil {
		return nil, err
	}
	if path == "/" {
		return nil, ferry.E(op, ferry.Exist, "the root folder always exists")
	}
	ev := s.event(p, "folder.create", path)
	ev.PartyID = partyID
	want := ferry.PermWrite
	if parents || partyID != "" {
		want = ferry.PermManage
	}
	parentPath, name := ferry.ParentPath(path)
	if err := s.check(ctx, op, p, ev, parentPath, want); err != nil {
		return nil, err
	}
	parent, err := s.db.FolderByPath(ctx, p.OrgID, parentPath)
	if ferry.KindOf(err) == ferry.NotExist && parents {
		parent, err = s.mkdir(ctx, op, p, parentPath, "", true)
		if ferry.KindOf(err) == ferry.Exist {
			parent, err = s.db.FolderByPath(ctx, p.OrgID, parentPath)
		}
	}
	if ferry.KindOf(err) == ferry.NotExist {
		return nil, s.fail(ctx, ev, ferry.Errorf(op, ferry.NotExist, "folder %s does not exist", parentPath))
	} else if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	f := &ferry.Folder{ID: ferry.NewID(s.rand), OrgID: p.OrgID, ParentID: parent.ID, Name: name, Path: path, PartyID: partyID, Created: s.now().UTC()}
	ev.Object = f.ID
	if err := s.db.CreateFolder(ctx, f); err != nil {
		if ferry.KindOf(err) == ferry.Exist {
			err = ferry.Errorf(op, ferry.Exist, "%s already exists", path)
		}
		return nil, s.fail(ctx, ev, err)
	}
	if err := s.append(ctx, ev); err != nil {
		return nil, err
	}
	return f, nil
}

// Delete removes the file at path, crypto-shredding it (its wrapped data key
// is deleted with its row, then its blob), or the empty folder at path. The
// principal needs delete permission on the parent folder.
func (s *Service) Delete(ctx context.Context, p *ferry.Principal, path string) error {
	const op = "transfer.Delete"
	path, err := clean(op, p, path)
	if err != nil {
		return err
	}
	if path == "/" {
		return ferry.E(op, ferry.Permission, "the root folder cannot be deleted")
	}
	parentPath, _ := ferry.ParentPath(path)
	if fo, err := s.db.FolderByPath(ctx, p.OrgID, path); err == nil {
		ev := s.event(p, "folder.delete", path)
		ev.Object = fo.ID
		if err := s.check(ctx, op, p, ev, parentPath, ferry.PermDelete); err != nil {
			return err
		}
		if err := s.db.DeleteFolder(ctx, fo.ID); err != nil {
			if ferry.KindOf(err) == ferry.Exist {
				err = ferry.Errorf(op, ferry.Exist, "folder %s is not empty", path)
			}
			return s.fail(ctx, ev, err)
		}
		return s.append(ctx, ev)
	}
	f, ev, err := s.lookupFile(ctx, op, p, path, "file.delete", ferry.PermDelete)
	if err != nil {
		return err
	}
	return s.shred(ctx, f, ev)
}

// shred deletes a file's row (and wrapped key) and then its blob.
func (s *Service) shred(ctx context.Context, f *ferry.File, ev *ferry.Event) error {
	blobs, err := s.db.DeleteFile(ctx, f)
	if err != nil {
		return s.fail(ctx, ev, err)
	}
	s.deleteBlobs(ctx, blobs)
	ev.Bytes, ev.SHA256 = f.Size, hex.EncodeToString(f.SHA256)
	return s.append(ctx, ev)
}

// Move renames or moves the file or folder at src to dst within the
// organisation. The principal needs delete permission on src's folder and
// write permission on dst's; dst must not exist.
func (s *Service) Move(ctx context.Context, p *ferry.Principal, src, dst string) error {
	const op = "transfer.Move"
	src, err := clean(op, p, src)
	if err != nil {
		return err
	}
	dst, err = clean(op, p, dst)
	if err != nil {
		return err
	}
	if src == "/" || dst == "/" {
		return ferry.E(op, ferry.Invalid, "the root folder cannot be moved")
	}
	if isAncestorOrSelf(src, dst) {
		return ferry.E(op, ferry.Invalid, "a folder cannot be moved into itself")
	}
	dstParentPath, dstName := ferry.ParentPath(dst)
	srcParentPath, _ := ferry.ParentPath(src)
	fo, ferr := s.db.FolderByPath(ctx, p.OrgID, src)
	var ev *ferry.Event
	var file *ferry.File
	if ferr == nil {
		ev = s.event(p, "folder.move", src)
		ev.Object = fo.ID
		if err := s.check(ctx, op, p, ev, srcParentPath, ferry.PermDelete); err != nil {
			return err
		}
	} else {
		file, ev, err = s.lookupFile(ctx, op, p, src, "file.move", ferry.PermDelete)
		if err != nil {
			return err
		}
	}
	ev.Detail = "to " + dst
	if err := s.check(ctx, op, p, ev, dstParentPath, ferry.PermWrite); err != nil {
		return err
	}
	dstParent, err := s.db.FolderByPath(ctx, p.OrgID, dstParentPath)
	if err != nil {
		return s.notFound(ctx, op, ev, err)
	}
	if file != nil {
		err = s.db.MoveFile(ctx, file.ID, dstParent.ID, dstName, s.now().UTC())
	} else {
		if _, err := s.db.FolderByPath(ctx, p.OrgID, dst); err == nil {
			return s.fail(ctx, ev, ferry.Errorf(op, ferry.Exist, "%s already exists", dst))
		}
		err = s.db.MoveFolder(ctx, fo, dstParent.ID, dstName, dst)
	}
	if err != nil {
		if ferry.KindOf(err) == ferry.Exist {
			err = ferry.Errorf(op, ferry.Exist, "%s already exists", dst)
		}
		return s.fail(ctx, ev, err)
	}
	return s.append(ctx, ev)
}

// Replace moves the file at src to dst, atomically replacing a file already
// at dst (POSIX rename semantics, as SFTP's posix-rename and clients that
// upload to a temporary name expect). The principal needs delete permission
// on src's folder, and write and delete permission on dst's folder. The
// replaced version is crypto-shredded once the move has committed.
func (s *Service) Replace(ctx context.Context, p *ferry.Principal, src, dst string) error {
	const op = "transfer.Replace"
	dst, err := clean(op, p, dst)
	if err != nil {
		return err
	}
	if dst == "/" {
		return ferry.E(op, ferry.Invalid, "the root folder cannot be replaced")
	}
	file, ev, err := s.lookupFile(ctx, op, p, src, "file.move", ferry.PermDelete)
	if err != nil {
		return err
	}
	ev.Detail = "to " + dst + " (replacing)"
	dstParentPath, dstName := ferry.ParentPath(dst)
	if err := s.check(ctx, op, p, ev, dstParentPath, ferry.PermWrite|ferry.PermDelete); err != nil {
		return err
	}
	dstParent, err := s.db.FolderByPath(ctx, p.OrgID, dstParentPath)
	if err != nil {
		return s.notFound(ctx, op, ev, err)
	}
	old, oldBlobs, err := s.db.ReplaceFile(ctx, file.ID, dstParent.ID, dstName, s.now().UTC())
	if err != nil {
		if ferry.KindOf(err) == ferry.Exist {
			err = ferry.Errorf(op, ferry.Exist, "%s is a folder", dst)
		}
		return s.fail(ctx, ev, err)
	}
	if err := s.append(ctx, ev); err != nil {
		return err
	}
	if old != nil {
		dev := s.event(p, "file.delete", dst)
		dev.Object, dev.PartyID = old.ID, old.PartyID
		dev.Detail = "replaced by a rename of " + file.Path
		dev.Bytes, dev.SHA256 = old.Size, hex.EncodeToString(old.SHA256)
		// The row, and with it the wrapped data key, went in the move's
		// transaction; the blob follows.
		s.deleteBlobs(ctx, oldBlobs)
		return s.append(ctx, dev)
	}
	return nil
}

// SetHold puts the file at path on legal hold (it never expires) or releases
// it. It needs manage permission.
func (s *Service) SetHold(ctx context.Context, p *ferry.Principal, path string, hold bool) error {
	const op = "transfer.SetHold"
	action := "file.hold"
	if !hold {
		action = "file.release"
	}
	f, ev, err := s.lookupFile(ctx, op, p, path, action, ferry.PermManage)
	if err != nil {
		return err
	}
	if err := s.db.SetHold(ctx, f.ID, hold); err != nil {
		return s.fail(ctx, ev, err)
	}
	return s.append(ctx, ev)
}

// Sweep crypto-shreds every file whose expiry has passed and that is not on
// hold (DESIGN invariant 8), and every upload abandoned past its expiry, and
// returns how many files and uploads it removed.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	sys := &ferry.Principal{System: true, Remote: "system"}
	n, err := s.sweepUploads(ctx)
	if err != nil {
		return n, err
	}
	for {
		files, err := s.db.ExpiredFiles(ctx, s.now(), 100)
		if err != nil || len(files) == 0 {
			return n, err
		}
		for _, f := range files {
			ev := s.event(sys, "file.expire", f.Path)
			ev.OrgID, ev.Object, ev.PartyID = f.OrgID, f.ID, f.PartyID
			ev.Detail = "expired " + f.Expires.Format(time.RFC3339)
			if err := s.shred(ctx, f, ev); err != nil {
				return n, err
			}
			n++
		}
	}
}

// OrgName returns the name of the principal's organisation.
func (s *Service) OrgName(ctx context.Context, p *ferry.Principal) (string, error) {
	if p == nil || p.OrgID == "" {
		return "", ferry.E("transfer.OrgName", ferry.Unauthenticated, "authentication required")
	}
	o, err := s.db.OrgByID(ctx, p.OrgID)
	if err != nil {
		return "", err
	}
	return o.Name, nil
}

// UploaderName returns how to name the uploader of f to p: the email of a
// user of p's organisation, or the principal name recorded for other
// writers (the operator, a share link…).
func (s *Service) UploaderName(ctx context.Context, p *ferry.Principal, f *ferry.File) string {
	if p == nil || f.OrgID != p.OrgID {
		return ""
	}
	if u, err := s.db.UserByID(ctx, f.UploaderID); err == nil && u.OrgID == f.OrgID {
		return u.Email
	}
	return f.UploaderID
}
