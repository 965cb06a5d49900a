package httpd

import (
	"archive/zip"
	"cmp"
	"crypto/subtle"
	"encoding/hex"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/transfer"
)

// The user's file pages on the public listener: browse, download (files, and
// folders as a zip), create, rename, move and delete as POST forms, and the
// browser's tus endpoint for uploads. Every byte goes through transfer, which
// decides permission and audits; these handlers only translate. See
// docs/WEB.md.

// webTusBasePath is where the browser's tus client talks: the same uploads
// as /api/v1/uploads/, authenticated by the session cookie and a CSRF header
// instead of a bearer token.
const webTusBasePath = "/web/uploads/"

// maxZipEntries bounds how many files and folders one zip download walks.
const maxZipEntries = 10000

func (h *public) fileRoutes() []route {
	return []route{
		{"GET /files/{path...}", h.page(signedIn, h.browse)},
		{"GET /download/{path...}", h.page(signedIn, h.download)},
		{"GET /zip/{path...}", h.page(signedIn, h.zipFolder)},
		{"POST /mkdir/{path...}", h.page(signedIn, h.mkdirForm)},
		{"POST /rename/{path...}", h.page(signedIn, h.renameForm)},
		{"POST /move/{path...}", h.page(signedIn, h.moveForm)},
		{"POST /delete/{path...}", h.page(signedIn, h.deleteForm)},
		{"POST " + webTusBasePath + "{$}", h.webTus(h.tusWeb.PostFile)},
		{"HEAD " + webTusBasePath + "{id}", h.webTus(h.tusWeb.HeadFile)},
		{"PATCH " + webTusBasePath + "{id}", h.webTus(h.tusWeb.PatchFile)},
		{"DELETE " + webTusBasePath + "{id}", h.webTus(h.tusWeb.DelFile)},
	}
}

// webTus authenticates a browser's tus request: a full session from the
// cookie and, on anything but GET and HEAD, a request from Ferry's own
// origin carrying the session's CSRF token in X-CSRF-Token. Errors are
// Ferry's JSON errors, as on the API's tus endpoint.
func (h *public) webTus(fn http.HandlerFunc) http.Handler {
	serve := h.tusServe(h.tusWeb, webTusBasePath, fn)
	return h.wrap(func(w http.ResponseWriter, r *http.Request) error {
		const op = "httpd.webUploads"
		c, err := r.Cookie(auth.SessionCookie)
		if err != nil || c.Value == "" {
			return ferry.E(op, ferry.Unauthenticated, "sign in first")
		}
		sess, p, err := h.auth.Session(r.Context(), c.Value, remoteHost(r))
		if err != nil {
			return err
		}
		if sess.Stage != ferry.SessionFull {
			return ferry.E(op, ferry.Unauthenticated, "finish signing in first")
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := sameOrigin(r); err != nil {
				return err
			}
			want := auth.CSRFToken(c.Value)
			if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-CSRF-Token")), []byte(want)) != 1 {
				return ferry.E(op, ferry.Permission, "the upload did not carry this session's CSRF token; reload the page and try again")
			}
		}
		p.Protocol = "https"
		return serve(w, withPrincipal(r, p))
	})
}

// folderPath is the clean folder path of a {path...} wildcard: "/" for the
// root, never a trailing slash.
func folderPath(r *http.Request) string {
	p := strings.TrimSuffix(filePath(r), "/")
	if p == "" {
		return "/"
	}
	return p
}

// escapePath escapes each element of a Ferry path for use in a URL path.
func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// crumb is one link of the breadcrumbs.
type crumb struct {
	Name, Href string
	Current    bool
}

// fileRow is one line of a folder listing.
type fileRow struct {
	Name     string
	Folder   bool
	Href     string // the folder's page, or the file's details page
	Download string
	Size     string
	Bytes    int64
	SHA256   string
	Short    string
	Modified time.Time
	Expires  time.Time
	Hold     bool
}

