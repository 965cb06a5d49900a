package httpd

import (
	"crypto/subtle"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/transfer"
)

// The share-link visitor's pages (docs/SHARES.md): a small route set of its
// own under /s/{token}, reachable without an account. Nothing here reaches a
// user or admin route; every request resolves the token again through
// transfer, which answers every unusable link (unknown, expired, revoked,
// used up, wrong address) with the same NotExist, shown as one page. Failed
// tokens and wrong passwords are rate-limited per address and per link
// (golang.org/x/time/rate), apart from the sign-in limiter.

// shareCookie holds the secret a visitor gets for giving a link's password.
const shareCookie = "__Host-ferry-share"

// Guest rate limits: each address may fail (unknown token, wrong password)
// about once every 6 s after a burst of 10; each link takes a wrong password
// about once a minute after a burst of 5.
var (
	guestAddrRate  = rate.Every(6 * time.Second)
	guestAddrBurst = 10
	guestLinkRate  = rate.Every(time.Minute)
	guestLinkBurst = 5
)

// guestLimits counts failures per address and per link.
type guestLimits struct {
	addr, link *limiterSet
}

func newGuestLimits() *guestLimits {
	return &guestLimits{addr: newLimiterSet(guestAddrRate, guestAddrBurst), link: newLimiterSet(guestLinkRate, guestLinkBurst)}
}

// blocked reports whether an address has no failures left.
func (g *guestLimits) blocked(addr string) bool { return g.addr.blocked(auth.AddrKey(addr)) }

// linkBlocked reports whether a link has no wrong passwords left.
func (g *guestLimits) linkBlocked(id string) bool { return g.link.blocked(id) }

// fail counts a failure of an address and, when linkID is set, of a link.
func (g *guestLimits) fail(addr, linkID string) {
	g.addr.allow(auth.AddrKey(addr))
	if linkID != "" {
		g.link.allow(linkID)
	}
}

// maxLimiters bounds the keys a limiterSet holds.
const maxLimiters = 10000

// limiterSet holds a token-bucket limiter per key (an address, a link),
// bounded in memory: when full it drops the limiters that have recovered,
// then arbitrary ones, rather than grow or forget every key at once.
type limiterSet struct {
	mu    sync.Mutex
	r     rate.Limit
	burst int
	m     map[string]*rate.Limiter
}

func newLimiterSet(r rate.Limit, burst int) *limiterSet {
	return &limiterSet{r: r, burst: burst, m: map[string]*rate.Limiter{}}
}

func (s *limiterSet) get(key string) *rate.Limiter {
	l := s.m[key]
	if l == nil {
		if len(s.m) >= maxLimiters {
			for k, v := range s.m { // drop the ones that recovered
				if v.Tokens() >= float64(s.burst) {
					delete(s.m, k)
				}
			}
			for k := range s.m {
				if len(s.m) < maxLimiters {
					break
				}
				delete(s.m, k)
			}
		}
		l = rate.NewLimiter(s.r, s.burst)
		s.m[key] = l
	}
	return l
}

// allow takes a token for key, reporting whether there was one.
func (s *limiterSet) allow(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.get(key).Allow()
}

// blocked reports whether key has no token left, without taking one.
func (s *limiterSet) blocked(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.get(key).Tokens() < 1
}

// shareGuest serves the visitor pages.
type shareGuest struct {
	h   *public
	lim *guestLimits
}

// sharePage is the page data of a visitor page.
type sharePage struct {
	Gone      bool // the uniform "not available" page
	Limited   bool
	Password  bool // show the password form
	DropBox   bool
	Folder    bool
	Name      string
	Base      string // /s/TOKEN
	Self      string // escaped path below the shared folder, "" at its top
	Crumbs    []crumb
	Rows      []fileRow
	File      *fileRow
	Expires   time.Time
	Downloads int
	Max       int
	Uploaded  bool
}

// Left is how many downloads the link has left.
func (sp *sharePage) Left() int { return max(sp.Max-sp.Downloads, 0) }

const browsePattern = "GET /s/{token}/browse/{path...}"

// shareGuestRoutes is the visitor's route table; these routes need no
// account (surface_test.go lists them as reviewed).
func (h *public) shareGuestRoutes() []route {
	g := &shareGuest{h: h, lim: newGuestLimits()}
	return []route{
		{"GET /s/{token}", g.wrap(g.show)},
		{"POST /s/{token}", g.wrap(g.unlock)},
		{browsePattern, g.wrap(g.show)},
		{"GET /s/{token}/download/{path...}", g.wrap(g.download)},
		{"POST /s/{token}/upload", g.wrap(g.upload)},
	}
}

type guestFunc func(w http.ResponseWriter, r *http.Request, v *transfer.ShareVisit, secret string) error

