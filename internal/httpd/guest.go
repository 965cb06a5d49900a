package httpd

import (
	"crypto/subtle"
	"io"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/time/rate"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/transfer"
)

// The guest pages: what an external package recipient reaches through the
// link in their mail, /p/{token}. They are a route set of their own,
// deliberately small (the 2023 MOVEit breach entered through the guest page
// of such a product): every route here resolves the link first, answers an
// unknown, expired, recalled or exhausted link with the same page and status
// (no oracle), is rate-limited per address and per link separately from the
// sign-in limiter, and reaches nothing but the one package through
// internal/transfer. The guest signs in with a one-time code mailed to the
// recipient address (internal/auth/guest.go) and holds a __Host- cookie
// whose session is valid for that package only.

// PackageGuestCookie holds a package guest's session secret.
const PackageGuestCookie = "__Host-ferry-guest"

// pkgLimits are the guest pages' rate limits; addresses are keyed by
// auth.AddrKey (an IPv6 client holds a whole /64).
type pkgLimits struct {
	addr *limiterSet // every guest request, per address
	bad  *limiterSet // unknown or dead links, per address
	tok  *limiterSet // per link
}

func newPkgLimits() *pkgLimits {
	return &pkgLimits{
		addr: newLimiterSet(rate.Every(250*time.Millisecond), 60),
		bad:  newLimiterSet(rate.Every(time.Minute), 5),
		tok:  newLimiterSet(rate.Every(2*time.Second), 30),
	}
}

// guestRoutes is the complete route table of the guest pages.
func (h *public) guestRoutes() []route {
	gl := newPkgLimits()
	return []route{
		{"GET /p/{token}", h.guest(gl, h.guestShow)},
		{"POST /p/{token}/code", h.guest(gl, h.guestSendCode)},
		{"POST /p/{token}/verify", h.guest(gl, h.guestVerify)},
		{"GET /p/{token}/files/{file}", h.guest(gl, h.guestDownload)},
		{"POST /p/{token}/reply", h.guest(gl, h.guestReply)},
	}
}

// pkgGuest is the state of a guest request.
type pkgGuest struct {
	token  string
	pkg    *ferry.Package
	rcpt   *ferry.PackageRecipient
	p      *ferry.Principal // nil until signed in with a code
	secret string           // the guest cookie's value, when it is valid
}

type pkgGuestFunc func(w http.ResponseWriter, r *http.Request, g *pkgGuest) error

// pkgGuestView is what guest.html shows.
type pkgGuestView struct {
	State    string // "gone", "signin", "code", "package", "limited"
	Token    string
	CodeSent bool
	Sender   string
	Subject  string
	Message  string
	Expires  time.Time
	Files    []pkgGuestFile
	Reply    bool
	Replies  []string
}

type pkgGuestFile struct {
	ID, Name, Size string
}

func (h *public) guestPage(w http.ResponseWriter, status int, title string, csrf string, v *pkgGuestView, msg, errMsg string) error {
	d := &pageData{Title: title, CSRF: csrf, Data: v, Flash: msg, Error: errMsg}
	return h.showStatus(w, status, "guest", d)
}

// guest wraps a guest route: headers, rate limits, the link, the guest
// session, the same-origin and CSRF checks of forms.
func (h *public) guest(gl *pkgLimits, fn pkgGuestFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", pageCSP)
		w.Header().Set("Cache-Control", "no-store")
		ctx := r.Context()
		addr := remoteHost(r)
		key := auth.AddrKey(addr)
		limited := func() {
			w.Header().Set("Retry-After", "60")
			h.guestPage(w, http.StatusTooManyRequests, "Slow down", "", &pkgGuestView{State: "limited"}, "", "Too many requests from your address. Wait a minute and try again.")
		}
		if !gl.addr.allow(key) || gl.bad.blocked(key) {
			limited()
			return
		}
		token := r.PathValue("token")
		pkg, rcpt, err := h.tr.PackageLink(ctx, token, addr)
		if ferry.KindOf(err) == ferry.NotExist {
			gl.bad.allow(key)
			h.guestPage(w, http.StatusNotFound, "Not available", "", &pkgGuestView{State: "gone"}, "", "")
			return
		} else if err != nil {
			h.renderPage(w, r, &webReq{}, err)
			return
		}
		if !gl.tok.allow(token) {
			limited()
			return
		}
		g := &pkgGuest{token: token, pkg: pkg, rcpt: rcpt}
		if c, err := r.Cookie(PackageGuestCookie); err == nil && c.Value != "" {
			p, err := h.auth.GuestSession(ctx, c.Value, pkg.ID, addr)
			if err == nil && p.Guest == rcpt.Email {
				g.p, g.secret = p, c.Value
			}
		}
		if r.Method == http.MethodPost && r.URL.Path != "/p/"+token+"/reply" {
			if err := checkForm(w, r, g.secret); err != nil {
				h.renderPage(w, r, &webReq{}, err)
				return
			}
		}
		if err := fn(w, r, g); err != nil {
			h.renderPage(w, r, &webReq{}, err)
		}
	})
}

