package client

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DownloadOptions tune Download.
type DownloadOptions struct {
	// Progress, if set, is called with the number of bytes of the file that
	// are on disk so far.
	Progress func(done int64)
}

// DownloadResult describes a finished download.
type DownloadResult struct {
	Path        string // remote
	Local       string
	Size        int64
	SHA256      string // lowercase hex, verified
	Received    int64  // content bytes received in this run
	ResumedFrom int64  // bytes already on disk from an earlier run (0: from scratch)
}

// PartialPath returns where Download keeps the unfinished download of
// target: ".NAME.ferry-part" next to it. The ETag the partial content belongs
// to is kept in the same name plus ".etag".
func PartialPath(target string) string {
	dir, name := filepath.Split(target)
	return filepath.Join(dir, "."+name+".ferry-part")
}

// Download downloads the remote file to the local path target. It writes to
// PartialPath(target) and, if that holds the start of the same version of the
// file from an interrupted run, asks only for the rest (Range with If-Range).
// It checks the SHA-256 of the whole content against the server's ETag (and
// Repr-Digest) and only then renames the file into place; on a mismatch it
// deletes the partial file and fails.
func (c *Client) Download(ctx context.Context, remote, target string, opts DownloadOptions) (res *DownloadResult, err error) {
	remote = Clean(remote)
	progress := opts.Progress
	if progress == nil {
		progress = func(int64) {}
	}
	part := PartialPath(target)
	etagFile := part + ".etag"
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			// Keep a partial file only if there is something in it to resume.
			if fi, serr := os.Stat(part); serr == nil && fi.Size() == 0 {
				os.Remove(part)
				os.Remove(etagFile)
			}
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	have := fi.Size()
	etag := ""
	if b, err := os.ReadFile(etagFile); err == nil {
		etag = strings.TrimSpace(string(b))
	}
	if etag == "" {
		have = 0
	}
	res = &DownloadResult{Path: remote, Local: target}
	h := sha256.New()
	if have > 0 {
		// Hash what is there already; the rest is hashed as it arrives.
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, have)); err != nil {
			return nil, err
		}
	}
	if err := f.Truncate(have); err != nil {
		return nil, err
	}
	first := true
	failures := 0
	var size int64 = -1
	var want, wantDigest string
	for {
		rng := have > 0 && etag != ""
		req, err := c.newRequest(ctx, "GET", c.url("/api/v1/files"+escape(remote)), nil)
		if err != nil {
			return nil, err
		}
		if rng {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
			req.Header.Set("If-Range", etag)
		}
		resp, err := c.send(req)
		if err != nil {
			if IsStatus(err, http.StatusRequestedRangeNotSatisfiable) && rng {
				// The partial file is no prefix of the current version: start over.
				have, etag = 0, ""
				h.Reset()
				if err := f.Truncate(0); err != nil {
					return nil, err
				}
				continue
			}
			if transient(err) && ctx.Err() == nil && failures < c.Retries {
				failures++
				if err := sleep(ctx, c.Backoff<<min(failures-1, 6)); err != nil {
					return nil, err
				}
				continue
			}
			return nil, err
		}
		tag := resp.Header.Get("ETag")
		switch resp.StatusCode {
		case http.StatusOK:
			// The whole file (new, or changed since the partial download).
			have = 0
			h.Reset()
			if err := f.Truncate(0); err != nil {
				resp.Body.Close()
				return nil, err
			}
			size = resp.ContentLength
			if tag != "" && tag != etag {
				if err := os.WriteFile(etagFile, []byte(tag+"\n"), 0o600); err != nil {
					resp.Body.Close()
					return nil, err
				}
			}
			etag = tag
		case http.StatusPartialContent:
			start, total, ok := contentRange(resp.Header.Get("Content-Range"))
			if !ok || start != have || (tag != "" && tag != etag) {
				resp.Body.Close()
				return nil, fmt.Errorf("server answered a resumed download with Content-Range %q", resp.Header.Get("Content-Range"))
			}
			size = total
		default:
			resp.Body.Close()
			return nil, fmt.Errorf("unexpected %s", resp.Status)
		}
		if first {
			res.ResumedFrom = have
			first = false
		}
		want = strings.ToLower(strings.Trim(strings.TrimPrefix(tag, "W/"), `"`))
		wantDigest = reprDigest(resp.Header.Get("Repr-Digest"))
		progress(have)
		n, err := copyAt(f, have, resp.Body, h, func(n int64) { progress(have + n) })
		resp.Body.Close()
		have += n
		res.Received += n
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !isNetRead(err) || failures >= c.Retries {
			return nil, err
		}
		failures++
		if err := sleep(ctx, c.Backoff<<min(failures-1, 6)); err != nil {
			return nil, err
		}
	}

	got := hex.EncodeToString(h.Sum(nil))
	if (size >= 0 && have != size) || (want != "" && got != want) || (wantDigest != "" && got != wantDigest) || (want == "" && wantDigest == "") {
		f.Close()
		f = nil
		os.Remove(part)
		os.Remove(etagFile)
		if want == "" && wantDigest == "" {
			return nil, errors.New("integrity: the server sent no SHA-256 to check the download against")
		}
		return nil, fmt.Errorf("integrity: downloaded %d bytes with SHA-256 %s, the server says %d bytes with %s; partial file removed", have, got, size, want)
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	err = f.Close()
	f = nil
	if err != nil {
		return nil, err
	}
	if err := os.Rename(part, target); err != nil {
		return nil, err
	}
	os.Remove(etagFile)
	if d, err := os.Open(filepath.Dir(target)); err == nil {
		d.Sync()
		d.Close()
	}
	res.Size, res.SHA256 = have, got
	return res, nil
}

// copyAt copies r to f from offset off on, through h, reporting the bytes
// copied so far. Errors reading r are wrapped in readError.
func copyAt(f *os.File, off int64, r io.Reader, h hash.Hash, report func(int64)) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		m, rerr := r.Read(buf)
		if m > 0 {
			if _, err := f.WriteAt(buf[:m], off+n); err != nil {
				return n, err
			}
			h.Write(buf[:m])
			n += int64(m)
			report(n)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, &netReadError{rerr}
		}
	}
}

// netReadError is a failure reading a response body: worth resuming.
type netReadError struct{ err error }

func (e *netReadError) Error() string { return e.err.Error() }
func (e *netReadError) Unwrap() error { return e.err }

func isNetRead(err error) bool {
	var e *netReadError
	return errors.As(err, &e)
}

// contentRange parses "bytes START-END/TOTAL".
func contentRange(s string) (start, total int64, ok bool) {
	s, ok = strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, false
	}
	rng, tot, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, false
	}
	a, _, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	total, err2 := strconv.ParseInt(tot, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || total < 0 {
		return 0, 0, false
	}
	return start, total, true
}

// reprDigest returns the hex SHA-256 in a Repr-Digest header
// ("sha-256=:BASE64:"), or "".
func reprDigest(s string) string {
	for _, item := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok || !strings.EqualFold(k, "sha-256") {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(strings.Trim(v, ":"))
		if err != nil || len(b) != sha256.Size {
			return ""
		}
		return hex.EncodeToString(b)
	}
	return ""
}
