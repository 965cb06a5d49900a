package httpd

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"
	expslog "golang.org/x/exp/slog"

	"ferry.dev/ferry/docs"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/transfer"
)

// Resumable uploads: the tus 1.0 protocol (core, creation,
// creation-with-upload, termination, expiration, checksum with sha256) at
// /api/v1/uploads/, served by tusd's handler over a store that writes through
// internal/transfer. tusd parses the protocol; transfer decides everything
// else (permission at creation and completion, encryption, audit, expiry).
// What tusd does not implement — the checksum and expiration extensions, and
// Ferry's JSON errors — is added around it here.

const tusBasePath = "/api/v1/uploads/"

// tusReq carries per-request state between the wrapper and the store.
type tusReq struct {
	chunkSum []byte        // Upload-Checksum, decoded
	upload   *ferry.Upload // the upload the request touched, as last seen
	file     *ferry.File   // the file an upload completed into
	err      error         // the store's error, rendered as JSON
}

type tusReqKey struct{}

func tusReqFrom(ctx context.Context) *tusReq {
	rs, _ := ctx.Value(tusReqKey{}).(*tusReq)
	if rs == nil {
		rs = &tusReq{}
	}
	return rs
}

// newTusComposer builds the store composer every tus endpoint shares: one
// Ferry store, and one lock per upload on this node whichever endpoint (API
// or browser) a request came through; the database refuses a second node's
// write at the same offset (transfer.WriteUpload).
func newTusComposer(tr *transfer.Service) *handler.StoreComposer {
	store := &tusStore{tr: tr}
	composer := handler.NewStoreComposer()
	composer.UseCore(store)
	composer.UseTerminater(store)
	composer.UseLocker(memorylocker.New())
	return composer
}

// newTusHandler builds tusd's handler at basePath over the shared store.
func newTusHandler(composer *handler.StoreComposer, basePath string, maxSize int64, idle time.Duration) (*handler.UnroutedHandler, error) {
	return handler.NewUnroutedHandler(handler.Config{
		StoreComposer:        composer,
		BasePath:             basePath,
		MaxSize:              maxSize,
		DisableDownload:      true, // downloads are GET /api/v1/files/
		DisableConcatenation: true,
		Cors:                 &handler.CorsConfig{Disable: true},
		NetworkTimeout:       idle,
		// tusd logs every request at info level; Ferry logs failures itself.
		Logger: expslog.New(expslog.NewTextHandler(io.Discard, &expslog.HandlerOptions{Level: expslog.Level(100)})),
	})
}

// tusStore is tusd's data store: every call goes to transfer as the
// request's principal.
type tusStore struct{ tr *transfer.Service }

type tusUpload struct {
	tr *transfer.Service
	p  *ferry.Principal
	u  *ferry.Upload
	rs *tusReq
}

// NewUpload implements handler.DataStore.
func (s *tusStore) NewUpload(ctx context.Context, info handler.FileInfo) (handler.Upload, error) {
	rs := tusReqFrom(ctx)
	p := principalFrom(ctx)
	if info.SizeIsDeferred {
		return nil, rs.fail(ferry.E("httpd.tus", ferry.Invalid, "send Upload-Length: deferred lengths are not supported"))
	}
	path, ok := info.MetaData["path"]
	if !ok || path == "" {
		return nil, rs.fail(ferry.E("httpd.tus", ferry.Invalid, "Upload-Metadata must name the destination: path <base64 of the path>"))
	}
	var want []byte
	if h, ok := info.MetaData["sha256"]; ok {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 32 {
			return nil, rs.fail(ferry.E("httpd.tus", ferry.Invalid, "Upload-Metadata sha256 must be 64 hex digits (base64-encoded, like every metadata value)"))
		}
		want = b
	}
	u, err := s.tr.CreateUpload(ctx, p, path, info.Size, want)
	if err != nil {
		return nil, rs.fail(err)
	}
	rs.upload = u
	return &tusUpload{tr: s.tr, p: p, u: u, rs: rs}, nil
}

// GetUpload implements handler.DataStore.
func (s *tusStore) GetUpload(ctx context.Context, id string) (handler.Upload, error) {
	rs := tusReqFrom(ctx)
	p := principalFrom(ctx)
	u, err := s.tr.Upload(ctx, p, id)
	if err != nil {
		return nil, rs.fail(err)
	}
	rs.upload = u
	return &tusUpload{tr: s.tr, p: p, u: u, rs: rs}, nil
}

// AsTerminatableUpload implements handler.TerminaterDataStore.
func (s *tusStore) AsTerminatableUpload(u handler.Upload) handler.TerminatableUpload {
	return u.(*tusUpload)
}

// WriteChunk implements handler.Upload. Bytes that arrived before a dropped
// connection are kept (without a checksum to verify): tusd reports the
// body's error itself.
func (t *tusUpload) WriteChunk(ctx context.Context, offset int64, src io.Reader) (int64, error) {
	u, n, err := t.tr.WriteUpload(ctx, t.p, t.u.ID, offset, src, t.rs.chunkSum)
	if u != nil {
		t.u, t.rs.upload = u, u
	}
	if err != nil && n == 0 {
		return 0, t.rs.fail(err)
	}
	return n, nil
}