// mustSignIn reports whether the recipient must sign in to Ferry instead of
// using a code: a Ferry user, or a package that requires it.
func (g *pkgGuest) mustSignIn() bool { return g.rcpt.UserID != "" || g.pkg.RequireSignIn }

func (h *public) guestShow(w http.ResponseWriter, r *http.Request, g *pkgGuest) error {
	v := &pkgGuestView{Token: g.token, Sender: g.pkg.SenderEmail, Subject: g.pkg.Subject, Expires: g.pkg.Expires}
	switch {
	case g.mustSignIn():
		v.State = "signin"
		return h.guestPage(w, http.StatusOK, "Sign in", "", v, "", "")
	case g.p == nil:
		v.State, v.CodeSent = "code", r.URL.Query().Get("sent") == "1"
		return h.guestPage(w, http.StatusOK, "Confirm your address", "", v, "", "")
	}
	pv, err := h.tr.Package(r.Context(), g.p, g.pkg.ID)
	if err != nil {
		return err
	}
	v.State, v.Message, v.Reply = "package", pv.Message, pv.AllowReply
	for _, f := range pv.Files {
		v.Files = append(v.Files, pkgGuestFile{ID: f.ID, Name: f.Name, Size: humanSize(f.Size)})
	}
	for _, rp := range pv.Replies {
		v.Replies = append(v.Replies, rp.Name)
	}
	flash := ""
	if r.URL.Query().Get("replied") == "1" {
		flash = "Your file was sent."
	}
	return h.guestPage(w, http.StatusOK, g.pkg.Subject, auth.CSRFToken(g.secret), v, flash, "")
}

func (h *public) guestSendCode(w http.ResponseWriter, r *http.Request, g *pkgGuest) error {
	if g.mustSignIn() {
		http.Redirect(w, r, "/p/"+g.token, http.StatusSeeOther)
		return nil
	}
	code, err := h.auth.IssueGuestCode(r.Context(), g.rcpt)
	if err != nil {
		if ferry.KindOf(err) == ferry.Quota {
			if err := h.tr.MailGuestCode(r.Context(), g.pkg, g.rcpt, "", remoteHost(r)); err != nil {
				return err
			}
			w.Header().Set("Retry-After", "300")
			return h.guestPage(w, http.StatusTooManyRequests, "Confirm your address", "", &pkgGuestView{State: "code", Token: g.token, CodeSent: true, Sender: g.pkg.SenderEmail, Subject: g.pkg.Subject}, "", ferry.Message(err))
		}
		return err
	}
	if err := h.tr.MailGuestCode(r.Context(), g.pkg, g.rcpt, code, remoteHost(r)); err != nil {
		return err
	}
	http.Redirect(w, r, "/p/"+g.token+"?sent=1", http.StatusSeeOther)
	return nil
}

