package httpd

import (
	"crypto/subtle"
	"embed"
	"errors"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
)

// The browser side of the public listener: server-rendered pages with their
// own route table and wrapper (STYLE example 5). Every state change is a POST
// that must come from Ferry's own origin and carry the session's CSRF token;
// pages get a CSP with no inline script; the session lives in a __Host-
// cookie (Secure, HttpOnly, SameSite=Strict) whose secret only
// internal/auth can turn into a session.

//go:embed web/templates/*.html
var templateFS embed.FS

//go:embed web/static
var staticFS embed.FS

// pageCSP is the Content-Security-Policy of every page: scripts and styles
// from Ferry itself only, no inline script, no framing.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// pageData is what every page template gets. Page-specific fields are set
// by the handlers that need them.
type pageData struct {
	Title     string
	User      *ferry.Principal
	Org       string
	CSRF      string
	SessionID string
	Flash     string
	Error     string
	Scripts   []string // ES modules under /static/ to load

	Email    string
	Sessions []*ferry.Session
	Tokens   []*ferry.Token
	SSHKeys  []*ferry.SSHKey
	NewToken string
	Heading  string
	Message  string
	Data     any
}

// pages holds one parsed template set per page: layout.html, the page's
// file, then every "<page>-*.html" (which fill the page's {{block}}s).
type pages map[string]*template.Template

func loadPages() (pages, error) {
	sub, err := fs.Sub(templateFS, "web/templates")
	if err != nil {
		return nil, err
	}
	all, err := fs.Glob(sub, "*.html")
	if err != nil {
		return nil, err
	}
	out := pages{}
	for _, f := range all {
		name := strings.TrimSuffix(f, ".html")
		if name == "layout" || strings.Contains(name, "-") {
			continue
		}
		files := []string{"layout.html", f}
		extras, _ := fs.Glob(sub, name+"-*.html")
		files = append(files, extras...)
		t, err := template.New(f).ParseFS(sub, files...)
		if err != nil {
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

// webReq is the browser state of a request.
type webReq struct {
	secret string
	sess   *ferry.Session   // nil when not signed in
	p      *ferry.Principal // nil when not signed in
}

func (wr *webReq) data(title string) *pageData {
	d := &pageData{Title: title}
	if wr.sess != nil && wr.sess.Stage == ferry.SessionFull {
		d.User, d.SessionID = wr.p, wr.sess.ID
	}
	if wr.secret != "" {
		d.CSRF = auth.CSRFToken(wr.secret)
	}
	return d
}

type pageNeed int

const (
	anyone   pageNeed = iota // login pages: a session is read if present
	mfaStage                 // the second-factor pages: an MFA-stage session
	signedIn                 // everything else: a full session
)

type pageFunc func(w http.ResponseWriter, r *http.Request, wr *webReq) error

// page wraps a browser handler: session cookie, same-origin and CSRF checks
// for POSTs, the page CSP, redirects to sign-in, HTML errors.
func (h *public) page(need pageNeed, fn pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", pageCSP)
		wr := &webReq{}
		if c, err := r.Cookie(auth.SessionCookie); err == nil && c.Value != "" {
			sess, p, err := h.auth.Session(r.Context(), c.Value, remoteHost(r))
			switch {
			case err == nil:
				p.Protocol = "https"
				wr.secret, wr.sess, wr.p = c.Value, sess, p
			case ferry.KindOf(err) == ferry.Unauthenticated:
				clearSessionCookie(w)
			default:
				h.renderPage(w, r, wr, err)
				return
			}
		}
		if r.Method == http.MethodPost {
			if err := checkForm(w, r, wr.secret); err != nil {
				h.renderPage(w, r, wr, err)
				return
			}
		}
		switch {
		case need == signedIn && wr.sess == nil:
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.Path), http.StatusSeeOther)
			return
		case need == signedIn && wr.sess.Stage != ferry.SessionFull:
			http.Redirect(w, r, "/login/mfa", http.StatusSeeOther)
			return
		case need == mfaStage && (wr.sess == nil || wr.sess.Stage != ferry.SessionMFA):
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		if wr.p != nil {
			r = withPrincipal(r, wr.p)
		}
		if err := fn(w, r, wr); err != nil {
			h.renderPage(w, r, wr, err)
		}
	})
}

// checkForm guards a POSTed form of either listener's pages: it must come
// from Ferry's own origin, be at most 64 KiB, parse, and — when the browser
// has a session (secret is its cookie's value) — carry the session's CSRF
// token.
func checkForm(w http.ResponseWriter, r *http.Request, secret string) error {
	const op = "httpd.checkForm"
	if err := sameOrigin(r); err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return ferry.E(op, ferry.Invalid, "malformed form", err)
	}
	if secret != "" && subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(auth.CSRFToken(secret))) != 1 {
		return ferry.E(op, ferry.Permission, "the form expired or did not come from Ferry; reload the page and try again")
	}
	return nil
}

