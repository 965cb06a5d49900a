package httpd

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/transfer"
)

// The packages pages of the web UI: inbox and outbox, composing a package
// (a draft whose files are uploaded by the file browser's tus uploader into
// the draft's folder), its detail page (delivery status, receipts, replies,
// send, recall) and downloads for signed-in recipients.

func (h *public) packagePageRoutes() []route {
	return []route{
		{"GET /inbox", h.page(signedIn, h.inboxPage)},
		{"GET /outbox", h.page(signedIn, h.outboxPage)},
		{"GET /outbox/new", h.page(signedIn, h.composeForm)},
		{"POST /outbox/new", h.page(signedIn, h.compose)},
		{"GET /packages/{id}", h.page(signedIn, h.packagePage)},
		{"POST /packages/{id}/send", h.page(signedIn, h.sendPackageForm)},
		{"POST /packages/{id}/recall", h.page(signedIn, h.recallPackageForm)},
		{"GET /packages/{id}/files/{file}", h.page(signedIn, h.packageDownload)},
		{"POST /packages/{id}/reply", h.recipientReply()},
	}
}

// packageRow is one package in a list.
type packageRow struct {
	ID, Subject, Who, Status string
	Created, Expires         time.Time
}

type packagesView struct {
	Inbox bool
	Rows  []packageRow
}

func (h *public) inboxPage(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	_, received, err := h.tr.Packages(r.Context(), wr.p)
	if err != nil {
		return err
	}
	v := &packagesView{Inbox: true}
	now := time.Now()
	for _, p := range received {
		v.Rows = append(v.Rows, packageRow{ID: p.ID, Subject: p.Subject, Who: p.SenderEmail, Status: packageStatus(p, now), Created: p.Sent, Expires: p.Expires})
	}
	d := wr.data("Inbox")
	d.Heading, d.Data = "Inbox", v
	return h.show(w, "packages", d)
}

func (h *public) outboxPage(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	sent, _, err := h.tr.Packages(r.Context(), wr.p)
	if err != nil {
		return err
	}
	v := &packagesView{}
	now := time.Now()
	for _, p := range sent {
		v.Rows = append(v.Rows, packageRow{ID: p.ID, Subject: p.Subject, Status: packageStatus(p, now), Created: p.Created, Expires: p.Expires})
	}
	d := wr.data("Outbox")
	d.Heading, d.Data, d.Flash = "Outbox", v, flashOf(r)
	return h.show(w, "packages", d)
}

func flashOf(r *http.Request) string {
	switch r.URL.Query().Get("done") {
	case "sent":
		return "The package was sent."
	case "recalled":
		return "The package was recalled: its links no longer work and its files were deleted."
	case "replied":
		return "Your file was sent."
	}
	return ""
}

// composeView is the compose form, refilled after a refusal.
type composeView struct {
	To, Subject, Message, Expires, MaxDownloads string
	RequireSignIn, Notify, AllowReply           bool
}

func (h *public) composeForm(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	d := wr.data("New package")
	d.Data = &composeView{Notify: true}
	return h.show(w, "compose", d)
}

func (h *public) compose(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	f := r.PostForm
	cv := &composeView{To: f.Get("to"), Subject: f.Get("subject"), Message: f.Get("message"), Expires: f.Get("expires"), MaxDownloads: f.Get("max_downloads"),
		RequireSignIn: f.Get("require_signin") != "", Notify: f.Get("notify") != "", AllowReply: f.Get("allow_reply") != ""}
	draft, err := func() (transfer.PackageDraft, error) {
		exp, err := parseExpiry(cv.Expires)
		if err != nil {
			return transfer.PackageDraft{}, err
		}
		maxDl := 0
		if s := strings.TrimSpace(cv.MaxDownloads); s != "" {
			if maxDl, err = strconv.Atoi(s); err != nil {
				return transfer.PackageDraft{}, ferry.E("httpd.compose", ferry.Invalid, "max downloads must be a number")
			}
		}
		to := strings.FieldsFunc(cv.To, func(r rune) bool { return r == ',' || r == ';' || r == '\n' })
		return transfer.PackageDraft{To: to, Subject: cv.Subject, Message: cv.Message, Expires: exp, MaxDownloads: maxDl,
			RequireSignIn: cv.RequireSignIn, Notify: cv.Notify, AllowReply: cv.AllowReply}, nil
	}()
	var pkg *ferry.Package
	if err == nil {
		pkg, err = h.tr.CreatePackage(r.Context(), wr.p, draft)
	}
	if err != nil {
		if k := ferry.KindOf(err); k != ferry.Invalid && k != ferry.Permission {
			return err
		}
		d := wr.data("New package")
		d.Data, d.Error = cv, ferry.Message(err)
		return h.showStatus(w, statusOf(ferry.KindOf(err)), "compose", d)
	}
	http.Redirect(w, r, "/packages/"+pkg.ID, http.StatusSeeOther)
	return nil
}