// GetInfo implements handler.Upload.
func (t *tusUpload) GetInfo(ctx context.Context) (handler.FileInfo, error) {
	meta := handler.MetaData{"path": t.u.Path}
	if t.u.ExpectSHA256 != nil {
		meta["sha256"] = hex.EncodeToString(t.u.ExpectSHA256)
	}
	if t.u.Size == transfer.SizeDeferred {
		// Started over SFTP, which declares no length: tus clients see a
		// deferred length they cannot declare (Ferry offers no
		// creation-defer-length), so such an upload continues over SFTP.
		return handler.FileInfo{ID: t.u.ID, SizeIsDeferred: true, Offset: t.u.Received, MetaData: meta}, nil
	}
	return handler.FileInfo{ID: t.u.ID, Size: t.u.Size, Offset: t.u.Received, MetaData: meta}, nil
}

// GetReader implements handler.Upload; downloads go through the files API.
func (t *tusUpload) GetReader(ctx context.Context) (io.ReadCloser, error) {
	return nil, handler.ErrNotImplemented
}

// FinishUpload implements handler.Upload.
func (t *tusUpload) FinishUpload(ctx context.Context) error {
	f, err := t.tr.CompleteUpload(ctx, t.p, t.u.ID)
	if err != nil {
		return t.rs.fail(err)
	}
	t.rs.file = f
	return nil
}

// Terminate implements handler.TerminatableUpload.
func (t *tusUpload) Terminate(ctx context.Context) error {
	if err := t.tr.CancelUpload(ctx, t.p, t.u.ID); err != nil {
		return t.rs.fail(err)
	}
	return nil
}

// fail records err for the JSON error body and returns it as a tusd error
// carrying the right status.
func (rs *tusReq) fail(err error) error {
	rs.err = err
	kind := ferry.KindOf(err)
	if kind == ferry.Other {
		kind = ferry.Internal
	}
	return handler.NewError("ERR_"+strings.ToUpper(kind.String()), ferry.Message(err), statusOf(kind))
}

// tus wraps one of tusd's handler methods for the API: bearer
// authentication around tusServe.
func (h *public) tus(fn http.HandlerFunc) http.Handler {
	return h.api(h.tusServe(h.tusd, tusBasePath, fn))
}

// tusServe serves one of the methods of th (mounted at basePath) to an
// authenticated request: the checksum extension's header, and the response
// rewriting of tusWriter.
func (h *public) tusServe(th *handler.UnroutedHandler, basePath string, fn http.HandlerFunc) handlerFunc {
	// tusd takes the upload id from the path below its base path.
	inner := http.StripPrefix(strings.TrimSuffix(basePath, "/"), th.Middleware(fn))
	return func(w http.ResponseWriter, r *http.Request) error {
		// tusd would let POST pose as PATCH or DELETE; Ferry's routes are
		// what they say.
		r.Header.Del("X-HTTP-Method-Override")
		rs := &tusReq{}
		if v := r.Header.Get("Upload-Checksum"); v != "" {
			alg, b64, _ := strings.Cut(v, " ")
			if alg != "sha256" {
				return ferry.E("httpd.tus", ferry.Invalid, "Upload-Checksum: only sha256 is supported")
			}
			sum, err := base64.StdEncoding.DecodeString(b64)
			if err != nil || len(sum) != 32 {
				return ferry.E("httpd.tus", ferry.Invalid, "Upload-Checksum: sha256 needs the base64 of a 32-byte digest")
			}
			rs.chunkSum = sum
		}
		if r.Method == http.MethodPatch || r.Method == http.MethodPost {
			if r.ContentLength > h.cfg.MaxUpload {
				return ferry.Errorf("httpd.tus", ferry.TooLarge, "the upload exceeds the limit of %d bytes", h.cfg.MaxUpload)
			}
		}
		tw := &tusWriter{ResponseWriter: w, r: r, rs: rs, e: &h.errorRenderer}
		inner.ServeHTTP(tw, r.WithContext(context.WithValue(r.Context(), tusReqKey{}, rs)))
		tw.finish()
		return nil
	}
}

// tusOptions answers protocol discovery; it needs no authentication.
func (h *public) tusOptions() http.Handler {
	inner := h.tusd.Middleware(http.NotFoundHandler())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &tusWriter{ResponseWriter: w, r: r, rs: &tusReq{}, e: &h.errorRenderer}
		inner.ServeHTTP(tw, r)
		tw.finish()
	})
}

// tusWriter adds what tusd leaves out to its responses: the extensions it
// does not know Ferry implements, Upload-Expires, the offset with a 409, the
// completed file's digest; and it replaces tusd's text error bodies with
// Ferry's JSON errors.
type tusWriter struct {
	http.ResponseWriter
	r      *http.Request
	rs     *tusReq
	e      *errorRenderer
	status int // an error status held back until finish
	body   bytes.Buffer
}