// sameOrigin refuses a state-changing browser request that another site
// could have sent: the Fetch metadata or Origin must name Ferry itself.
func sameOrigin(r *http.Request) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return nil
	case "":
		if o := r.Header.Get("Origin"); o == "https://"+r.Host {
			return nil
		}
	}
	return ferry.E("httpd.sameOrigin", ferry.Permission, "this form was not sent from Ferry's own pages")
}

func setSessionCookie(w http.ResponseWriter, secret string, s *ferry.Session) {
	http.SetCookie(w, &http.Cookie{Name: auth.SessionCookie, Value: secret, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(time.Until(s.Expires).Seconds())})
}

func clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: auth.SessionCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// show renders a page with status 200.
func (h *public) show(w http.ResponseWriter, name string, d *pageData) error {
	return h.showStatus(w, http.StatusOK, name, d)
}

func (h *public) showStatus(w http.ResponseWriter, status int, name string, d *pageData) error {
	return h.pages.execute(w, status, name, d)
}

// execute renders page name with data under status. The page is rendered
// whole before anything is written, so a template failure is an error page,
// not half a page.
func (ps pages) execute(w http.ResponseWriter, status int, name string, data any) error {
	t := ps[name]
	if t == nil {
		return ferry.E("httpd.show", ferry.Internal, "no page "+name)
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, name+".html", data); err != nil {
		return ferry.E("httpd.show", ferry.Internal, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, err := io.WriteString(w, b.String())
	return err
}

// pageError is what the pages of both listeners show for err: its status
// and the message a person may read. Failures on our side are logged once,
// with the request id the page quotes. If the answer had already begun (an
// export or a zip cut short), the connection is aborted instead.
func pageError(logger *slog.Logger, w http.ResponseWriter, r *http.Request, err error) (int, string) {
	kind := ferry.KindOf(err)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		kind, err = ferry.TooLarge, ferry.E("httpd", ferry.TooLarge, "the form is too large")
	}
	if kind == ferry.Other {
		kind = ferry.Internal
	}
	rid := w.Header().Get("X-Request-Id")
	msg := ferry.Message(err)
	if kind == ferry.Internal || kind == ferry.Integrity || kind == ferry.NoSpace || kind == ferry.Unavailable {
		logger.Error("page failed", "request_id", rid, "method", r.Method, "path", r.URL.Path, "kind", kind.String(), "err", err)
		if kind == ferry.Internal {
			msg = "Something went wrong on our side (request id " + rid + ")."
		}
	}
	if sw, ok := w.(*statusWriter); ok && sw.wrote {
		panic(http.ErrAbortHandler)
	}
	return statusOf(kind), msg
}

// renderPage shows an error as a page, with the status of its kind.
func (h *public) renderPage(w http.ResponseWriter, r *http.Request, wr *webReq, err error) {
	status, msg := pageError(h.logger, w, r, err)
	d := wr.data("Error")
	d.Heading, d.Message = http.StatusText(status), msg
	if serr := h.showStatus(w, status, "error", d); serr != nil {
		http.Error(w, msg, status)
	}
}

// browserRoutes is the route table of the web pages on the public listener.
// They are outside the API (and docs/openapi.yaml).
func (h *public) browserRoutes() []route {
	routes := []route{
		{"GET /{$}", h.page(signedIn, h.home)},
		{"GET /login", h.page(anyone, h.loginForm)},
		{"POST /login", h.page(anyone, h.login)},
		{"POST /logout", h.page(anyone, h.logout)},
		{"GET /account", h.page(signedIn, h.account)},
		{"POST /account/sessions/{id}/revoke", h.page(signedIn, h.revokeSession)},
		{"POST /account/tokens", h.page(signedIn, h.createToken)},
		{"POST /account/tokens/{id}/revoke", h.page(signedIn, h.revokeToken)},
		{"POST /account/sshkeys", h.page(signedIn, h.addSSHKey)},
		{"POST /account/sshkeys/{id}/delete", h.page(signedIn, h.removeSSHKey)},
		{"POST /account/password", h.page(signedIn, h.changePassword)},
		{"GET /static/{file}", http.HandlerFunc(h.static)},
	}
	// Second factors and passkeys (web_mfa.go), single sign-on (web_oidc.go).
	routes = append(routes, h.mfaRoutes()...)
	routes = append(routes, h.ssoRoutes()...)
	// Browse, download, upload and manage files (web_files.go).
	routes = append(routes, h.fileRoutes()...)
	// Inbox, outbox, compose and package pages (web_packages.go).
	routes = append(routes, h.packagePageRoutes()...)
	// The user's share links and folder watches (web_shares.go).
	routes = append(routes, h.shareWebRoutes()...)
	routes = append(routes, h.moveRoutes()...) // the folder chooser of "move" (web_move.go)
	// Email invitations' links (web_invite.go).
	routes = append(routes, h.inviteRoutes()...)
	return routes
}

func (h *public) static(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, err := staticFS.ReadFile("web/static/" + name)
	if err != nil || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	switch path.Ext(name) {
	case ".css":
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case ".js":
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	default:
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}

// home sends a signed-in user to their files (web_files.go).
func (h *public) home(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	http.Redirect(w, r, "/files/", http.StatusSeeOther)
	return nil
}

func (h *public) loginForm(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	if wr.sess != nil && wr.sess.Stage == ferry.SessionFull {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return nil
	}
	return h.show(w, "login", wr.data("Sign in"))
}

// safeNext returns a local path to go to after signing in.
func safeNext(v string) string {
	if !strings.HasPrefix(v, "/") || strings.HasPrefix(v, "//") || strings.Contains(v, "\\") {
		return "/"
	}
	return v
}

func (h *public) login(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	email, password := r.PostForm.Get("email"), r.PostForm.Get("password")
	remote := remoteHost(r)
	d := wr.data("Sign in")
	d.Email = email
	attempt := auth.Attempt{Account: email, Remote: remote, Protocol: "https"}
	if err := limited(w, h.cfg.Limiter, attempt); err != nil {
		d.Error = "Too many failed sign-ins. Try again later."
		return h.showStatus(w, http.StatusTooManyRequests, "login", d)
	}
	secret, sess, err := h.auth.Login(r.Context(), email, password, auth.Client{Remote: remote, UserAgent: r.UserAgent()})
	if err != nil || sess.Stage == ferry.SessionFull {
		// After the password alone, the address becomes familiar to the
		// account only once the second factor is given too.
		counted(h.cfg.Limiter, attempt, err)
	}
	if err != nil {
		if k := ferry.KindOf(err); k == ferry.Unauthenticated || k == ferry.Permission {
			d.Error = ferry.Message(err)
			return h.showStatus(w, statusOf(k), "login", d)
		}
		return err
	}
	if wr.sess != nil { // signing in again: the old session ends
		h.auth.Logout(r.Context(), wr.sess, wr.p)
	}
	setSessionCookie(w, secret, sess)
	if sess.Stage == ferry.SessionMFA {
		http.Redirect(w, r, "/login/mfa", http.StatusSeeOther)
		return nil
	}
	http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
	return nil
}

func (h *public) logout(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	if wr.sess != nil {
		if err := h.auth.Logout(r.Context(), wr.sess, wr.p); err != nil {
			return err
		}
	}
	clearSessionCookie(w)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}

func (h *public) account(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	return h.showAccount(w, r, wr, "")
}

func (h *public) showAccount(w http.ResponseWriter, r *http.Request, wr *webReq, newToken string) error {
	ctx := r.Context()
	d := wr.data("Account")
	var err error
	if d.Org, err = h.tr.OrgName(ctx, wr.p); err != nil {
		return err
	}
	if d.Sessions, err = h.auth.Sessions(ctx, wr.p); err != nil {
		return err
	}
	if d.Tokens, err = h.auth.Tokens(ctx, wr.p); err != nil {
		return err
	}
	if d.SSHKeys, err = h.auth.SSHKeys(ctx, wr.p); err != nil {
		return err
	}
	d.NewToken = newToken
	if d.Data, err = h.accountExtras(r, wr); err != nil {
		return err
	}
	return h.show(w, "account", d)
}

func (h *public) revokeSession(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	if err := h.auth.RevokeSession(r.Context(), wr.p, r.PathValue("id")); err != nil {
		return err
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
	return nil
}

func (h *public) createToken(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	scope, err := ferry.ParseScope(strings.Join(r.PostForm["scope"], ","))
	if err != nil {
		return err
	}
	days, err := strconv.Atoi(r.PostForm.Get("days"))
	if err != nil || days < 1 || days > 366 {
		return ferry.E("httpd.createToken", ferry.Invalid, "choose how long the token lasts")
	}
	tok, _, err := h.auth.CreateOwnToken(r.Context(), wr.p, r.PostForm.Get("name"), scope, time.Duration(days)*24*time.Hour)
	if err != nil {
		return err
	}
	// Shown once, on this response only.
	return h.showAccount(w, r, wr, tok)
}

func (h *public) revokeToken(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	if err := h.auth.RevokeOwnToken(r.Context(), wr.p, r.PathValue("id")); err != nil {
		return err
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
	return nil
}

func (h *public) addSSHKey(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	if _, err := h.auth.AddOwnSSHKey(r.Context(), wr.p, r.PostForm.Get("key")); err != nil {
		return err
	}
	http.Redirect(w, r, "/account#ssh-keys", http.StatusSeeOther)
	return nil
}

func (h *public) removeSSHKey(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	if err := h.auth.RemoveOwnSSHKey(r.Context(), wr.p, r.PathValue("id")); err != nil {
		return err
	}
	http.Redirect(w, r, "/account#ssh-keys", http.StatusSeeOther)
	return nil
}