// packageDetail is the detail page.
type packageDetail struct {
	*transfer.PackageView
	Sender       bool
	Status       string
	Draft        bool
	Active       bool
	CanReply     bool
	UploadFolder string
	Files        []packageFileRow
	Replies      []replyRow
}

type packageFileRow struct {
	ID, Name, Size string
}

type replyRow struct {
	From, Name, Size, Href string
	Time                   time.Time
}

func (h *public) packagePage(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	return h.showPackage(w, r, wr, http.StatusOK, "")
}

// showPackage renders the detail page, with an error message if the last
// action was refused.
func (h *public) showPackage(w http.ResponseWriter, r *http.Request, wr *webReq, status int, errMsg string) error {
	v, err := h.tr.Package(r.Context(), wr.p, r.PathValue("id"))
	if err != nil {
		return err
	}
	now := time.Now()
	pd := &packageDetail{PackageView: v, Sender: v.SenderID == wr.p.UserID, Status: packageStatus(v.Package, now),
		Draft: v.Status == ferry.PackageDraft, Active: v.Active(now)}
	pd.CanReply = !pd.Sender && pd.AllowReply && pd.Active
	if pd.Sender && pd.Draft {
		pd.UploadFolder = transfer.PackageFolder(v.ID)
	}
	for _, f := range v.Files {
		pd.Files = append(pd.Files, packageFileRow{ID: f.ID, Name: f.Name, Size: humanSize(f.Size)})
	}
	paths := map[string]string{}
	for _, f := range v.ReplyFiles {
		paths[f.ID] = f.Path
	}
	for _, rp := range v.Replies {
		row := replyRow{From: rp.Email, Name: rp.Name, Size: humanSize(rp.Size), Time: rp.Created}
		if p := paths[rp.FileID]; p != "" {
			row.Href = "/download" + escapePath(p)
		}
		pd.Replies = append(pd.Replies, row)
	}
	d := wr.data(v.Subject)
	d.Heading, d.Data, d.Flash, d.Error = v.Subject, pd, flashOf(r), errMsg
	if pd.UploadFolder != "" {
		d.Scripts = []string{"files.js"}
	}
	return h.showStatus(w, status, "packages_detail", d)
}

func (h *public) sendPackageForm(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	id := r.PathValue("id")
	if _, err := h.tr.SendPackage(r.Context(), wr.p, id); err != nil {
		if k := ferry.KindOf(err); k == ferry.Invalid || k == ferry.TooLarge || k == ferry.Conflict {
			return h.showPackage(w, r, wr, statusOf(k), ferry.Message(err))
		}
		return err
	}
	http.Redirect(w, r, "/packages/"+id+"?done=sent", http.StatusSeeOther)
	return nil
}

func (h *public) recallPackageForm(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	id := r.PathValue("id")
	if err := h.tr.RecallPackage(r.Context(), wr.p, id); err != nil {
		return err
	}
	http.Redirect(w, r, "/packages/"+id+"?done=recalled", http.StatusSeeOther)
	return nil
}

// packageDownload is a signed-in recipient's download: counted, receipted
// and audited by transfer like a guest's.
func (h *public) packageDownload(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	return serveCounted(w, r, func() (*transfer.Download, error) {
		return h.tr.OpenPackageFile(r.Context(), wr.p, r.PathValue("id"), r.PathValue("file"))
	})
}

// recipientReply takes a file a signed-in recipient sends back. The form is
// multipart, which the page wrapper's form check does not parse, so this
// handler checks the session, the origin and the CSRF token (the form's
// first part) itself, then streams the file to internal/transfer.
func (h *public) recipientReply() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", pageCSP)
		wr := &webReq{}
		err := func() error {
			const op = "httpd.recipientReply"
			c, err := r.Cookie(auth.SessionCookie)
			if err != nil || c.Value == "" {
				return ferry.E(op, ferry.Unauthenticated, "sign in first")
			}
			sess, p, err := h.auth.Session(r.Context(), c.Value, remoteHost(r))
			if err != nil {
				return err
			}
			if sess.Stage != ferry.SessionFull {
				return ferry.E(op, ferry.Unauthenticated, "finish signing in first")
			}
			p.Protocol = "https"
			wr.secret, wr.sess, wr.p = c.Value, sess, p
			if err := sameOrigin(r); err != nil {
				return err
			}
			name, body, err := multipartFile(w, r, h.cfg.MaxUpload, auth.CSRFToken(c.Value))
			if err != nil {
				return err
			}
			id := r.PathValue("id")
			if _, err := h.tr.PutReply(r.Context(), p, id, name, body); err != nil {
				return err
			}
			http.Redirect(w, r, "/packages/"+id+"?done=replied", http.StatusSeeOther)
			return nil
		}()
		if err != nil {
			h.renderPage(w, r, wr, err)
		}
	})
}