// sortLink is a column header's link: the sort it selects and how it is
// currently sorted (for aria-sort).
type sortLink struct {
	Href string
	Aria string // "ascending", "descending" or "none"
}

// folderPage is the page data of a folder listing or a file's details.
type folderPage struct {
	Path     string
	Name     string
	Root     bool
	Crumbs   []crumb
	Rows     []fileRow
	Query    string
	Sort     string
	Desc     bool
	SortBy   map[string]sortLink
	Self     string // escaped path, for form actions: /mkdir{{.Self}}
	Parent   string // the parent's page
	Zip      string
	Mkdir    string // the new-folder form's action
	Filtered int    // rows hidden by the filter

	File *fileDetail // set on a file's details page
}

// fileDetail is what a file's page shows.
type fileDetail struct {
	fileRow
	Uploader string
	Created  time.Time
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTP"[exp]) + "iB"
}

func crumbs(p string) []crumb {
	out := []crumb{{Name: "Files", Href: "/files/"}}
	if p == "/" {
		out[0].Current = true
		return out
	}
	acc := ""
	for _, s := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		acc += "/" + s
		out = append(out, crumb{Name: s, Href: "/files" + escapePath(acc)})
	}
	out[len(out)-1].Current = true
	return out
}

// okMessages are the notices a redirect after a form may ask for (?ok=…):
// fixed strings, so that a link cannot put words on Ferry's page.
var okMessages = map[string]string{
	"mkdir":  "Folder created.",
	"rename": "Renamed.",
	"move":   "Moved.",
	"delete": "Deleted.",
}

func (h *public) browse(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	d := wr.data("Files")
	d.Flash = okMessages[r.URL.Query().Get("ok")]
	return h.showFolder(w, r, wr, d, folderPath(r), http.StatusOK)
}

// showFolder renders the page of the folder (or file) at p.
func (h *public) showFolder(w http.ResponseWriter, r *http.Request, wr *webReq, d *pageData, p string, status int) error {
	ctx := r.Context()
	f, _, err := h.tr.Stat(ctx, wr.p, p)
	if err != nil {
		return err
	}
	parent, name := ferry.ParentPath(p)
	fp := &folderPage{Path: p, Name: name, Root: p == "/", Crumbs: crumbs(p), Self: escapePath(p), Parent: "/files" + escapePath(parent)}
	if fp.Root {
		fp.Self = ""
	}
	if d.Org, err = h.tr.OrgName(ctx, wr.p); err != nil {
		return err
	}
	d.Data = fp
	if f != nil {
		fp.File = &fileDetail{fileRow: h.fileRow(parent, transfer.Entry{Name: f.Name, Size: f.Size, SHA256: f.SHA256, Modified: f.Modified, Expires: f.Expires, Hold: f.Hold}), Created: f.Created}
		fp.File.Uploader = h.tr.UploaderName(r.Context(), wr.p, f)
		if f.UploaderID == wr.p.UserID {
			fp.File.Uploader = "you (" + wr.p.Email + ")"
		}
		d.Title = f.Name
		return h.showStatus(w, status, "files", d)
	}
	entries, err := h.tr.List(ctx, wr.p, p)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	fp.Query = strings.TrimSpace(q.Get("q"))
	fp.Sort, fp.Desc = q.Get("sort"), q.Get("order") == "desc"
	if fp.Sort != "size" && fp.Sort != "modified" {
		fp.Sort = "name"
	}
	needle := strings.ToLower(fp.Query)
	for _, e := range entries {
		if needle != "" && !strings.Contains(strings.ToLower(e.Name), needle) {
			fp.Filtered++
			continue
		}
		fp.Rows = append(fp.Rows, h.fileRow(p, e))
	}
	sortRows(fp.Rows, fp.Sort, fp.Desc)
	fp.SortBy = map[string]sortLink{}
	for _, col := range []string{"name", "size", "modified"} {
		v := url.Values{"sort": {col}}
		aria := "none"
		if col == fp.Sort {
			aria = "ascending"
			if fp.Desc {
				aria = "descending"
			} else {
				v.Set("order", "desc")
			}
		}
		if fp.Query != "" {
			v.Set("q", fp.Query)
		}
		fp.SortBy[col] = sortLink{Href: "?" + v.Encode(), Aria: aria}
	}
	fp.Zip, fp.Mkdir = "/zip"+escapePath(p), "/mkdir"+escapePath(p)
	if fp.Root {
		fp.Zip, fp.Mkdir = "/zip/", "/mkdir/"
		d.Heading = "Welcome, " + wr.p.Email
	} else {
		d.Title = name
	}
	d.Scripts = []string{"files.js"}
	return h.showStatus(w, status, "files", d)
}

