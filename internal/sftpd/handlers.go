package sftpd

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"sync"
	"time"

	"github.com/pkg/sftp"

	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/transfer"
)

// handlers serve one SFTP session of one principal: pkg/sftp calls them for
// every request, and they translate each into a transfer call. Paths arrive
// cleaned by SFTP's own rules ("/.." is "/"), relative to the organisation's
// root; transfer validates them again (NUL, control characters, length).
type handlers struct {
	ctx    context.Context
	tr     *transfer.Service
	p      *ferry.Principal
	logger *slog.Logger
	shared *budget // the server's budget for out-of-order write data

	mu      sync.Mutex
	open    int // open file and folder handles
	uploads map[*upload]bool
}

var (
	_ sftp.FileReader           = (*handlers)(nil)
	_ sftp.FileWriter           = (*handlers)(nil)
	_ sftp.PosixRenameFileCmder = (*handlers)(nil)
	_ sftp.StatVFSFileCmder     = (*handlers)(nil)
	_ sftp.LstatFileLister      = (*handlers)(nil)
	_ sftp.RealPathFileLister   = (*handlers)(nil)
)

func newHandlers(ctx context.Context, tr *transfer.Service, p *ferry.Principal, shared *budget, logger *slog.Logger) *handlers {
	return &handlers{ctx: ctx, tr: tr, p: p, shared: shared, logger: logger, uploads: map[*upload]bool{}}
}

// status maps err for the client; see toStatus.
func (h *handlers) status(op string) func(error) error {
	return func(err error) error { return toStatus(h.logger, op, err) }
}

// guard turns a panic in a handler into an error status, so that one bad
// request cannot take the server down.
func (h *handlers) guard(op string, err *error) {
	if r := recover(); r != nil {
		h.logger.Error("sftp handler panicked", "op", op, "panic", r, "user", h.p.Email)
		*err = &statusError{sftp.ErrSSHFxFailure, "internal error"}
	}
}

// acquire counts a new open handle, refusing past maxOpenHandle.
func (h *handlers) acquire() (release func(), err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.open >= maxOpenHandle {
		return nil, errTooManyOpen
	}
	h.open++
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			h.open--
			h.mu.Unlock()
		})
	}, nil
}

// busy reports whether the session has open handles.
func (h *handlers) busy() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.open > 0
}

// abortUploads fails every upload still open (the session is ending).
func (h *handlers) abortUploads() {
	h.mu.Lock()
	ups := make([]*upload, 0, len(h.uploads))
	for u := range h.uploads {
		ups = append(ups, u)
	}
	h.mu.Unlock()
	for _, u := range ups {
		u.abort()
	}
}

// Fileread implements sftp.FileReader: open a file for reading.
func (h *handlers) Fileread(r *sftp.Request) (_ io.ReaderAt, err error) {
	defer h.guard("open", &err)
	release, err := h.acquire()
	if err != nil {
		return nil, err
	}
	dl, err := h.tr.Open(h.ctx, h.p, r.Filepath)
	if err != nil {
		release()
		return nil, toStatus(h.logger, "open", err)
	}
	return newDownload(h.ctx, dl, dl.File.Size, h.status("read"), release), nil
}

// Filewrite implements sftp.FileWriter: open a file for writing, which
// starts a session of a resumable upload (see upload). An open with truncate
// starts a new upload, discarding the user's unfinished ones to the path;
// one without (OpenSSH's reput, append) continues the user's unfinished
// upload to the path if there is one.
func (h *handlers) Filewrite(r *sftp.Request) (_ io.WriterAt, err error) {
	defer h.guard("open", &err)
	flags := r.Pflags()
	if flags.Excl {
		if f, fo, err := h.tr.Stat(h.ctx, h.p, r.Filepath); err == nil && (f != nil || fo != nil) {
			return nil, &statusError{sftp.ErrSSHFxFailure, r.Filepath + " already exists"}
		}
	}
	release, err := h.acquire()
	if err != nil {
		return nil, err
	}
	u, err := h.openUpload(r.Filepath, flags.Trunc)
	if err != nil {
		release()
		return nil, toStatus(h.logger, "open", err)
	}
	h.mu.Lock()
	h.uploads[u] = true
	h.mu.Unlock()
	u.onClose = func() {
		h.mu.Lock()
		delete(h.uploads, u)
		h.mu.Unlock()
		release()
	}
	return u, nil
}

