package httpd

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tus/tusd/v2/pkg/handler"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/transfer"
)

// PublicConfig is what the public handler needs to know.
type PublicConfig struct {
	MaxUpload int64                       // largest upload body, bytes
	Ready     func(context.Context) error // health check
	// BodyIdle is how long an upload body may stall before the connection
	// is cut (default one minute): a client trickling bytes cannot hold a
	// request open for ever.
	BodyIdle time.Duration
	// Limiter, when set, locks out addresses that present too many bad
	// tokens (shared with the other login paths).
	Limiter *auth.Limiter
}

func (c PublicConfig) idle() time.Duration {
	if c.BodyIdle > 0 {
		return c.BodyIdle
	}
	return time.Minute
}

// idleReader extends the connection's read deadline before each read, so an
// upload may take as long as it needs as long as bytes keep coming.
type idleReader struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
}

func (b *idleReader) Read(p []byte) (int, error) {
	b.rc.SetReadDeadline(time.Now().Add(b.idle))
	return b.r.Read(p)
}

type public struct {
	pages pages
	tusd  *handler.UnroutedHandler
	// tusWeb serves the same uploads to the browser at /web/uploads/,
	// authenticated by the session cookie and a CSRF header (web_files.go).
	tusWeb *handler.UnroutedHandler
	errorRenderer
	cfg  PublicConfig
	tr   *transfer.Service
	auth *auth.Service
}

// NewPublicHandler returns the handler of the public listener: health and the
// REST API, authenticated with bearer tokens.
func NewPublicHandler(logger *slog.Logger, cfg PublicConfig, tr *transfer.Service, au *auth.Service, m *Metrics) http.Handler {
	h := &public{errorRenderer: errorRenderer{logger: logger, metrics: m}, cfg: cfg, tr: tr, auth: au}
	composer := newTusComposer(tr)
	tusd, err := newTusHandler(composer, tusBasePath, cfg.MaxUpload, cfg.idle())
	if err != nil {
		// Only a store composer without a core store fails; this one has one.
		panic("httpd: tus handler: " + err.Error())
	}
	h.tusd = tusd
	if h.tusWeb, err = newTusHandler(composer, webTusBasePath, cfg.MaxUpload, cfg.idle()); err != nil {
		panic("httpd: tus handler: " + err.Error())
	}
	if h.pages, err = loadPages(); err != nil {
		// The templates are embedded: a parse error is a build defect, and
		// TestPages catches it.
		panic("httpd: templates: " + err.Error())
	}
	mux := http.NewServeMux()
	h.routes(mux)
	return common("public", m, rejectDotSegments(h.errorRenderer, mux))
}

