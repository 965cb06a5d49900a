// Package client is a Go client of Ferry's REST API: files and folders, the
// caller's identity, resumable (tus 1.0) uploads and resumable, verified
// downloads. The ferry command line and the end-to-end tests use it.
//
// Remote paths are absolute, slash-separated paths inside the caller's
// organisation ("/finance/2026/report.pdf"); Clean normalises them.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"
)

// Client talks to one Ferry server with one API token. It is safe for
// concurrent use.
type Client struct {
	base  string // scheme://host[:port], no trailing slash
	token string
	hc    *http.Client

	// Retries is how many times a request that failed for a transient reason
	// (a network error, 502, 503, 504) is tried again; Backoff is the first
	// wait, doubled each time.
	Retries int
	Backoff time.Duration
}

// Config says which server to talk to and how.
type Config struct {
	// Server is the server's base URL, e.g. https://ferry.example:8443.
	Server string
	// Token is the API token (ferry_…).
	Token string
	// CAFile, if set, is a PEM file of certificates to trust instead of the
	// system roots (for a server with a self-signed certificate).
	CAFile string
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.Server, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("server %q: want a URL like https://host:8443", cfg.Server)
	}
	if u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server %q: want only scheme, host and port", cfg.Server)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	tr.ResponseHeaderTimeout = 5 * time.Minute
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate in it", cfg.CAFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &Client{
		base:    u.Scheme + "://" + u.Host,
		token:   cfg.Token,
		hc:      &http.Client{Transport: tr},
		Retries: 5,
		Backoff: 500 * time.Millisecond,
	}, nil
}

// Server returns the server's base URL.
func (c *Client) Server() string { return c.base }

// Error is an error response of the API: its HTTP status and, when the server
// sent Ferry's JSON error body, its kind and message.
type Error struct {
	Status  int
	Kind    string // "permission", "not_exist", "exist", … ("" if the body was not Ferry's)
	Message string
}

// Error returns "kind: message", or the HTTP status when the body had no
// Ferry error in it.
func (e *Error) Error() string {
	switch {
	case e.Kind != "" && e.Message != "":
		return e.Kind + ": " + e.Message
	case e.Message != "":
		return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
}

// IsKind reports whether err is an API error of the given kind.
func IsKind(err error, kind string) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == kind
}

// IsStatus reports whether err is an API error with the given HTTP status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// Clean returns p as an absolute, clean remote path ("/" for the root).
func Clean(p string) string {
	return path.Clean("/" + p)
}

// escape escapes each element of an absolute remote path for a URL.
func escape(p string) string {
	p = Clean(p)
	if p == "/" {
		return "/"
	}
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// url returns the absolute URL of an API path (which must start with "/").
func (c *Client) url(apiPath string) string { return c.base + apiPath }

// resolve turns a Location header (absolute or relative) into an absolute URL
// on this server.
func (c *Client) resolve(loc string) (string, error) {
	base, _ := url.Parse(c.base + "/")
	u, err := base.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("bad Location %q: %w", loc, err)
	}
	return u.String(), nil
}

// newRequest builds a request with the token.
func (c *Client) newRequest(ctx context.Context, method, u string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("User-Agent", "ferry-client")
	return req, nil
}

// send sends req once and turns a status >= 400 into an *Error (closing the
// body). A 2xx or 3xx response is returned with its body open.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, netError(err)
	}
	if res.StatusCode >= 400 {
		defer res.Body.Close()
		return nil, readError(res)
	}
	return res, nil
}

// netError shortens a transport error to one readable line without the
// request URL (the caller says which path it was about).
func netError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &transientError{err: ue.Err}
	}
	return &transientError{err: err}
}

// transientError is a failure worth retrying: the network, or a gateway.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// transient reports whether err is worth retrying.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var te *transientError
	if errors.As(err, &te) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Status == http.StatusBadGateway || e.Status == http.StatusServiceUnavailable || e.Status == http.StatusGatewayTimeout
	}
	return false
}

// readError reads an error response: Ferry's JSON error body if it has one,
// else a short plain-text body, else only the status (never raw HTML).
func readError(res *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	e := &Error{Status: res.StatusCode}
	var body struct {
		Error struct {
			Kind    string `json:"kind"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &body) == nil && body.Error.Kind != "" {
		e.Kind, e.Message = body.Error.Kind, oneLine(body.Error.Message)
		return e
	}
	if len(b) == 0 && res.Request != nil && res.Request.Method == "HEAD" {
		// A HEAD response has no body: say what the status means for Ferry.
		switch res.StatusCode {
		case http.StatusNotFound:
			e.Kind, e.Message = "not_exist", "no such file"
		case http.StatusForbidden:
			e.Kind, e.Message = "permission", "permission denied"
		case http.StatusUnauthorized:
			e.Kind, e.Message = "unauthenticated", "missing or bad token"
		}
		if e.Kind != "" {
			return e
		}
	}
	ct := res.Header.Get("Content-Type")
	if (ct == "" || strings.HasPrefix(ct, "text/plain")) && len(b) > 0 && len(b) < 512 && !bytes.ContainsAny(b, "<>") {
		e.Message = oneLine(string(b))
	}
	return e
}

// oneLine returns the first line of s, trimmed.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return s
}

// do sends a request without a body (or with a small, replayable one: JSON,
// or empty), retrying transient failures, and decodes a JSON response into out (if not
// nil).
func (c *Client) do(ctx context.Context, method, apiPath string, body []byte, out any) (*http.Response, error) {
	var res *http.Response
	err := c.retry(ctx, func() error {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := c.newRequest(ctx, method, c.url(apiPath), rd)
		if err != nil {
			return err
		}
		if len(body) > 0 {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err = c.send(req)
		return err
	})
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if out != nil {
		if err := json.NewDecoder(io.LimitReader(res.Body, 32<<20)).Decode(out); err != nil {
			return res, fmt.Errorf("decoding the server's response: %w", err)
		}
	} else {
		io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	}
	return res, nil
}

// retry runs f until it succeeds, fails for a reason that is not transient,
// or has been tried 1+c.Retries times, waiting c.Backoff (doubling) between
// tries.
func (c *Client) retry(ctx context.Context, f func() error) error {
	wait := c.Backoff
	for i := 0; ; i++ {
		err := f()
		if err == nil || !transient(err) || i >= c.Retries {
			return err
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		wait *= 2
	}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