// openUpload returns the handle of an upload session to path.
func (h *handlers) openUpload(path string, trunc bool) (*upload, error) {
	keepEmpty := trunc
	if !trunc {
		pending, err := h.pendingUpload(path)
		if err != nil {
			return nil, err
		}
		if pending != nil {
			u := newUpload(h.ctx, h, path, pending.ID, pending.Received, h.shared, h.status("write"))
			u.resumed = true
			return u, nil
		}
		_, _, err = h.tr.Stat(h.ctx, h.p, path)
		keepEmpty = ferry.KindOf(err) == ferry.NotExist
	}
	// CreateUpload checks everything an upload needs (permission, the
	// parent folder, not a folder), so that errors surface at open.
	up, err := h.tr.CreateUpload(h.ctx, h.p, path, transfer.SizeDeferred, nil)
	if err != nil {
		return nil, err
	}
	if trunc {
		if _, err := h.cancelPending(path, up.ID); err != nil {
			h.tr.CancelUpload(context.WithoutCancel(h.ctx), h.p, up.ID)
			return nil, err
		}
	}
	u := newUpload(h.ctx, h, path, up.ID, 0, h.shared, h.status("write"))
	u.keepEmpty = keepEmpty
	return u, nil
}

// pendingUpload returns the user's newest unfinished SFTP upload (of
// deferred length) to path, or nil.
func (h *handlers) pendingUpload(path string) (*ferry.Upload, error) {
	ups, err := h.tr.Uploads(h.ctx, h.p, path)
	if err != nil {
		return nil, err
	}
	for _, u := range ups {
		if u.Size == transfer.SizeDeferred {
			return u, nil
		}
	}
	return nil, nil
}

// cancelPending discards the user's unfinished SFTP uploads to path, except
// keep, and returns how many there were.
func (h *handlers) cancelPending(path, keep string) (int, error) {
	ups, err := h.tr.Uploads(h.ctx, h.p, path)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, u := range ups {
		if u.Size != transfer.SizeDeferred || u.ID == keep {
			continue
		}
		err := h.tr.CancelUpload(context.WithoutCancel(h.ctx), h.p, u.ID)
		if err != nil && ferry.KindOf(err) != ferry.NotExist {
			return n, err
		}
		n++
	}
	return n, nil
}

// beginPart implements uploadStore.
func (h *handlers) beginPart(ctx context.Context, id string, offset int64) (uploadPart, error) {
	w, u, err := h.tr.OpenUploadPart(ctx, h.p, id, offset, nil)
	switch {
	case err != nil:
		return nil, err
	case w == nil:
		// Cannot happen for SFTP uploads, whose length is open.
		return nil, ferry.Errorf("sftpd.beginPart", ferry.Conflict, "the upload has all of its %d bytes", u.Size)
	}
	return transferPart{w}, nil
}

// transferPart is a transfer.UploadPart as an uploadPart.
type transferPart struct{ *transfer.UploadPart }

func (p transferPart) finish(cause error) (int64, error) {
	_, n, err := p.Finish(cause)
	return n, err
}

// completeUpload implements uploadStore.
func (h *handlers) completeUpload(ctx context.Context, id string) error {
	_, err := h.tr.CompleteUpload(ctx, h.p, id)
	return err
}

// cancelUpload implements uploadStore.
func (h *handlers) cancelUpload(ctx context.Context, id string) error {
	return h.tr.CancelUpload(ctx, h.p, id)
}

// Filecmd implements sftp.FileCmder.
func (h *handlers) Filecmd(r *sftp.Request) (err error) {
	defer h.guard(r.Method, &err)
	st := h.status(r.Method)
	switch r.Method {
	case "Setstat":
		// Permissions, owners and times have no meaning in Ferry; a size
		// change would need partial rewrites. Accepted and ignored, as
		// clients set them after uploads (put -p, rclone's modtimes).
		return nil
	case "Rename":
		return st(h.tr.Move(h.ctx, h.p, r.Filepath, r.Target))
	case "Mkdir":
		_, err := h.tr.Mkdir(h.ctx, h.p, r.Filepath)
		return st(err)
	case "Rmdir":
		f, fo, err := h.tr.Stat(h.ctx, h.p, r.Filepath)
		if err != nil {
			return st(err)
		}
		if fo == nil && f != nil {
			return errNotFolder
		}
		return st(h.tr.Delete(h.ctx, h.p, r.Filepath))
	case "Remove":
		return st(h.remove(r.Filepath))
	}
	return errUnsupported // Link, Symlink
}

// remove deletes the file at p and discards the user's unfinished uploads
// to it (which stat shows as the file): removing a path that has only an
// unfinished upload abandons the upload.
func (h *handlers) remove(p string) error {
	_, fo, err := h.tr.Stat(h.ctx, h.p, p)
	if err == nil && fo != nil {
		return errIsFolder
	}
	if err != nil && ferry.KindOf(err) != ferry.NotExist {
		return err
	}
	if err == nil {
		if err := h.tr.Delete(h.ctx, h.p, p); err != nil {
			return err
		}
	}
	n, cerr := h.cancelPending(p, "")
	if cerr != nil {
		return cerr
	}
	if err != nil && n == 0 {
		return err
	}
	return nil
}