func (h *public) fileRow(dir string, e transfer.Entry) fileRow {
	full := escapePath(joinPath(dir, e.Name))
	row := fileRow{Name: e.Name, Folder: e.Folder, Href: "/files" + full, Modified: e.Modified, Expires: e.Expires, Hold: e.Hold, Bytes: e.Size}
	if !e.Folder {
		row.Download = "/download" + full
		row.Size = humanSize(e.Size)
		row.SHA256 = hex.EncodeToString(e.SHA256)
		if len(row.SHA256) >= 12 {
			row.Short = row.SHA256[:12]
		}
	}
	return row
}

// sortRows sorts folders first, then by the column (ties by name).
func sortRows(rows []fileRow, by string, desc bool) {
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Folder != b.Folder {
			return a.Folder
		}
		c := 0
		switch by {
		case "size":
			c = cmp.Compare(a.Bytes, b.Bytes)
		case "modified":
			c = a.Modified.Compare(b.Modified)
		}
		if c == 0 {
			c = cmp.Or(cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), cmp.Compare(a.Name, b.Name))
		}
		if desc {
			c = -c
		}
		return c < 0
	})
}

// download streams a file as an attachment, through the same code as the
// API's GET /api/v1/files/ (ranges, ETag, nosniff, sandbox CSP).
func (h *public) download(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	return h.getFile(w, r)
}

// zipItem is one entry of a zip download, authorized before the first byte
// is sent.
type zipItem struct {
	name string // inside the zip; folders end in "/"
	mod  time.Time
	d    *transfer.Download
}

// zipFolder streams the folder at the path, with everything below it that
// the user may read, as a zip (Store method: content is usually compressed
// already). Every file is opened through transfer first, so a file the user
// may not read refuses the whole download with the reason before anything
// is sent; each is then read, and audited, as it is written.
func (h *public) zipFolder(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	const op = "httpd.zipFolder"
	ctx := r.Context()
	root := folderPath(r)
	_, fo, err := h.tr.Stat(ctx, wr.p, root)
	if err != nil {
		return err
	}
	if fo == nil {
		return ferry.E(op, ferry.Invalid, "that path is a file: download it directly")
	}
	var items []zipItem
	var walk func(dir, prefix string) error
	walk = func(dir, prefix string) error {
		entries, err := h.tr.List(ctx, wr.p, dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if len(items) >= maxZipEntries {
				return ferry.Errorf(op, ferry.TooLarge, "the folder holds more than %d files and folders: download it in parts", maxZipEntries)
			}
			full := joinPath(dir, e.Name)
			if e.Folder {
				items = append(items, zipItem{name: prefix + e.Name + "/", mod: e.Modified})
				if err := walk(full, prefix+e.Name+"/"); err != nil {
					return err
				}
				continue
			}
			d, err := h.tr.Open(ctx, wr.p, full)
			if err != nil {
				return err
			}
			items = append(items, zipItem{name: prefix + e.Name, mod: d.File.Modified, d: d})
		}
		return nil
	}
	if err := walk(root, ""); err != nil {
		return err
	}
	_, name := ferry.ParentPath(root)
	if root == "/" {
		name = "files"
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/zip")
	hd.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name + ".zip"}))
	hd.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	w.WriteHeader(http.StatusOK)
	zw := zip.NewWriter(w)
	for _, it := range items {
		fh := &zip.FileHeader{Name: it.name, Method: zip.Store, Modified: it.mod.UTC()}
		if it.d != nil {
			fh.UncompressedSize64 = uint64(it.d.File.Size) // #nosec G115 -- never negative: db.scanFile refuses a negative stored size
		}
		fw, err := zw.CreateHeader(fh)
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		if it.d == nil {
			continue
		}
		rc, err := it.d.Read(ctx, 0, it.d.File.Size)
		if err != nil {
			h.logger.Warn("zip download: a file failed", "request_id", hd.Get("X-Request-Id"), "path", it.d.File.Path, "err", err)
			panic(http.ErrAbortHandler) // a truncated zip, never a wrong one
		}
		_, err = io.Copy(fw, rc)
		rc.Close()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
	}
	if err := zw.Close(); err != nil {
		panic(http.ErrAbortHandler)
	}
	return nil
}

