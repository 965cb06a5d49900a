package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Identity is who a token belongs to (GET /api/v1/me).
type Identity struct {
	Email string `json:"email"`
	Org   string `json:"org"`
	Role  string `json:"role"`
}

// Me returns the identity of the client's token.
func (c *Client) Me(ctx context.Context) (*Identity, error) {
	var id Identity
	if _, err := c.do(ctx, "GET", "/api/v1/me", nil, &id); err != nil {
		return nil, err
	}
	return &id, nil
}

// Entry is one item of a folder listing.
type Entry struct {
	Name     string     `json:"name"`
	Type     string     `json:"type"` // "file" or "folder"
	Size     int64      `json:"size"`
	SHA256   string     `json:"sha256,omitempty"`
	Modified time.Time  `json:"modified"`
	Expires  *time.Time `json:"expires,omitempty"`
	Hold     bool       `json:"hold,omitempty"`
}

// IsFolder reports whether the entry is a folder.
func (e Entry) IsFolder() bool { return e.Type == "folder" }

// List returns the entries of a folder.
func (c *Client) List(ctx context.Context, folder string) ([]Entry, error) {
	var out struct {
		Path    string  `json:"path"`
		Entries []Entry `json:"entries"`
	}
	if _, err := c.do(ctx, "GET", "/api/v1/folders"+escape(folder), nil, &out); err != nil {
		return nil, err
	}
	return out.Entries, nil
}

// IsFolder reports whether p is a folder the caller can see: false (and no
// error) if there is nothing there or it is a file.
func (c *Client) IsFolder(ctx context.Context, p string) (bool, error) {
	_, err := c.do(ctx, "GET", "/api/v1/folders"+escape(p), nil, nil)
	switch {
	case err == nil:
		return true, nil
	case IsStatus(err, http.StatusNotFound):
		return false, nil
	}
	return false, err
}

// FileInfo is what HEAD says about a file.
type FileInfo struct {
	Path   string
	Size   int64
	SHA256 string // lowercase hex
}

// Stat returns the size and SHA-256 of a file.
func (c *Client) Stat(ctx context.Context, p string) (*FileInfo, error) {
	res, err := c.do(ctx, "HEAD", "/api/v1/files"+escape(p), nil, nil)
	if err != nil {
		return nil, err
	}
	size, _ := strconv.ParseInt(res.Header.Get("Content-Length"), 10, 64)
	return &FileInfo{Path: Clean(p), Size: size, SHA256: strings.Trim(res.Header.Get("ETag"), `"`)}, nil
}

// Mkdir creates one folder; its parent must exist. An existing folder is an
// error of kind "exist".
func (c *Client) Mkdir(ctx context.Context, p string) error {
	_, err := c.do(ctx, "POST", "/api/v1/folders"+escape(p), nil, nil)
	return err
}

// MkdirAll creates a folder and any missing parents; existing folders are
// fine. It creates only below the deepest folder that exists, so it needs
// write permission there and nowhere above.
func (c *Client) MkdirAll(ctx context.Context, p string) error {
	p = Clean(p)
	if p == "/" {
		return nil
	}
	els := strings.Split(p[1:], "/")
	// Find the deepest existing folder.
	have := 0
	for i := len(els); i > 0; i-- {
		ok, err := c.IsFolder(ctx, "/"+strings.Join(els[:i], "/"))
		if err != nil {
			return err
		}
		if ok {
			have = i
			break
		}
	}
	for i := have + 1; i <= len(els); i++ {
		cur := "/" + strings.Join(els[:i], "/")
		if err := c.Mkdir(ctx, cur); err != nil {
			if !IsKind(err, "exist") {
				return err
			}
			// Created meanwhile: fine if it is a folder.
			if ok, ferr := c.IsFolder(ctx, cur); ferr != nil || !ok {
				return err
			}
		}
	}
	return nil
}

// Delete deletes a file or an empty folder.
func (c *Client) Delete(ctx context.Context, p string) error {
	_, err := c.do(ctx, "DELETE", "/api/v1/files"+escape(p), nil, nil)
	return err
}

// RemoveAll deletes a folder's contents, depth first, then the folder; for a
// file it is Delete. removed, if not nil, is called after each deletion.
func (c *Client) RemoveAll(ctx context.Context, p string, removed func(path string)) error {
	p = Clean(p)
	isDir, err := c.IsFolder(ctx, p)
	if err != nil {
		return err
	}
	if isDir {
		entries, err := c.List(ctx, p)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := c.RemoveAll(ctx, joinRemote(p, e.Name), removed); err != nil {
				return err
			}
		}
	}
	if err := c.Delete(ctx, p); err != nil {
		return err
	}
	if removed != nil {
		removed(p)
	}
	return nil
}

// Move renames or moves a file or folder; dst must not exist.
func (c *Client) Move(ctx context.Context, src, dst string) error {
	_, err := c.do(ctx, "POST", "/api/v1/files"+escape(src)+"?move="+url.QueryEscape(Clean(dst)), nil, nil)
	return err
}

// joinRemote joins a remote folder and a name.
func joinRemote(dir, name string) string {
	return Clean(dir + "/" + name)
}

// TokenRequest asks the token endpoint for an API token.
type TokenRequest struct {
	Email     string `json:"email"`
	Password  string `json:"password"`
	TOTP      string `json:"totp,omitempty"`
	Name      string `json:"name"`
	Scope     string `json:"scope"`
	ExpiresIn int64  `json:"expires_in"`
}

// IssuedToken is a token the token endpoint issued.
type IssuedToken struct {
	Token   string    `json:"token"`
	ID      string    `json:"id"`
	Scope   string    `json:"scope"`
	Expires time.Time `json:"expires"`
}

// IssueToken signs in with an email and password (and a TOTP code when a
// second factor is due) at POST /api/v1/auth/token and returns a new API
// token. The client needs no token of its own for this.
func (c *Client) IssueToken(ctx context.Context, req TokenRequest) (*IssuedToken, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var t IssuedToken
	if _, err := c.do(ctx, "POST", "/api/v1/auth/token", body, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// SecondFactorRequired reports whether err is the token endpoint's answer
// that a TOTP code is needed.
func SecondFactorRequired(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == 401 && strings.Contains(e.Message, "second factor required")
}