// PosixRename implements sftp.PosixRenameFileCmder: a file renamed onto an
// existing file replaces it atomically (the old version is shredded); folders
// move as with Rename.
func (h *handlers) PosixRename(r *sftp.Request) (err error) {
	defer h.guard("posix-rename", &err)
	_, fo, serr := h.tr.Stat(h.ctx, h.p, r.Filepath)
	if serr == nil && fo != nil {
		return toStatus(h.logger, "posix-rename", h.tr.Move(h.ctx, h.p, r.Filepath, r.Target))
	}
	return toStatus(h.logger, "posix-rename", h.tr.Replace(h.ctx, h.p, r.Filepath, r.Target))
}

// StatVFS implements sftp.StatVFSFileCmder. Ferry has no per-user quota yet,
// so it reports a 1 PiB volume with all of it free.
func (h *handlers) StatVFS(r *sftp.Request) (*sftp.StatVFS, error) {
	const blocks = 1 << 38 // of 4 KiB: 1 PiB
	return &sftp.StatVFS{Bsize: 4096, Frsize: 4096, Blocks: blocks, Bfree: blocks, Bavail: blocks,
		Files: 1 << 32, Ffree: 1 << 32, Favail: 1 << 32, Namemax: ferry.MaxNameLen}, nil
}

// Filelist implements sftp.FileLister: folder listings and stat.
func (h *handlers) Filelist(r *sftp.Request) (_ sftp.ListerAt, err error) {
	defer h.guard(r.Method, &err)
	switch r.Method {
	case "List":
		release, err := h.acquire()
		if err != nil {
			return nil, err
		}
		entries, err := h.tr.List(h.ctx, h.p, r.Filepath)
		if err != nil {
			release()
			return nil, toStatus(h.logger, "list", err)
		}
		infos := make([]os.FileInfo, len(entries))
		for i, e := range entries {
			fi := &fileInfo{name: e.Name, size: e.Size, mtime: e.Modified, mode: 0o644}
			if e.Folder {
				fi.mode = fs.ModeDir | 0o755
			}
			infos[i] = fi
		}
		return &lister{infos: infos, release: release}, nil
	case "Stat":
		return h.stat(r.Filepath)
	}
	return nil, errUnsupported // Readlink
}

// Lstat implements sftp.LstatFileLister: Ferry has no links, so it is Stat.
func (h *handlers) Lstat(r *sftp.Request) (_ sftp.ListerAt, err error) {
	defer h.guard("lstat", &err)
	return h.stat(r.Filepath)
}

func (h *handlers) stat(p string) (sftp.ListerAt, error) {
	f, fo, err := h.tr.Stat(h.ctx, h.p, p)
	if err != nil && ferry.KindOf(err) != ferry.NotExist {
		return nil, toStatus(h.logger, "stat", err)
	}
	var fi *fileInfo
	switch {
	case fo != nil:
		name := fo.Name
		if fo.Path == "/" {
			name = "/"
		}
		fi = &fileInfo{name: name, mtime: fo.Created, mode: fs.ModeDir | 0o755}
	default:
		// The user's unfinished upload to the path shows as the file,
		// with the bytes stored so far as its size: that is where
		// OpenSSH's reput continues.
		up, uerr := h.pendingUpload(p)
		switch {
		case uerr != nil && err == nil:
			return nil, toStatus(h.logger, "stat", uerr)
		case up != nil:
			_, name := ferry.ParentPath(up.Path)
			fi = &fileInfo{name: name, size: up.Received, mtime: up.Updated, mode: 0o644}
		case err != nil:
			return nil, toStatus(h.logger, "stat", err)
		default:
			fi = &fileInfo{name: f.Name, size: f.Size, mtime: f.Modified, mode: 0o644}
		}
	}
	return &lister{infos: []os.FileInfo{fi}}, nil
}

// RealPath implements sftp.RealPathFileLister: the canonical absolute form
// of p, resolved against the root. ".." never climbs above "/".
func (h *handlers) RealPath(p string) (string, error) {
	clean := path.Join("/", p)
	if _, err := ferry.CleanPath(clean); err != nil {
		return "", toStatus(h.logger, "realpath", err)
	}
	return clean, nil
}

// lister serves a fixed list of entries.
type lister struct {
	infos   []os.FileInfo
	release func()
}

// ListAt implements sftp.ListerAt.
func (l *lister) ListAt(out []os.FileInfo, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset")
	}
	if off >= int64(len(l.infos)) {
		return 0, io.EOF
	}
	n := copy(out, l.infos[off:])
	if n < len(out) {
		return n, io.EOF
	}
	return n, nil
}

// Close releases the folder handle.
func (l *lister) Close() error {
	if l.release != nil {
		l.release()
	}
	return nil
}

// fileInfo is an os.FileInfo for a Ferry file or folder.
type fileInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.size }
func (fi *fileInfo) Mode() fs.FileMode  { return fi.mode }
func (fi *fileInfo) ModTime() time.Time { return fi.mtime }
func (fi *fileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi *fileInfo) Sys() any           { return nil }