// wrap sets the page headers, applies the address limit, resolves the
// token and renders every failure as a page.
func (g *shareGuest) wrap(fn guestFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", pageCSP)
		w.Header().Set("Cache-Control", "no-store")
		remote := remoteHost(r)
		if g.lim.blocked(remote) {
			g.limited(w)
			return
		}
		secret := ""
		if c, err := r.Cookie(shareCookie); err == nil && len(c.Value) <= 64 {
			secret = c.Value
		}
		v, err := g.h.tr.VisitShare(r.Context(), r.PathValue("token"), remote, secret)
		if err == nil {
			err = fn(w, r, v, secret)
		}
		if err != nil {
			g.fail(w, r, remote, err)
		}
	})
}

func (g *shareGuest) limited(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "60")
	d := &pageData{Title: "Too many attempts", Data: &sharePage{Limited: true}}
	if err := g.h.showStatus(w, http.StatusTooManyRequests, "share", d); err != nil {
		http.Error(w, "too many attempts", http.StatusTooManyRequests)
	}
}

// fail renders an error: the uniform page for an unusable link (counted
// against the address), the error page for the rest.
func (g *shareGuest) fail(w http.ResponseWriter, r *http.Request, remote string, err error) {
	if ferry.KindOf(err) == ferry.NotExist && isShareGone(err) {
		g.lim.fail(remote, "")
		d := &pageData{Title: "Link not available", Data: &sharePage{Gone: true}}
		if serr := g.h.showStatus(w, http.StatusNotFound, "share", d); serr != nil {
			http.Error(w, "not found", http.StatusNotFound)
		}
		return
	}
	if sw, ok := w.(*statusWriter); ok && sw.wrote {
		panic(http.ErrAbortHandler)
	}
	g.h.renderPage(w, r, &webReq{}, err)
}

// isShareGone tells transfer's uniform answer about a link from a missing
// file inside a shared folder (an ordinary 404 page).
func isShareGone(err error) bool {
	var fe *ferry.Error
	for errors.As(err, &fe) {
		if strings.HasPrefix(fe.Msg, "this link does not exist") {
			return true
		}
		if fe.Err == nil {
			return false
		}
		err = fe.Err
	}
	return false
}

func (g *shareGuest) base(r *http.Request) string {
	return "/s/" + url.PathEscape(r.PathValue("token"))
}

func (g *shareGuest) page(v *transfer.ShareVisit, r *http.Request) *sharePage {
	sh := v.Share
	return &sharePage{DropBox: sh.DropBox, Folder: sh.Folder, Name: v.Name(), Base: g.base(r), Expires: sh.Expires, Downloads: sh.Downloads, Max: sh.MaxDownloads}
}

func (g *shareGuest) data(title string, secret string, sp *sharePage) *pageData {
	d := &pageData{Title: title, Data: sp}
	if secret != "" {
		d.CSRF = auth.CSRFToken(secret)
	}
	return d
}

// show renders the link's page: the password form, the file, the folder
// listing, or the drop box's upload form.
func (g *shareGuest) show(w http.ResponseWriter, r *http.Request, v *transfer.ShareVisit, secret string) error {
	ctx := r.Context()
	sp := g.page(v, r)
	if v.NeedPassword {
		// Nothing about the shared item before the password, not even
		// its name.
		sp = &sharePage{Password: true, Name: "Protected link", Base: sp.Base}
		return g.h.show(w, "share", g.data(sp.Name, "", sp))
	}
	d := g.data(sp.Name, secret, sp)
	browse := r.Pattern == browsePattern
	switch {
	case v.Share.DropBox:
		if browse {
			return ferry.E("httpd.share", ferry.Permission, "this link only accepts uploads")
		}
		sp.Uploaded = r.URL.Query().Get("ok") == "upload"
		return g.h.show(w, "share", d)
	case !v.Share.Folder:
		if browse {
			return ferry.E("httpd.share", ferry.NotExist, "this link shares one file")
		}
		f, err := g.h.tr.ShareStat(ctx, v, "")
		if err != nil {
			return err
		}
		row := fileRow{Name: f.Name, Size: humanSize(f.Size), Bytes: f.Size, Modified: f.Modified, Download: sp.Base + "/download/"}
		sp.File = &row
		return g.h.show(w, "share", d)
	}
	rel := strings.Trim(r.PathValue("path"), "/")
	entries, err := g.h.tr.ShareList(ctx, v, rel)
	if err != nil {
		return err
	}
	sp.Crumbs = []crumb{{Name: sp.Name, Href: sp.Base}}
	if rel != "" {
		sp.Self = escapePath("/" + rel)
		acc := ""
		for _, s := range strings.Split(rel, "/") {
			acc += "/" + s
			sp.Crumbs = append(sp.Crumbs, crumb{Name: s, Href: sp.Base + "/browse" + escapePath(acc)})
		}
	}
	sp.Crumbs[len(sp.Crumbs)-1].Current = true
	for _, e := range entries {
		full := escapePath(joinPath("/"+rel, e.Name))
		if rel == "" {
			full = escapePath("/" + e.Name)
		}
		row := fileRow{Name: e.Name, Folder: e.Folder, Modified: e.Modified, Bytes: e.Size}
		if e.Folder {
			row.Href = sp.Base + "/browse" + full
		} else {
			row.Download, row.Size = sp.Base+"/download"+full, humanSize(e.Size)
		}
		sp.Rows = append(sp.Rows, row)
	}
	sortRows(sp.Rows, "name", false)
	return g.h.show(w, "share", d)
}

