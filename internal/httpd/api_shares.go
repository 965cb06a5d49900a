package httpd

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/transfer"
)

// The REST API of share links and folder watches (docs/SHARES.md,
// docs/openapi.yaml): bearer tokens, JSON in and out.

func (h *public) shareAPIRoutes() []route {
	return []route{
		{"POST /api/v1/shares", h.api(h.createShare)},
		{"GET /api/v1/shares", h.api(h.listShares)},
		{"DELETE /api/v1/shares/{id}", h.api(h.revokeShare)},
		{"POST /api/v1/watches", h.api(h.createWatch)},
		{"GET /api/v1/watches", h.api(h.listWatches)},
		{"DELETE /api/v1/watches/{id}", h.api(h.deleteWatch)},
	}
}

type shareJSON struct {
	ID           string     `json:"id"`
	Path         string     `json:"path"`
	Kind         string     `json:"kind"` // "file" or "folder"
	Mode         string     `json:"mode"` // "download" or "dropbox"
	Owner        string     `json:"owner"`
	Created      time.Time  `json:"created"`
	Expires      time.Time  `json:"expires"`
	Password     bool       `json:"password"`
	MaxDownloads int        `json:"max_downloads"`
	Downloads    int        `json:"downloads"`
	AllowedIPs   []string   `json:"allowed_ips"`
	Uses         int        `json:"uses"`
	LastUsed     *time.Time `json:"last_used,omitempty"`
	// URL and Token are returned once, when the link is made.
	URL   string `json:"url,omitempty"`
	Token string `json:"token,omitempty"`
}

func toShareJSON(s *ferry.Share) shareJSON {
	j := shareJSON{ID: s.ID, Path: s.Path, Kind: "file", Mode: "download", Owner: s.Email, Created: s.Created, Expires: s.Expires,
		Password: s.PasswordHash != "", MaxDownloads: s.MaxDownloads, Downloads: s.Downloads, Uses: s.Uses, AllowedIPs: []string{}}
	if s.Folder {
		j.Kind = "folder"
	}
	if s.DropBox {
		j.Mode = "dropbox"
	}
	for _, p := range s.AllowedIPs {
		j.AllowedIPs = append(j.AllowedIPs, p.String())
	}
	if !s.LastUsed.IsZero() {
		j.LastUsed = &s.LastUsed
	}
	return j
}

// shareURL is the link to give a visitor: on the configured public URL, so
// that a forged Host header cannot make Ferry hand out a link to elsewhere.
func (h *public) shareURL(r *http.Request, token string) string {
	u := h.tr.Link("/s/" + url.PathEscape(token))
	if strings.HasPrefix(u, "/") { // no public URL known (a bare handler in a test)
		u = "https://" + r.Host + u
	}
	return u
}

func (h *public) createShare(w http.ResponseWriter, r *http.Request) error {
	const op = "httpd.createShare"
	var req struct {
		Path         string     `json:"path"`
		Expires      *time.Time `json:"expires"`
		Password     string     `json:"password"`
		MaxDownloads int        `json:"max_downloads"`
		AllowedIPs   []string   `json:"allowed_ips"`
		Mode         string     `json:"mode"`
	}
	if err := decodeJSON(w, r, 16<<10, &req); err != nil {
		return err
	}
	o := transfer.ShareOptions{Path: req.Path, Password: req.Password, MaxDownloads: req.MaxDownloads}
	if req.Expires != nil {
		o.Expires = *req.Expires
	}
	switch req.Mode {
	case "", "download":
	case "dropbox":
		o.DropBox = true
	default:
		return ferry.E(op, ferry.Invalid, `mode must be "download" or "dropbox"`)
	}
	var err error
	if o.AllowedIPs, err = ferry.ParsePrefixes(req.AllowedIPs); err != nil {
		return err
	}
	sh, tok, err := h.tr.CreateShare(r.Context(), principalFrom(r.Context()), o)
	if err != nil {
		return err
	}
	j := toShareJSON(sh)
	j.Token, j.URL = tok, h.shareURL(r, tok)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, j)
	return nil
}

func (h *public) listShares(w http.ResponseWriter, r *http.Request) error {
	all := r.URL.Query().Get("all") == "true"
	ss, err := h.tr.Shares(r.Context(), principalFrom(r.Context()), all)
	if err != nil {
		return err
	}
	out := struct {
		Shares []shareJSON `json:"shares"`
	}{Shares: []shareJSON{}}
	for _, s := range ss {
		out.Shares = append(out.Shares, toShareJSON(s))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *public) revokeShare(w http.ResponseWriter, r *http.Request) error {
	if err := h.tr.RevokeShare(r.Context(), principalFrom(r.Context()), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type watchJSON struct {
	ID      string    `json:"id"`
	Path    string    `json:"path"`
	Created time.Time `json:"created"`
}

func (h *public) createWatch(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Path string `json:"path"`
	}
	if err := decodeJSON(w, r, 16<<10, &req); err != nil {
		return err
	}
	wt, err := h.tr.Watch(r.Context(), principalFrom(r.Context()), req.Path)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, watchJSON{ID: wt.ID, Path: wt.Path, Created: wt.Created})
	return nil
}

func (h *public) listWatches(w http.ResponseWriter, r *http.Request) error {
	ws, err := h.tr.Watches(r.Context(), principalFrom(r.Context()))
	if err != nil {
		return err
	}
	out := struct {
		Watches []watchJSON `json:"watches"`
	}{Watches: []watchJSON{}}
	for _, wt := range ws {
		out.Watches = append(out.Watches, watchJSON{ID: wt.ID, Path: wt.Path, Created: wt.Created})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *public) deleteWatch(w http.ResponseWriter, r *http.Request) error {
	if err := h.tr.Unwatch(r.Context(), principalFrom(r.Context()), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