// actionDone redirects to the folder's page with a notice.
func actionDone(w http.ResponseWriter, r *http.Request, folder, ok string) error {
	http.Redirect(w, r, "/files"+escapePath(folder)+"?ok="+ok, http.StatusSeeOther)
	return nil
}

// actionFailed shows the folder page again with the reason a form was
// refused (a missing permission, a name already taken…), or the error page
// when the folder itself cannot be shown.
func (h *public) actionFailed(w http.ResponseWriter, r *http.Request, wr *webReq, folder string, err error) error {
	switch ferry.KindOf(err) {
	case ferry.Permission, ferry.Exist, ferry.Invalid, ferry.NotExist, ferry.Conflict:
		d := wr.data("Files")
		d.Error = ferry.Message(err)
		if serr := h.showFolder(w, r, wr, d, folder, statusOf(ferry.KindOf(err))); serr != nil {
			return err
		}
		return nil
	}
	return err
}

// formName reads a single name (no "/") from the form.
func formName(r *http.Request, field string) (string, error) {
	name := strings.TrimSpace(r.PostForm.Get(field))
	if name == "" || strings.Contains(name, "/") || name == "." || name == ".." {
		return "", ferry.E("httpd.form", ferry.Invalid, "enter a name without \"/\"")
	}
	return name, nil
}

func (h *public) mkdirForm(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	dir := folderPath(r)
	name, err := formName(r, "name")
	if err == nil {
		_, err = h.tr.Mkdir(r.Context(), wr.p, joinPath(dir, name))
	}
	if err != nil {
		return h.actionFailed(w, r, wr, dir, err)
	}
	return actionDone(w, r, dir, "mkdir")
}

func (h *public) renameForm(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	src := folderPath(r)
	dir, _ := ferry.ParentPath(src)
	name, err := formName(r, "name")
	if err == nil {
		err = h.tr.Move(r.Context(), wr.p, src, joinPath(dir, name))
	}
	if err != nil {
		return h.actionFailed(w, r, wr, dir, err)
	}
	return actionDone(w, r, dir, "rename")
}

func (h *public) moveForm(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	src := folderPath(r)
	dir, name := ferry.ParentPath(src)
	to := strings.TrimSpace(r.PostForm.Get("to"))
	if !strings.HasPrefix(to, "/") {
		to = "/" + to
	}
	to = strings.TrimSuffix(to, "/")
	if to == "" {
		to = "/"
	}
	if err := h.tr.Move(r.Context(), wr.p, src, joinPath(to, name)); err != nil {
		return h.actionFailed(w, r, wr, dir, err)
	}
	return actionDone(w, r, to, "move")
}

func (h *public) deleteForm(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	p := folderPath(r)
	dir, _ := ferry.ParentPath(p)
	if err := h.tr.Delete(r.Context(), wr.p, p); err != nil {
		return h.actionFailed(w, r, wr, dir, err)
	}
	return actionDone(w, r, dir, "delete")
}
