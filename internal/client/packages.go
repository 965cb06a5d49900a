package client

import (
	"context"
	"encoding/json"
	"net/url"
	"time"
)

// PackageRequest composes a package (POST /api/v1/packages).
type PackageRequest struct {
	To            []string `json:"to"`
	Subject       string   `json:"subject"`
	Message       string   `json:"message,omitempty"`
	Expires       string   `json:"expires,omitempty"` // "7d", "36h"; empty: the organisation's policy
	MaxDownloads  int      `json:"max_downloads,omitempty"`
	RequireSignIn bool     `json:"require_signin,omitempty"`
	Notify        bool     `json:"notify,omitempty"`
	AllowReply    bool     `json:"allow_reply,omitempty"`
}

// Package is a package as the API shows it.
type Package struct {
	ID            string     `json:"id"`
	Sender        string     `json:"sender"`
	Subject       string     `json:"subject"`
	Message       string     `json:"message"`
	Status        string     `json:"status"` // draft, sent, recalled, expired
	Expires       time.Time  `json:"expires"`
	Created       time.Time  `json:"created"`
	Sent          *time.Time `json:"sent"`
	MaxDownloads  int        `json:"max_downloads"`
	RequireSignIn bool       `json:"require_signin"`
	Notify        bool       `json:"notify"`
	AllowReply    bool       `json:"allow_reply"`
	// UploadFolder is where a draft's files are uploaded (with Upload).
	UploadFolder string `json:"upload_folder"`
	Recipients   []struct {
		Email  string     `json:"email"`
		User   bool       `json:"ferry_user"`
		Opened *time.Time `json:"opened"`
	} `json:"recipients"`
	Files []struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	} `json:"files"`
	Receipts []struct {
		Recipient string    `json:"recipient"`
		File      string    `json:"file"`
		FileID    string    `json:"file_id"`
		Bytes     int64     `json:"bytes"`
		Remote    string    `json:"remote"`
		Time      time.Time `json:"time"`
	} `json:"receipts"`
	Replies []struct {
		From string    `json:"from"`
		Name string    `json:"name"`
		Size int64     `json:"size"`
		Time time.Time `json:"time"`
		Path string    `json:"path"`
	} `json:"replies"`
}

// CreatePackage creates a package draft; upload its files to
// UploadFolder, then SendPackage.
func (c *Client) CreatePackage(ctx context.Context, req PackageRequest) (*Package, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var out Package
	if _, err := c.do(ctx, "POST", "/api/v1/packages", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SendPackage sends a draft to its recipients.
//
// Sending is idempotent: a package that is sent already (by an earlier try
// whose answer was lost on the way, then retried) is returned as sent.
func (c *Client) SendPackage(ctx context.Context, id string) (*Package, error) {
	var out Package
	if _, err := c.do(ctx, "POST", "/api/v1/packages/"+url.PathEscape(id)+"/send", []byte("{}"), &out); err != nil {
		if IsKind(err, "conflict") {
			if p, gerr := c.GetPackage(ctx, id); gerr == nil && p.Sent != nil && p.Status != "recalled" {
				return p, nil
			}
		}
		return nil, err
	}
	return &out, nil
}

// RecallPackage recalls a package: its links stop working and its files are
// shredded (unless held).
func (c *Client) RecallPackage(ctx context.Context, id string) (*Package, error) {
	var out Package
	if _, err := c.do(ctx, "POST", "/api/v1/packages/"+url.PathEscape(id)+"/recall", []byte("{}"), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetPackage returns a package with its files, recipients, receipts and
// replies.
func (c *Client) GetPackage(ctx context.Context, id string) (*Package, error) {
	var out Package
	if _, err := c.do(ctx, "GET", "/api/v1/packages/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Packages lists the packages the caller sent and received.
func (c *Client) Packages(ctx context.Context) (sent, received []Package, err error) {
	var out struct {
		Sent     []Package `json:"sent"`
		Received []Package `json:"received"`
	}
	if _, err := c.do(ctx, "GET", "/api/v1/packages", nil, &out); err != nil {
		return nil, nil, err
	}
	return out.Sent, out.Received, nil
}
