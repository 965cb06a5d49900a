package httpd

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/transfer"
)

// The signed-in user's pages for share links and folder watches: the
// "Share" and "Watch" forms of the file browser post here, and /shares lists
// the user's links (to revoke them) and watches (to end them).

func (h *public) shareWebRoutes() []route {
	return []route{
		{"GET /shares", h.page(signedIn, h.sharesPage)},
		{"POST /shares", h.page(signedIn, h.createShareForm)},
		{"POST /shares/{id}/revoke", h.page(signedIn, h.revokeShareForm)},
		{"POST /watch/{path...}", h.page(signedIn, h.watchForm)},
		{"POST /watches/{id}/delete", h.page(signedIn, h.unwatchForm)},
	}
}

// sharesView is the data of the share links page.
type sharesView struct {
	Shares  []shareJSON
	Watches []*ferry.Watch
	NewURL  string // the link just made, shown once
	New     *shareJSON
}

var shareMessages = map[string]string{
	"revoked":   "The link was revoked; it no longer works.",
	"watch":     "You will get an email when new files arrive in that folder.",
	"unwatched": "You no longer watch that folder.",
}

func (h *public) sharesPage(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	d := wr.data("Share links")
	d.Flash = shareMessages[r.URL.Query().Get("ok")]
	return h.showShares(w, r, wr, d, nil)
}

func (h *public) showShares(w http.ResponseWriter, r *http.Request, wr *webReq, d *pageData, created *shareJSON) error {
	ctx := r.Context()
	ss, err := h.tr.Shares(ctx, wr.p, false)
	if err != nil {
		return err
	}
	v := &sharesView{New: created}
	if created != nil {
		v.NewURL = created.URL
	}
	for _, s := range ss {
		v.Shares = append(v.Shares, toShareJSON(s))
	}
	if v.Watches, err = h.tr.Watches(ctx, wr.p); err != nil {
		return err
	}
	var orgErr error
	d.Org, orgErr = h.tr.OrgName(ctx, wr.p)
	if orgErr != nil {
		return orgErr
	}
	d.Data = v
	return h.show(w, "shares", d)
}

// createShareForm makes a link from the file browser's "Share" form and
// shows it once.
func (h *public) createShareForm(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	const op = "httpd.createShareForm"
	f := r.PostForm
	o := transfer.ShareOptions{Path: f.Get("path"), Password: f.Get("password"), DropBox: f.Get("dropbox") == "on"}
	if days := strings.TrimSpace(f.Get("days")); days != "" {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || n > 3660 {
			return ferry.E(op, ferry.Invalid, "the link's lifetime must be a number of days")
		}
		o.Expires = time.Now().Add(time.Duration(n) * 24 * time.Hour)
	}
	if m := strings.TrimSpace(f.Get("max_downloads")); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil {
			return ferry.E(op, ferry.Invalid, "maximum downloads must be a number")
		}
		o.MaxDownloads = n
	}
	var err error
	if o.AllowedIPs, err = ferry.ParsePrefixes(strings.FieldsFunc(f.Get("allowed_ips"), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' })); err != nil {
		return err
	}
	sh, tok, err := h.tr.CreateShare(r.Context(), wr.p, o)
	if err != nil {
		return err
	}
	j := toShareJSON(sh)
	j.URL = h.shareURL(r, tok)
	w.Header().Set("Cache-Control", "no-store")
	d := wr.data("Share links")
	d.Flash = "Link created. Copy it now: it is shown only once."
	return h.showShares(w, r, wr, d, &j)
}

func (h *public) revokeShareForm(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	if err := h.tr.RevokeShare(r.Context(), wr.p, r.PathValue("id")); err != nil {
		return err
	}
	http.Redirect(w, r, "/shares?ok=revoked", http.StatusSeeOther)
	return nil
}

func (h *public) watchForm(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	if _, err := h.tr.Watch(r.Context(), wr.p, folderPath(r)); err != nil && ferry.KindOf(err) != ferry.Exist {
		return err
	}
	http.Redirect(w, r, "/shares?ok=watch", http.StatusSeeOther)
	return nil
}

func (h *public) unwatchForm(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	if err := h.tr.Unwatch(r.Context(), wr.p, r.PathValue("id")); err != nil {
		return err
	}
	http.Redirect(w, r, "/shares?ok=unwatched", http.StatusSeeOther)
	return nil
}
