// Package httpd is Ferry's HTTP adapter: the public listener (REST API; web
// UI and tus later) and the admin plane (admin API, setup, metrics). Handlers
// translate HTTP to calls on internal/transfer and internal/admin; they never
// touch blobs, keys or file tables (DESIGN invariant 1).
//
// Every response carries nosniff, a restrictive CSP, frame-ancestors 'none',
// no-referrer and HSTS. Every body is size-limited. JSON bodies decode into
// fixed structs with unknown fields rejected (invariant 4). Errors are
// rendered in one place as {"error":{"kind","message"}} with a status matching
// the kind; internal errors are logged with a request id and never described
// to the client.
package httpd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"ferry.dev/ferry/internal/ferry"
)

// handlerFunc is an HTTP handler that returns its error for one place to
// render.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// errorRenderer renders handler errors.
type errorRenderer struct {
	logger  *slog.Logger
	metrics *Metrics
}

func (e *errorRenderer) wrap(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			e.render(w, r, err)
		}
	})
}

// statusOf maps an error kind to an HTTP status.
func statusOf(k ferry.Kind) int {
	switch k {
	case ferry.Invalid:
		return http.StatusBadRequest
	case ferry.NotExist:
		return http.StatusNotFound
	case ferry.Exist:
		return http.StatusConflict
	case ferry.Permission:
		return http.StatusForbidden
	case ferry.Unauthenticated:
		return http.StatusUnauthorized
	case ferry.Quota:
		return http.StatusTooManyRequests
	case ferry.TooLarge:
		return http.StatusRequestEntityTooLarge
	case ferry.NoSpace:
		return http.StatusInsufficientStorage
	case ferry.Unavailable:
		return http.StatusServiceUnavailable
	case ferry.Conflict:
		return http.StatusConflict
	case ferry.Expired:
		return http.StatusGone
	case ferry.Checksum:
		return 460 // tus checksum extension: Checksum Mismatch
	}
	return http.StatusInternalServerError
}

type errorBody struct {
	Error struct {
		Kind    string `json:"kind"`
		Message string `json:"message"`
	} `json:"error"`
}

func (e *errorRenderer) render(w http.ResponseWriter, r *http.Request, err error) {
	kind := ferry.KindOf(err)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		kind = ferry.TooLarge
		err = ferry.E("httpd", ferry.TooLarge, "request body too large", err)
	}
	if kind == ferry.Other {
		kind = ferry.Internal
	}
	status := statusOf(kind)
	var body errorBody
	body.Error.Kind = kind.String()
	body.Error.Message = ferry.Message(err)
	rid := w.Header().Get("X-Request-Id")
	if kind == ferry.Internal || kind == ferry.Integrity || kind == ferry.NoSpace || kind == ferry.Unavailable {
		e.logger.Error("request failed", "request_id", rid, "method", r.Method, "path", r.URL.Path, "kind", kind.String(), "err", err)
		if kind == ferry.Internal {
			body.Error.Message = "internal error (request id " + rid + ")"
		}
	} else {
		e.logger.Debug("request refused", "request_id", rid, "method", r.Method, "path", r.URL.Path, "kind", kind.String(), "err", err)
	}
	if e.metrics != nil {
		e.metrics.errors.WithLabelValues(kind.String()).Inc()
	}
	if kind == ferry.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ferry"`)
	}
	// Headers already sent (an error mid-download): the connection is the
	// only channel left; abort it so the client sees a failure, not a short
	// file.
	if sw, ok := w.(*statusWriter); ok && sw.wrote {
		panic(http.ErrAbortHandler)
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// decodeJSON reads a JSON body of at most limit bytes into v, rejecting
// unknown fields and trailing data.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	const op = "httpd.decodeJSON"
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return ferry.E(op, ferry.Invalid, "Content-Type must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return ferry.E(op, ferry.TooLarge, "request body too large", err)
		}
		return ferry.E(op, ferry.Invalid, "malformed JSON body: "+jsonProblem(err), err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return ferry.E(op, ferry.Invalid, "malformed JSON body: trailing data")
	}
	return nil
}

// jsonProblem describes a JSON decoding error without echoing the input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "syntax error"
	case errors.As(err, &te):
		return "wrong type for field " + te.Field
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return strings.TrimPrefix(err.Error(), "json: ")
	case errors.Is(err, io.EOF):
		return "empty body"
	}
	return "cannot decode"
}

// statusWriter records the status for metrics and whether headers went out.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if !s.wrote {
		s.status, s.wrote = http.StatusOK, true
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// common wraps every handler of both planes: request id, security headers,
// status metrics.
func common(listener string, m *Metrics, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b [8]byte
		rand.Read(b[:])
		hd := w.Header()
		hd.Set("X-Request-Id", hex.EncodeToString(b[:]))
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Strict-Transport-Security", "max-age=31536000")
		hd.Set("Cache-Control", "no-store")
		if len(r.TransferEncoding) > 0 && r.ProtoMajor == 1 {
			// RFC 9112 6.3: a request framed by Transfer-Encoding may have
			// carried a Content-Length too (net/http drops it), which a
			// front end could have read differently; never read another
			// request from this connection (no CL.TE/TE.CL smuggling).
			hd.Set("Connection", "close")
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if m != nil {
				m.requests.WithLabelValues(listener, statusClass(sw.status)).Inc()
			}
		}()
		h.ServeHTTP(sw, r)
	})
}

func statusClass(code int) string {
	return string("012345"[code/100%6]) + "xx"
}

type ctxKey int

const principalKey ctxKey = 0

// principalFrom returns the authenticated principal of a request.
func principalFrom(ctx context.Context) *ferry.Principal {
	p, _ := ctx.Value(principalKey).(*ferry.Principal)
	return p
}

func withPrincipal(r *http.Request, p *ferry.Principal) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), principalKey, p))
}

// remoteHost returns the client's IP address (no proxies are trusted).
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func isLoopbackRequest(r *http.Request) bool {
	ip := net.ParseIP(remoteHost(r))
	return ip != nil && ip.IsLoopback()
}