// rejectDotSegments answers 400 to paths with "." or ".." segments or empty
// segments, instead of letting ServeMux redirect them to a cleaned path.
func rejectDotSegments(e errorRenderer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimSuffix(r.URL.Path, "/")
		for i, seg := range strings.Split(p, "/") {
			if i > 0 && (seg == "" || seg == "." || seg == "..") {
				e.render(w, r, ferry.E("httpd", ferry.Invalid, "path may not contain empty, \".\" or \"..\" elements"))
				return
			}
		}
		if len(r.URL.Path) > ferry.MaxPathLen+64 {
			e.render(w, r, ferry.E("httpd", ferry.Invalid, "path is longer than 4096 bytes"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func notFound(w http.ResponseWriter, r *http.Request) error {
	return ferry.E("httpd", ferry.NotExist, "no such endpoint")
}

func (h *public) healthz(w http.ResponseWriter, r *http.Request) error {
	if err := h.cfg.Ready(r.Context()); err != nil {
		return ferry.E("httpd.healthz", ferry.Unavailable, "not ready", err)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
	return nil
}

// api authenticates the bearer token before calling h.
func (h *public) api(fn handlerFunc) http.Handler {
	return h.wrap(func(w http.ResponseWriter, r *http.Request) error {
		const op = "httpd.auth"
		authz := r.Header.Values("Authorization")
		if len(authz) != 1 {
			return ferry.E(op, ferry.Unauthenticated, "send exactly one Authorization: Bearer header")
		}
		tok, ok := strings.CutPrefix(authz[0], "Bearer ")
		if !ok || tok == "" || len(tok) > 512 {
			return ferry.E(op, ferry.Unauthenticated, "send Authorization: Bearer TOKEN")
		}
		p, err := bearer(w, r, h.auth, h.cfg.Limiter, tok)
		if err != nil {
			return err
		}
		p.Protocol = "https"
		return fn(w, withPrincipal(r, p))
	})
}

type fileJSON struct {
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	SHA256  string    `json:"sha256"`
	Expires time.Time `json:"expires"`
}

func filePath(r *http.Request) string { return "/" + r.PathValue("path") }

func (h *public) putFile(w http.ResponseWriter, r *http.Request) error {
	if r.ContentLength > h.cfg.MaxUpload {
		return ferry.Errorf("httpd.putFile", ferry.TooLarge, "the upload exceeds the limit of %d bytes", h.cfg.MaxUpload)
	}
	body := &idleReader{r: http.MaxBytesReader(w, r.Body, h.cfg.MaxUpload), rc: http.NewResponseController(w), idle: h.cfg.idle()}
	f, err := h.tr.Put(r.Context(), principalFrom(r.Context()), filePath(r), body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, fileJSON{Path: f.Path, Size: f.Size, SHA256: hex.EncodeToString(f.SHA256), Expires: f.Expires})
	return nil
}

// fileHeaders sets the headers every file response carries: always an
// attachment, never sniffed or rendered.
func fileHeaders(w http.ResponseWriter, f *ferry.File) {
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": f.Name}))
	hd.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	hd.Set("ETag", etag(f))
	hd.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(f.SHA256)+":")
	hd.Set("Last-Modified", f.Modified.UTC().Format(http.TimeFormat))
	hd.Set("Accept-Ranges", "bytes")
	hd.Set("X-Ferry-Expires", f.Expires.UTC().Format(time.RFC3339))
}

func etag(f *ferry.File) string { return `"` + hex.EncodeToString(f.SHA256) + `"` }

func (h *public) headFile(w http.ResponseWriter, r *http.Request) error {
	f, fo, err := h.tr.Stat(r.Context(), principalFrom(r.Context()), filePath(r))
	if err != nil {
		return err
	}
	if fo != nil {
		return ferry.E("httpd.headFile", ferry.Invalid, "that path is a folder")
	}
	fileHeaders(w, f)
	w.Header().Set("Content-Length", strconv.FormatInt(f.Size, 10))
	return nil
}

func (h *public) getFile(w http.ResponseWriter, r *http.Request) error {
	d, err := h.tr.Open(r.Context(), principalFrom(r.Context()), filePath(r))
	if err != nil {
		return err
	}
	f := d.File
	fileHeaders(w, f)
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == "*" || strings.Contains(inm, etag(f))) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	off, n, status := int64(0), f.Size, http.StatusOK
	if rg := r.Header.Get("Range"); rg != "" && (r.Header.Get("If-Range") == "" || r.Header.Get("If-Range") == etag(f)) {
		var ok bool
		off, n, ok = parseRange(rg, f.Size)
		if !ok {
			w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(f.Size, 10))
			var body errorBody
			body.Error.Kind, body.Error.Message = ferry.Invalid.String(), "the requested range is outside the file"
			writeJSON(w, http.StatusRequestedRangeNotSatisfiable, body)
			return nil
		}
		if n != f.Size || off != 0 {
			status = http.StatusPartialContent
			w.Header().Set("Content-Range", "bytes "+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(off+n-1, 10)+"/"+strconv.FormatInt(f.Size, 10))
		}
	}
	rc, err := d.Read(r.Context(), off, n)
	if err != nil {
		return err
	}
	defer rc.Close()
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(status)
	var dst io.Writer = w
	if r.ProtoMajor == 2 {
		dst = frameWriter{w}
	}
	if _, err := io.Copy(dst, rc); err != nil {
		if ferry.KindOf(err) == ferry.Integrity {
			h.logger.Error("integrity failure mid-download", "path", f.Path, "file", f.ID, "err", err)
		}
		panic(http.ErrAbortHandler) // the client must not take a short body for the file
	}
	return nil
}

// frameWriter writes to an HTTP/2 response in pieces that each make one DATA
// frame filling one TLS record. net/http cuts a larger Write into frames of
// the peer's maximum frame size (16 KiB for curl and browsers), and a 16 KiB
// frame plus its 9-byte header takes two TLS records, the second of 9 bytes:
// twice the encryptions and write system calls.
type frameWriter struct{ w io.Writer }

// frameData is the payload of a DATA frame that fills a TLS record of
// 16 KiB, the most TLS puts in a record, with its 9-byte frame header.
const frameData = 16<<10 - 9

func (f frameWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), frameData)
		m, err := f.w.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// parseRange parses a single byte range ("bytes=a-b", "bytes=a-",
// "bytes=-n") against size. Several ranges, or a malformed header, yield the
// whole file, as RFC 9110 allows; an unsatisfiable range yields ok=false.
func parseRange(h string, size int64) (off, n int64, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, size, true
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, size, true
	}
	if a == "" {
		suffix, err := strconv.ParseInt(b, 10, 64)
		if err != nil || suffix < 0 {
			return 0, size, true
		}
		if suffix == 0 {
			return 0, 0, false
		}
		suffix = min(suffix, size)
		return size - suffix, suffix, size > 0
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 {
		return 0, size, true
	}
	if start >= size {
		return 0, 0, false
	}
	end := size - 1
	if b != "" {
		e, err := strconv.ParseInt(b, 10, 64)
		if err != nil || e < start {
			return 0, size, true
		}
		end = min(e, size-1)
	}
	return start, end - start + 1, true
}

func (h *public) deleteFile(w http.ResponseWriter, r *http.Request) error {
	if err := h.tr.Delete(r.Context(), principalFrom(r.Context()), filePath(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// postFile handles POST /api/v1/files/{path}?move=/new/path.
func (h *public) postFile(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	dst := q.Get("move")
	if dst == "" || len(q["move"]) != 1 {
		return ferry.E("httpd.postFile", ferry.Invalid, "POST on a file needs ?move=/new/path")
	}
	if err := h.tr.Move(r.Context(), principalFrom(r.Context()), filePath(r), dst); err != nil {
		return err
	}
	f, fo, err := h.tr.Stat(r.Context(), principalFrom(r.Context()), dst)
	if err != nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if fo != nil {
		writeJSON(w, http.StatusOK, map[string]string{"path": fo.Path, "type": "folder"})
		return nil
	}
	writeJSON(w, http.StatusOK, fileJSON{Path: f.Path, Size: f.Size, SHA256: hex.EncodeToString(f.SHA256), Expires: f.Expires})
	return nil
}

type entryJSON struct {
	Name     string     `json:"name"`
	Type     string     `json:"type"`
	Size     int64      `json:"size"`
	SHA256   string     `json:"sha256,omitempty"`
	Modified time.Time  `json:"modified"`
	Expires  *time.Time `json:"expires,omitempty"`
	Hold     bool       `json:"hold,omitempty"`
}

func (h *public) listFolder(w http.ResponseWriter, r *http.Request) error {
	entries, err := h.tr.List(r.Context(), principalFrom(r.Context()), filePath(r))
	if err != nil {
		return err
	}
	out := struct {
		Path    string      `json:"path"`
		Entries []entryJSON `json:"entries"`
	}{Path: strings.TrimSuffix(filePath(r), "/"), Entries: []entryJSON{}}
	if out.Path == "" {
		out.Path = "/"
	}
	for _, e := range entries {
		j := entryJSON{Name: e.Name, Type: "file", Size: e.Size, Modified: e.Modified, Hold: e.Hold}
		if e.Folder {
			j.Type = "folder"
		} else {
			j.SHA256 = hex.EncodeToString(e.SHA256)
			exp := e.Expires
			j.Expires = &exp
		}
		out.Entries = append(out.Entries, j)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *public) createFolder(w http.ResponseWriter, r *http.Request) error {
	fo, err := h.tr.Mkdir(r.Context(), principalFrom(r.Context()), filePath(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]string{"path": fo.Path, "type": "folder"})
	return nil
}

// bearer authenticates a bearer token, refusing at once an address that the
// limiter has locked out for presenting too many bad tokens (429 with
// Retry-After; no token is checked, nothing more is audited), and counting
// each bad token against the address.
func bearer(w http.ResponseWriter, r *http.Request, au *auth.Service, lim *auth.Limiter, tok string) (*ferry.Principal, error) {
	const op = "httpd.bearer"
	a := auth.Attempt{Remote: remoteHost(r), Protocol: "https"}
	if lim != nil {
		if ok, wait := lim.Check(a); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
			return nil, ferry.E(op, ferry.Quota, "too many failed authentications from your address; try again later")
		}
	}
	p, err := au.Token(r.Context(), tok, a.Remote)
	if ferry.KindOf(err) == ferry.Unauthenticated && lim != nil {
		lim.Failure(a)
	}
	return p, err
}
