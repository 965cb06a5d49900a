package httpd

import (
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/transfer"
)

// The packages API (docs/PACKAGES.md): compose a package (a draft), upload
// its files with tus to the folder the draft names, send it, list, inspect
// and recall. Everything goes through internal/transfer.

func (h *public) packageRoutes() []route {
	return []route{
		{"POST /api/v1/packages", h.api(h.createPackage)},
		{"GET /api/v1/packages", h.api(h.listPackages)},
		{"GET /api/v1/packages/{id}", h.api(h.getPackage)},
		{"POST /api/v1/packages/{id}/send", h.api(h.sendPackage)},
		{"POST /api/v1/packages/{id}/recall", h.api(h.recallPackage)},
		{"GET /api/v1/packages/{id}/files/{file}", h.api(h.packageFile)},
	}
}

type packageRequest struct {
	To            []string `json:"to"`
	Subject       string   `json:"subject"`
	Message       string   `json:"message"`
	Expires       string   `json:"expires"` // "7d", "36h"; empty: the organisation's policy
	MaxDownloads  int      `json:"max_downloads"`
	RequireSignIn bool     `json:"require_signin"`
	Notify        bool     `json:"notify"`
	AllowReply    bool     `json:"allow_reply"`
}

type packageFileJSON struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

type recipientJSON struct {
	Email  string     `json:"email"`
	User   bool       `json:"ferry_user"`
	Opened *time.Time `json:"opened,omitempty"`
}

type receiptJSON struct {
	Recipient string    `json:"recipient"`
	File      string    `json:"file"`
	FileID    string    `json:"file_id"`
	Bytes     int64     `json:"bytes"`
	Remote    string    `json:"remote"`
	Time      time.Time `json:"time"`
}

type replyJSON struct {
	From string    `json:"from"`
	Name string    `json:"name"`
	Size int64     `json:"size"`
	Time time.Time `json:"time"`
	Path string    `json:"path,omitempty"`
}

type packageJSON struct {
	ID            string            `json:"id"`
	Sender        string            `json:"sender"`
	Subject       string            `json:"subject"`
	Message       string            `json:"message,omitempty"`
	Status        string            `json:"status"`
	Expires       time.Time         `json:"expires"`
	Created       time.Time         `json:"created"`
	Sent          *time.Time        `json:"sent,omitempty"`
	MaxDownloads  int               `json:"max_downloads"`
	RequireSignIn bool              `json:"require_signin"`
	Notify        bool              `json:"notify"`
	AllowReply    bool              `json:"allow_reply"`
	UploadFolder  string            `json:"upload_folder,omitempty"`
	Recipients    []recipientJSON   `json:"recipients,omitempty"`
	Files         []packageFileJSON `json:"files,omitempty"`
	Receipts      []receiptJSON     `json:"receipts,omitempty"`
	Replies       []replyJSON       `json:"replies,omitempty"`
}

