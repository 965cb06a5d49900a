package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultChunkSize is the size of each PATCH of an upload.
const DefaultChunkSize = 16 << 20

// UploadOptions tune Upload.
type UploadOptions struct {
	// ChunkSize is the most bytes sent in one PATCH (DefaultChunkSize if 0).
	ChunkSize int64
	// SHA256 is the lowercase hex SHA-256 of the whole content, if the caller
	// has it already; Upload computes it otherwise.
	SHA256 string
	// Progress, if set, is called with the number of bytes of the file that
	// have been sent or acknowledged so far (it can go back after a retry).
	Progress func(done int64)
}

// UploadResult describes a finished upload.
type UploadResult struct {
	Path        string
	Size        int64
	SHA256      string // lowercase hex
	Sent        int64  // content bytes sent in this run (including re-sent ones)
	ResumedFrom int64  // the server's offset when this run started (0: a new upload)
}

// PendingUpload is one of the caller's unfinished uploads
// (GET /api/v1/uploads/).
type PendingUpload struct {
	ID      string    `json:"id"`
	URL     string    `json:"url"`
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	Offset  int64     `json:"offset"`
	SHA256  string    `json:"sha256"`
	Expires time.Time `json:"expires"`
	Created time.Time `json:"created"`
}

// Uploads lists the caller's unfinished uploads, those to remote path p only
// if p is not "".
func (c *Client) Uploads(ctx context.Context, p string) ([]PendingUpload, error) {
	q := ""
	if p != "" {
		q = "?path=" + url.QueryEscape(Clean(p))
	}
	var out struct {
		Uploads []PendingUpload `json:"uploads"`
	}
	if _, err := c.do(ctx, "GET", "/api/v1/uploads/"+q, nil, &out); err != nil {
		return nil, err
	}
	return out.Uploads, nil
}

