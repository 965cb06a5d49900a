package client

import (
	"context"
	"encoding/json"
	"net/url"
	"time"
)

// ShareRequest asks for a share link (POST /api/v1/shares).
type ShareRequest struct {
	Path         string     `json:"path"`
	Expires      *time.Time `json:"expires,omitempty"`
	Password     string     `json:"password,omitempty"`
	MaxDownloads int        `json:"max_downloads,omitempty"`
	AllowedIPs   []string   `json:"allowed_ips,omitempty"`
	Mode         string     `json:"mode,omitempty"` // "download" (default) or "dropbox"
}

// Share is a share link as the API describes it. URL and Token are set only
// in the answer to CreateShare: the server keeps only a hash of the token.
type Share struct {
	ID           string     `json:"id"`
	Path         string     `json:"path"`
	Kind         string     `json:"kind"`
	Mode         string     `json:"mode"`
	Owner        string     `json:"owner"`
	Created      time.Time  `json:"created"`
	Expires      time.Time  `json:"expires"`
	Password     bool       `json:"password"`
	MaxDownloads int        `json:"max_downloads"`
	Downloads    int        `json:"downloads"`
	AllowedIPs   []string   `json:"allowed_ips"`
	Uses         int        `json:"uses"`
	LastUsed     *time.Time `json:"last_used,omitempty"`
	URL          string     `json:"url,omitempty"`
	Token        string     `json:"token,omitempty"`
}

// CreateShare makes a share link. Like every request it is retried after a
// transient failure, so a lost answer can leave a second link (listed by
// Shares, and revocable).
func (c *Client) CreateShare(ctx context.Context, req ShareRequest) (*Share, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var out Share
	if _, err := c.do(ctx, "POST", "/api/v1/shares", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Shares lists the caller's active share links; with all (organisation
// admins only) every active link of the organisation.
func (c *Client) Shares(ctx context.Context, all bool) ([]Share, error) {
	var out struct {
		Shares []Share `json:"shares"`
	}
	p := "/api/v1/shares"
	if all {
		p += "?all=true"
	}
	if _, err := c.do(ctx, "GET", p, nil, &out); err != nil {
		return nil, err
	}
	return out.Shares, nil
}

// RevokeShare revokes a share link; it stops working at once.
func (c *Client) RevokeShare(ctx context.Context, id string) error {
	_, err := c.do(ctx, "DELETE", "/api/v1/shares/"+url.PathEscape(id), nil, nil)
	return err
}

// Watch is a watched folder.
type Watch struct {
	ID      string    `json:"id"`
	Path    string    `json:"path"`
	Created time.Time `json:"created"`
}

// WatchFolder starts watching a folder: the caller is mailed when files
// arrive in it.
func (c *Client) WatchFolder(ctx context.Context, folder string) (*Watch, error) {
	body, err := json.Marshal(map[string]string{"path": Clean(folder)})
	if err != nil {
		return nil, err
	}
	var out Watch
	if _, err := c.do(ctx, "POST", "/api/v1/watches", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Watches lists the caller's watched folders.
func (c *Client) Watches(ctx context.Context) ([]Watch, error) {
	var out struct {
		Watches []Watch `json:"watches"`
	}
	if _, err := c.do(ctx, "GET", "/api/v1/watches", nil, &out); err != nil {
		return nil, err
	}
	return out.Watches, nil
}

// Unwatch stops a watch.
func (c *Client) Unwatch(ctx context.Context, id string) error {
	_, err := c.do(ctx, "DELETE", "/api/v1/watches/"+url.PathEscape(id), nil, nil)
	return err
}