// packageStatus is the status shown: expired once past the expiry.
func packageStatus(p *ferry.Package, now time.Time) string {
	if p.Status == ferry.PackageSent && !now.Before(p.Expires) {
		return "expired"
	}
	return p.Status
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func toPackageJSON(p *ferry.Package, sender bool) packageJSON {
	j := packageJSON{ID: p.ID, Sender: p.SenderEmail, Subject: p.Subject, Message: p.Message, Status: packageStatus(p, time.Now()),
		Expires: p.Expires, Created: p.Created, Sent: optTime(p.Sent), MaxDownloads: p.MaxDownloads,
		RequireSignIn: p.RequireSignIn, Notify: p.Notify, AllowReply: p.AllowReply}
	if sender && p.Status == ferry.PackageDraft {
		j.UploadFolder = transfer.PackageFolder(p.ID)
	}
	return j
}

func toPackageViewJSON(v *transfer.PackageView, sender bool) packageJSON {
	j := toPackageJSON(v.Package, sender)
	for _, f := range v.Files {
		j.Files = append(j.Files, packageFileJSON{ID: f.ID, Name: f.Name, Size: f.Size, SHA256: hex.EncodeToString(f.SHA256)})
	}
	if sender {
		for _, r := range v.Recipients {
			j.Recipients = append(j.Recipients, recipientJSON{Email: r.Email, User: r.UserID != "", Opened: optTime(r.Opened)})
		}
		for _, r := range v.Receipts {
			j.Receipts = append(j.Receipts, receiptJSON{Recipient: r.Email, File: r.FileName, FileID: r.FileID, Bytes: r.Bytes, Remote: r.Remote, Time: r.Time})
		}
	}
	paths := map[string]string{}
	for _, f := range v.ReplyFiles {
		paths[f.ID] = f.Path
	}
	for _, r := range v.Replies {
		j.Replies = append(j.Replies, replyJSON{From: r.Email, Name: r.Name, Size: r.Size, Time: r.Created, Path: paths[r.FileID]})
	}
	return j
}

// parseExpiry reads "7d", "12h", "90m" (or a plain number of days).
func parseExpiry(s string) (time.Duration, error) {
	const op = "httpd.parseExpiry"
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	days := strings.TrimSuffix(s, "d")
	if n, err := strconv.Atoi(days); err == nil {
		if n <= 0 || n > 3650 {
			return 0, ferry.E(op, ferry.Invalid, "expiry must be a positive number of days")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, ferry.Errorf(op, ferry.Invalid, "expiry %q: want a duration such as 7d or 36h", s)
	}
	return d, nil
}

func (req packageRequest) draft() (transfer.PackageDraft, error) {
	exp, err := parseExpiry(req.Expires)
	if err != nil {
		return transfer.PackageDraft{}, err
	}
	return transfer.PackageDraft{To: req.To, Subject: req.Subject, Message: req.Message, Expires: exp, MaxDownloads: req.MaxDownloads,
		RequireSignIn: req.RequireSignIn, Notify: req.Notify, AllowReply: req.AllowReply}, nil
}

func (h *public) createPackage(w http.ResponseWriter, r *http.Request) error {
	var req packageRequest
	if err := decodeJSON(w, r, 64<<10, &req); err != nil {
		return err
	}
	d, err := req.draft()
	if err != nil {
		return err
	}
	pkg, err := h.tr.CreatePackage(r.Context(), principalFrom(r.Context()), d)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, toPackageJSON(pkg, true))
	return nil
}

func (h *public) listPackages(w http.ResponseWriter, r *http.Request) error {
	sent, received, err := h.tr.Packages(r.Context(), principalFrom(r.Context()))
	if err != nil {
		return err
	}
	out := struct {
		Sent     []packageJSON `json:"sent"`
		Received []packageJSON `json:"received"`
	}{Sent: []packageJSON{}, Received: []packageJSON{}}
	for _, p := range sent {
		out.Sent = append(out.Sent, toPackageJSON(p, true))
	}
	for _, p := range received {
		out.Received = append(out.Received, toPackageJSON(p, false))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *public) getPackage(w http.ResponseWriter, r *http.Request) error {
	p := principalFrom(r.Context())
	v, err := h.tr.Package(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toPackageViewJSON(v, v.SenderID == p.UserID))
	return nil
}

func (h *public) sendPackage(w http.ResponseWriter, r *http.Request) error {
	p := principalFrom(r.Context())
	if _, err := h.tr.SendPackage(r.Context(), p, r.PathValue("id")); err != nil {
		return err
	}
	return h.getPackage(w, r)
}

func (h *public) recallPackage(w http.ResponseWriter, r *http.Request) error {
	if err := h.tr.RecallPackage(r.Context(), principalFrom(r.Context()), r.PathValue("id")); err != nil {
		return err
	}
	return h.getPackage(w, r)
}

// packageFile is a recipient's download of a package file: counted against
// the download limit, receipted and audited, like a guest's.
func (h *public) packageFile(w http.ResponseWriter, r *http.Request) error {
	return serveCounted(w, r, func() (*transfer.Download, error) {
		return h.tr.OpenPackageFile(r.Context(), principalFrom(r.Context()), r.PathValue("id"), r.PathValue("file"))
	})
}