func (h *public) guestVerify(w http.ResponseWriter, r *http.Request, g *pkgGuest) error {
	if g.mustSignIn() {
		http.Redirect(w, r, "/p/"+g.token, http.StatusSeeOther)
		return nil
	}
	secret, gs, err := h.auth.VerifyGuestCode(r.Context(), g.pkg, g.rcpt, r.PostForm.Get("code"), remoteHost(r))
	if ferry.KindOf(err) == ferry.Permission {
		v := &pkgGuestView{State: "code", Token: g.token, CodeSent: true, Sender: g.pkg.SenderEmail, Subject: g.pkg.Subject}
		return h.guestPage(w, http.StatusForbidden, "Confirm your address", "", v, "", "That code is wrong or no longer valid. After five wrong tries, ask for a new code.")
	} else if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: PackageGuestCookie, Value: secret, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(time.Until(gs.Expires).Seconds())})
	http.Redirect(w, r, "/p/"+g.token, http.StatusSeeOther)
	return nil
}

func (h *public) guestDownload(w http.ResponseWriter, r *http.Request, g *pkgGuest) error {
	if g.p == nil {
		http.Redirect(w, r, "/p/"+g.token, http.StatusSeeOther)
		return nil
	}
	return serveCounted(w, r, func() (*transfer.Download, error) {
		return h.tr.OpenPackageFile(r.Context(), g.p, g.pkg.ID, r.PathValue("file"))
	})
}

// serveCounted sends a whole file whose open counts a download (a package
// file, a share link's file) as an attachment, with no ranges to resume.
// It refuses anything but GET before open is called: a "GET" route also
// matches HEAD, and a HEAD (a link preview, a mail scanner, curl -I) would
// otherwise use up a download, and send a receipt, for no bytes.
func serveCounted(w http.ResponseWriter, r *http.Request, open func() (*transfer.Download, error)) error {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		return ferry.E("httpd.download", ferry.Invalid, "download with GET")
	}
	d, err := open()
	if err != nil {
		return err
	}
	rc, err := d.Read(r.Context(), 0, d.File.Size)
	if err != nil {
		return err
	}
	defer rc.Close()
	fileHeaders(w, d.File)
	w.Header().Del("Accept-Ranges")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.FormatInt(d.File.Size, 10))
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil {
		panic(http.ErrAbortHandler) // the client must not take a short body for the file
	}
	return nil
}

// guestReply takes a file the guest sends back: a multipart form whose
// first part is the CSRF token and whose second is the file, streamed to
// internal/transfer.
func (h *public) guestReply(w http.ResponseWriter, r *http.Request, g *pkgGuest) error {
	const op = "httpd.guestReply"
	if g.p == nil {
		return ferry.E(op, ferry.Unauthenticated, "confirm your address with a code first")
	}
	if err := sameOrigin(r); err != nil {
		return err
	}
	name, fp, err := multipartFile(w, r, h.cfg.MaxUpload, auth.CSRFToken(g.secret))
	if err != nil {
		return err
	}
	if _, err := h.tr.PutReply(r.Context(), g.p, g.pkg.ID, name, fp); err != nil {
		return err
	}
	http.Redirect(w, r, "/p/"+g.token+"?replied=1", http.StatusSeeOther)
	return nil
}

// multipartFile reads an upload form: its first part must be the csrf field
// holding csrf, then a part named "file", returned unread (streamed) with
// its file name.
func multipartFile(w http.ResponseWriter, r *http.Request, limit int64, csrf string) (string, io.Reader, error) {
	const op = "httpd.multipartFile"
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	mr, err := r.MultipartReader()
	if err != nil {
		return "", nil, ferry.E(op, ferry.Invalid, "send the file as multipart/form-data", err)
	}
	part, err := mr.NextPart()
	if err != nil || part.FormName() != "csrf" {
		return "", nil, ferry.E(op, ferry.Invalid, "the form must start with its csrf field")
	}
	tok, _ := io.ReadAll(io.LimitReader(part, 200))
	if subtle.ConstantTimeCompare(tok, []byte(csrf)) != 1 {
		return "", nil, ferry.E(op, ferry.Permission, "the form expired or did not come from Ferry; reload the page and try again")
	}
	for {
		fp, err := mr.NextPart()
		if err != nil {
			return "", nil, ferry.E(op, ferry.Invalid, "choose a file to send")
		}
		if fp.FormName() == "file" {
			if fp.FileName() == "" {
				return "", nil, ferry.E(op, ferry.Invalid, "choose a file to send")
			}
			return fp.FileName(), fp, nil
		}
	}
}