// unlock takes the link's password: rate-limited per link and per address;
// the right one sets the visitor's cookie.
func (g *shareGuest) unlock(w http.ResponseWriter, r *http.Request, v *transfer.ShareVisit, secret string) error {
	if err := checkForm(w, r, ""); err != nil {
		return err
	}
	remote := remoteHost(r)
	sp := g.page(v, r)
	if !v.NeedPassword {
		http.Redirect(w, r, sp.Base, http.StatusSeeOther)
		return nil
	}
	if g.lim.linkBlocked(v.Share.ID) {
		g.limited(w)
		return nil
	}
	sec, err := g.h.tr.UnlockShare(r.Context(), v, remote, r.PostForm.Get("password"))
	if ferry.KindOf(err) == ferry.Unauthenticated {
		g.lim.fail(remote, v.Share.ID)
		sp.Password = true
		d := g.data(sp.Name, "", sp)
		d.Error = "Wrong password."
		return g.h.showStatus(w, http.StatusUnauthorized, "share", d)
	} else if err != nil {
		return err
	}
	maxAge := int(min(time.Until(v.Share.Expires), 12*time.Hour).Seconds())
	http.SetCookie(w, &http.Cookie{Name: shareCookie, Value: sec, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: maxAge})
	http.Redirect(w, r, sp.Base, http.StatusSeeOther)
	return nil
}

// download sends the shared file, or a file of the shared folder, as an
// attachment that is never sniffed or rendered; each download counts.
func (g *shareGuest) download(w http.ResponseWriter, r *http.Request, v *transfer.ShareVisit, secret string) error {
	if v.NeedPassword && r.Method == http.MethodGet {
		http.Redirect(w, r, g.base(r), http.StatusSeeOther)
		return nil
	}
	return serveCounted(w, r, func() (*transfer.Download, error) {
		return g.h.tr.ShareOpen(r.Context(), v, r.PathValue("path"))
	})
}

// upload takes one file posted to a drop box as multipart/form-data (the
// "csrf" field, when the visitor has a cookie, before the "file" part) and
// streams it to transfer without buffering it.
func (g *shareGuest) upload(w http.ResponseWriter, r *http.Request, v *transfer.ShareVisit, secret string) error {
	const op = "httpd.shareUpload"
	if err := sameOrigin(r); err != nil {
		return err
	}
	if v.NeedPassword {
		return ferry.E(op, ferry.Unauthenticated, "give the link's password first")
	}
	if !v.Share.DropBox {
		return ferry.E(op, ferry.Permission, "this link does not accept uploads")
	}
	if r.ContentLength > g.h.cfg.MaxUpload {
		return ferry.Errorf(op, ferry.TooLarge, "the upload exceeds the limit of %d bytes", g.h.cfg.MaxUpload)
	}
	r.Body = http.MaxBytesReader(w, r.Body, g.h.cfg.MaxUpload+64<<10)
	mr, err := r.MultipartReader()
	if err != nil {
		return ferry.E(op, ferry.Invalid, "send the file as multipart/form-data", err)
	}
	csrfOK := secret == ""
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return ferry.E(op, ferry.Invalid, "the form carried no file")
		}
		if err != nil {
			return ferry.E(op, ferry.Invalid, "malformed form", err)
		}
		switch part.FormName() {
		case "csrf":
			b, _ := io.ReadAll(io.LimitReader(part, 256))
			csrfOK = secret == "" || subtle.ConstantTimeCompare(b, []byte(auth.CSRFToken(secret))) == 1
		case "file":
			if !csrfOK {
				return ferry.E(op, ferry.Permission, "the form expired or did not come from Ferry; reload the page and try again")
			}
			name := part.FileName()
			if name == "" {
				return ferry.E(op, ferry.Invalid, "choose a file")
			}
			body := &idleReader{r: part, rc: http.NewResponseController(w), idle: g.h.cfg.idle()}
			f, err := g.h.tr.SharePut(r.Context(), v, name, body)
			if err != nil {
				return err
			}
			w.Header().Set("X-Ferry-Stored-As", mime.QEncoding.Encode("utf-8", f.Name))
			http.Redirect(w, r, g.base(r)+"?ok=upload", http.StatusSeeOther)
			return nil
		}
	}
}