// HashReaderAt returns the lowercase hex SHA-256 of the first size bytes of r.
func HashReaderAt(r io.ReaderAt, size int64) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, size)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Upload uploads size bytes from src to the remote path with the tus 1.0
// protocol, resuming the caller's unfinished upload of the same content to
// the same path if there is one. The file appears at remote only once all of
// it has arrived and its SHA-256 matches.
func (c *Client) Upload(ctx context.Context, src io.ReaderAt, size int64, remote string, opts UploadOptions) (*UploadResult, error) {
	remote = Clean(remote)
	chunk := opts.ChunkSize
	if chunk <= 0 {
		chunk = DefaultChunkSize
	}
	progress := opts.Progress
	if progress == nil {
		progress = func(int64) {}
	}
	sum := strings.ToLower(opts.SHA256)
	if sum == "" {
		var err error
		if sum, err = HashReaderAt(src, size); err != nil {
			return nil, fmt.Errorf("reading the local file: %w", err)
		}
	}
	res := &UploadResult{Path: remote, Size: size, SHA256: sum}
	if size == 0 {
		// Nothing to resume: one plain PUT.
		if _, err := c.do(ctx, "PUT", "/api/v1/files"+escape(remote), []byte{}, nil); err != nil {
			return nil, err
		}
		return res, nil
	}

	loc, off, err := c.findUpload(ctx, remote, size, sum)
	if err != nil {
		return nil, err
	}
	if loc == "" {
		if loc, err = c.createUpload(ctx, remote, size, sum); err != nil {
			return nil, err
		}
		off = 0
	}
	res.ResumedFrom = off
	progress(off)

	buf := make([]byte, min(chunk, size))
	restarted := false
	failures := 0
	for off < size {
		n := min(chunk, size-off)
		b := buf[:n]
		if _, err := src.ReadAt(b, off); err != nil && !(errors.Is(err, io.EOF) && int64(len(b)) == n) {
			return nil, fmt.Errorf("reading the local file: %w", err)
		}
		newOff, digest, sent, err := c.patch(ctx, loc, off, b, progress)
		res.Sent += sent
		if err == nil {
			if newOff <= off {
				return nil, fmt.Errorf("server did not advance the upload (offset %d)", newOff)
			}
			off, failures = newOff, 0
			progress(off)
			if off >= size {
				if digest != "" && !strings.EqualFold(digest, sum) {
					return nil, fmt.Errorf("integrity: the server computed SHA-256 %s, the local file has %s", digest, sum)
				}
			}
			continue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		failures++
		if failures > c.Retries {
			return nil, err
		}
		var se *Error
		switch {
		case errors.As(err, &se) && (se.Status == http.StatusNotFound || se.Status == http.StatusGone) && !restarted:
			// The upload expired or vanished: start again, once.
			restarted = true
			if loc, err = c.createUpload(ctx, remote, size, sum); err != nil {
				return nil, err
			}
			off = 0
			continue
		case errors.As(err, &se) && se.Status == http.StatusConflict:
			// Offset mismatch: continue from wherever the server is.
		case errors.As(err, &se) && se.Status == 460:
			// The chunk arrived damaged and was discarded: send it again.
			continue
		case transient(err):
			if err := sleep(ctx, c.Backoff<<min(failures-1, 6)); err != nil {
				return nil, err
			}
		default:
			return nil, err
		}
		if off, err = c.uploadOffset(ctx, loc); err != nil {
			return nil, err
		}
		progress(off)
	}
	return res, nil
}

// findUpload returns the URL and the server's offset of the caller's
// unfinished upload of this content to remote, or "" if there is none.
func (c *Client) findUpload(ctx context.Context, remote string, size int64, sum string) (string, int64, error) {
	ups, err := c.Uploads(ctx, remote)
	if err != nil {
		if ctx.Err() != nil {
			return "", 0, ctx.Err()
		}
		if IsStatus(err, http.StatusUnauthorized) || IsStatus(err, http.StatusTooManyRequests) {
			return "", 0, err
		}
		return "", 0, nil // nothing to resume; creating one says what is wrong, if anything
	}
	for _, u := range ups {
		if Clean(u.Path) != remote || u.Size != size || !strings.EqualFold(u.SHA256, sum) {
			continue
		}
		loc := u.URL
		if loc == "" {
			loc = "/api/v1/uploads/" + url.PathEscape(u.ID)
		}
		loc, err := c.resolve(loc)
		if err != nil {
			continue
		}
		off, err := c.uploadOffset(ctx, loc)
		if err != nil {
			if ctx.Err() != nil {
				return "", 0, ctx.Err()
			}
			continue // expired or gone meanwhile
		}
		if off >= size {
			continue // complete but not finished: not ours to fix
		}
		return loc, off, nil
	}
	return "", 0, nil
}

// createUpload creates an upload and returns its absolute URL.
func (c *Client) createUpload(ctx context.Context, remote string, size int64, sum string) (string, error) {
	var loc string
	err := c.retry(ctx, func() error {
		req, err := c.newRequest(ctx, "POST", c.url("/api/v1/uploads/"), nil)
		if err != nil {
			return err
		}
		b64 := base64.StdEncoding.EncodeToString
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
		req.Header.Set("Upload-Metadata", "path "+b64([]byte(remote))+",sha256 "+b64([]byte(sum)))
		res, err := c.send(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
		res.Body.Close()
		if res.StatusCode != http.StatusCreated || res.Header.Get("Location") == "" {
			return fmt.Errorf("creating the upload: unexpected %s", res.Status)
		}
		loc, err = c.resolve(res.Header.Get("Location"))
		return err
	})
	return loc, err
}

// uploadOffset asks the server how much of an upload it has (HEAD).
func (c *Client) uploadOffset(ctx context.Context, loc string) (int64, error) {
	var off int64
	err := c.retry(ctx, func() error {
		req, err := c.newRequest(ctx, "HEAD", loc, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Tus-Resumable", "1.0.0")
		res, err := c.send(req)
		if err != nil {
			return err
		}
		res.Body.Close()
		off, err = strconv.ParseInt(res.Header.Get("Upload-Offset"), 10, 64)
		if err != nil || off < 0 {
			return fmt.Errorf("server sent a bad Upload-Offset %q", res.Header.Get("Upload-Offset"))
		}
		return nil
	})
	return off, err
}

// patch sends one chunk at offset off. It returns the server's new offset,
// the whole file's SHA-256 if the server reported it (on the last chunk), and
// how many bytes of the chunk went out.
func (c *Client) patch(ctx context.Context, loc string, off int64, chunk []byte, progress func(int64)) (newOff int64, digest string, sent int64, err error) {
	d := sha256.Sum256(chunk)
	body := &countingReader{r: bytes.NewReader(chunk), report: func(n int64) { progress(off + n) }}
	req, err := c.newRequest(ctx, "PATCH", loc, body)
	if err != nil {
		return 0, "", 0, err
	}
	req.ContentLength = int64(len(chunk))
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(off, 10))
	req.Header.Set("Upload-Checksum", "sha256 "+base64.StdEncoding.EncodeToString(d[:]))
	res, err := c.send(req)
	sent = body.n.Load()
	if err != nil {
		return 0, "", sent, err
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	newOff, perr := strconv.ParseInt(res.Header.Get("Upload-Offset"), 10, 64)
	if perr != nil {
		return 0, "", sent, fmt.Errorf("server sent a bad Upload-Offset %q", res.Header.Get("Upload-Offset"))
	}
	return newOff, res.Header.Get("X-Ferry-SHA256"), sent, nil
}

// Cancel terminates an unfinished upload (DELETE), discarding what arrived.
func (c *Client) Cancel(ctx context.Context, loc string) error {
	loc, err := c.resolve(loc)
	if err != nil {
		return err
	}
	req, err := c.newRequest(ctx, "DELETE", loc, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	res, err := c.send(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	return nil
}

// countingReader counts the bytes read through it and reports the total.
type countingReader struct {
	r      io.Reader
	n      atomic.Int64
	report func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.report(c.n.Add(int64(n)))
	}
	return n, err
}