func (w *tusWriter) WriteHeader(code int) {
	hd := w.Header()
	if ext := hd.Get("Tus-Extension"); ext != "" {
		hd.Set("Tus-Extension", ext+",checksum,expiration")
		hd.Set("Tus-Checksum-Algorithm", "sha256")
	}
	if u := w.rs.upload; u != nil {
		hd.Set("Upload-Expires", u.Expires.UTC().Format(http.TimeFormat))
		if code == http.StatusConflict {
			hd.Set("Upload-Offset", strconv.FormatInt(u.Received, 10))
		}
	}
	if f := w.rs.file; f != nil {
		hd.Set("X-Ferry-SHA256", hex.EncodeToString(f.SHA256))
		hd.Del("Upload-Expires")
	}
	if code >= 400 && w.status == 0 {
		w.status = code
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *tusWriter) Write(b []byte) (int, error) {
	if w.status != 0 {
		if w.body.Len() < 4096 {
			w.body.Write(b)
		}
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController (tusd's read deadlines) reach the
// connection.
func (w *tusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish writes a held-back error as Ferry JSON.
func (w *tusWriter) finish() {
	if w.status == 0 {
		return
	}
	err := w.rs.err
	if err == nil {
		// An error tusd found itself ("ERR_CODE: message"): its messages
		// are fixed strings, except for internal errors, which are logged.
		msg := strings.TrimSpace(w.body.String())
		if _, m, ok := strings.Cut(msg, ": "); ok {
			msg = m
		}
		err = ferry.E("httpd.tus", tusKind(w.status), msg)
	}
	hd := w.Header()
	hd.Del("Content-Length")
	var body errorBody
	kind := ferry.KindOf(err)
	if kind == ferry.Other {
		kind = ferry.Internal
	}
	body.Error.Kind, body.Error.Message = kind.String(), ferry.Message(err)
	if kind == ferry.Internal || kind == ferry.Integrity || kind == ferry.NoSpace || kind == ferry.Unavailable {
		rid := hd.Get("X-Request-Id")
		w.e.logger.Error("upload request failed", "request_id", rid, "method", w.r.Method, "path", w.r.URL.Path, "kind", kind.String(), "err", err)
		if kind == ferry.Internal {
			body.Error.Message = "internal error (request id " + rid + ")"
		}
	}
	if w.e.metrics != nil {
		w.e.metrics.errors.WithLabelValues(kind.String()).Inc()
	}
	writeJSON(w.ResponseWriter, w.status, body)
}

// tusKind maps a status tusd chose to a kind.
func tusKind(status int) ferry.Kind {
	switch status {
	case http.StatusBadRequest, http.StatusPreconditionFailed, http.StatusUnsupportedMediaType:
		return ferry.Invalid
	case http.StatusForbidden:
		return ferry.Permission
	case http.StatusNotFound:
		return ferry.NotExist
	case http.StatusConflict, http.StatusLocked:
		return ferry.Conflict
	case http.StatusGone:
		return ferry.Expired
	case http.StatusRequestEntityTooLarge:
		return ferry.TooLarge
	case 460:
		return ferry.Checksum
	case http.StatusServiceUnavailable:
		return ferry.Unavailable
	case http.StatusNotImplemented:
		return ferry.Invalid
	}
	return ferry.Internal
}

type uploadJSON struct {
	ID      string    `json:"id"`
	URL     string    `json:"url"`
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	Offset  int64     `json:"offset"`
	SHA256  string    `json:"sha256,omitempty"`
	Expires time.Time `json:"expires"`
	Created time.Time `json:"created"`
}

// listUploads lists the caller's unfinished uploads (to ?path= only, if
// given), so that a client can resume one it did not start.
func (h *public) listUploads(w http.ResponseWriter, r *http.Request) error {
	ups, err := h.tr.Uploads(r.Context(), principalFrom(r.Context()), r.URL.Query().Get("path"))
	if err != nil {
		return err
	}
	out := struct {
		Uploads []uploadJSON `json:"uploads"`
	}{Uploads: []uploadJSON{}}
	for _, u := range ups {
		j := uploadJSON{ID: u.ID, URL: tusBasePath + u.ID, Path: u.Path, Size: u.Size, Offset: u.Received, Expires: u.Expires, Created: u.Created}
		if u.ExpectSHA256 != nil {
			j.SHA256 = hex.EncodeToString(u.ExpectSHA256)
		}
		out.Uploads = append(out.Uploads, j)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// me describes the caller.
func (h *public) me(w http.ResponseWriter, r *http.Request) error {
	p := principalFrom(r.Context())
	org, err := h.tr.OrgName(r.Context(), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Email string `json:"email"`
		Org   string `json:"org"`
		Role  string `json:"role"`
	}{p.Email, org, string(p.Role)})
	return nil
}

// openapi serves the API description.
func (h *public) openapi(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Content-Length", strconv.Itoa(len(docs.OpenAPI)))
	w.Write(docs.OpenAPI)
	return nil
}
