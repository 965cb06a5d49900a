package httpd

import (
	"crypto/rand"
	"embed"
	"encoding/base64"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"ferry.dev/ferry/internal/admin"
	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
)

// The admin UI: server-rendered pages on the admin listener only (DESIGN
// invariant 5), under /admin/. It follows web.go: its own route table and
// page wrapper, a __Host- cookie (here __Host-ferry_admin) whose session
// must have been created on the admin plane, same-origin and CSRF checks on
// every POST, the page CSP with no inline script or style. Every change goes
// through internal/admin, which checks the principal and audits it.
// Organisation administrators see their own organisation; server
// administrators see every one.

//go:embed web/admin/*.html
var adminTemplateFS embed.FS

//go:embed web/admin/admin.css web/static/ferry.css
var adminStaticFS embed.FS

// adminData is what every admin page template gets.
type adminData struct {
	Title   string
	Section string // which nav entry is current
	User    *ferry.Principal
	CSRF    string
	Error   string
	Flash   string
	Email   string // the sign-in form's email
	Orgs    []*ferry.Org
	Org     *admin.OrgView // the organisation shown, if any
	Secret  string         // a password or token shown once
	Data    any
}

func adminFuncs() template.FuncMap {
	return template.FuncMap{
		"pathesc": url.PathEscape,
		"roles": func() []string {
			return []string{string(ferry.RoleUser), string(ferry.RoleExternal), string(ferry.RoleAdmin)}
		},
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		},
		"day":   func(t time.Time) string { return t.UTC().Format("2006-01-02") },
		"bytes": humanSize,
		"perm": func(v *admin.OrgView, userID, folderID string) string {
			for _, g := range v.Grants {
				if g.UserID == userID && g.FolderID == folderID {
					return g.Perms.String()
				}
			}
			return ""
		},
	}
}

// loadAdminPages parses admin/layout.html with each other page of
// web/admin.
func loadAdminPages() (pages, error) {
	sub, err := fs.Sub(adminTemplateFS, "web/admin")
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
		if name == "layout" || name == "charts" {
			continue
		}
		t, err := template.New(f).Funcs(adminFuncs()).ParseFS(sub, "layout.html", "charts.html", f)
		if err != nil {
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

// adminReq is the browser state of an admin UI request.
type adminReq struct {
	secret string
	sess   *ferry.Session
	p      *ferry.Principal
}

func (ar *adminReq) data(title, section string) *adminData {
	d := &adminData{Title: title, Section: section}
	if ar.sess != nil && ar.sess.Stage == ferry.SessionFull {
		d.User = ar.p
	}
	if ar.secret != "" {
		d.CSRF = auth.CSRFToken(ar.secret)
	}
	return d
}

type adminPageFunc func(w http.ResponseWriter, r *http.Request, ar *adminReq) error

// page wraps an admin UI handler: the admin session cookie (admin-plane
// sessions only), same-origin and CSRF checks on POSTs, the page CSP,
// redirects to sign-in, HTML errors.
func (h *adminPlane) page(need pageNeed, fn adminPageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", pageCSP)
		ar := &adminReq{}
		if c, err := r.Cookie(auth.AdminSessionCookie); err == nil && c.Value != "" {
			sess, p, err := h.auth.SessionOn(r.Context(), ferry.PlaneAdmin, c.Value, remoteHost(r))
			switch {
			case err == nil:
				p.Protocol = "admin"
				ar.secret, ar.sess, ar.p = c.Value, sess, p
			case ferry.KindOf(err) == ferry.Unauthenticated:
				clearAdminCookie(w)
			default:
				h.renderAdminPage(w, r, ar, err)
				return
			}
		}
		if r.Method == http.MethodPost {
			if err := checkForm(w, r, ar.secret); err != nil {
				h.renderAdminPage(w, r, ar, err)
				return
			}
		}
		switch {
		case need == signedIn && ar.sess == nil:
			http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
			return
		case need == signedIn && ar.sess.Stage != ferry.SessionFull:
			http.Redirect(w, r, "/admin/login/mfa", http.StatusSeeOther)
			return
		case need == mfaStage && (ar.sess == nil || ar.sess.Stage != ferry.SessionMFA):
			http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
			return
		}
		if ar.p != nil {
			r = withPrincipal(r, ar.p)
		}
		if err := fn(w, r, ar); err != nil {
			h.renderAdminPage(w, r, ar, err)
		}
	})
}

func setAdminCookie(w http.ResponseWriter, secret string, s *ferry.Session) {
	http.SetCookie(w, &http.Cookie{Name: auth.AdminSessionCookie, Value: secret, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(time.Until(s.Expires).Seconds())})
}

func clearAdminCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: auth.AdminSessionCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

func (h *adminPlane) show(w http.ResponseWriter, status int, name string, d *adminData) error {
	return h.pages.execute(w, status, name, d)
}

// renderAdminPage shows an error as a page, with the status of its kind.
func (h *adminPlane) renderAdminPage(w http.ResponseWriter, r *http.Request, ar *adminReq, err error) {
	status, msg := pageError(h.logger, w, r, err)
	d := ar.data("Error", "")
	d.Error = msg
	d.Data = http.StatusText(status)
	if serr := h.show(w, status, "error", d); serr != nil {
		http.Error(w, msg, status)
	}
}

// adminWebRoutes is the route table of the admin UI. Like the public
// listener's browserRoutes it is outside the API (and docs/openapi.yaml);
// none of its paths exists on the public listener.
func (h *adminPlane) adminWebRoutes() []route {
	routes := []route{
		{"GET /{$}", http.RedirectHandler("/admin/", http.StatusSeeOther)},
		{"GET /login", http.RedirectHandler("/admin/login", http.StatusSeeOther)},
		{"GET /admin/static/{file}", http.HandlerFunc(adminStatic)},
		{"GET /admin/login", h.page(anyone, h.adminLoginForm)},
		{"POST /admin/login", h.page(anyone, h.adminLogin)},
		{"GET /admin/login/mfa", h.page(mfaStage, h.adminMFAForm)},
		{"POST /admin/login/mfa", h.page(mfaStage, h.adminMFA)},
		{"POST /admin/logout", h.page(anyone, h.adminLogout)},
		{"GET /admin/{$}", h.page(signedIn, h.dashboard)},
		{"GET /admin/orgs", h.page(signedIn, h.orgsPage)},
		{"POST /admin/orgs", h.page(signedIn, h.orgCreate)},
		{"GET /admin/orgs/{org}/users", h.page(signedIn, h.usersPage)},
		{"POST /admin/orgs/{org}/users", h.page(signedIn, h.userCreate)},
		{"POST /admin/orgs/{org}/users/disable", h.page(signedIn, h.userDisable)},
		{"POST /admin/orgs/{org}/users/role", h.page(signedIn, h.userRole)},
		{"POST /admin/orgs/{org}/users/mfa-reset", h.page(signedIn, h.userMFAReset)},
		{"GET /admin/orgs/{org}/parties", h.page(signedIn, h.partiesPage)},
		{"POST /admin/orgs/{org}/parties", h.page(signedIn, h.partyCreate)},
		{"GET /admin/orgs/{org}/folders", h.page(signedIn, h.foldersPage)},
		{"POST /admin/orgs/{org}/folders", h.page(signedIn, h.folderCreate)},
		{"POST /admin/orgs/{org}/grants", h.page(signedIn, h.grantSet)},
		{"GET /admin/orgs/{org}/tokens", h.page(signedIn, h.tokensPage)},
		{"POST /admin/orgs/{org}/tokens", h.page(signedIn, h.tokenCreate)},
		{"POST /admin/orgs/{org}/tokens/revoke", h.page(signedIn, h.tokenRevoke)},
		{"GET /admin/orgs/{org}/policy", h.page(signedIn, h.policyPage)},
		{"POST /admin/orgs/{org}/policy", h.page(signedIn, h.policySet)},
		{"GET /admin/audit", h.page(signedIn, h.auditPage)},
		{"GET /admin/audit/export", h.page(signedIn, h.auditExport)},
	}
	// Further pages, each topic with its own table in its own file.
	routes = append(routes, h.adminUsersRoutes()...) // admin_users.go
	routes = append(routes, h.adminLoginRoutes()...) // admin_login_extra.go
	// Invitations by email (admin_invite.go).
	routes = append(routes, h.adminInviteRoutes()...)
	routes = append(routes, h.adminGuardRoutes()...)  // admin_guard.go
	routes = append(routes, h.adminImpactRoutes()...) // admin_impact.go
	routes = append(routes, h.adminShareRoutes()...)  // admin_shares.go
	return routes
}

func adminStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	var b []byte
	var err error
	switch name {
	case "admin.css":
		b, err = adminStaticFS.ReadFile("web/admin/admin.css")
	case "ferry.css":
		b, err = adminStaticFS.ReadFile("web/static/ferry.css")
	default:
		err = fs.ErrNotExist
	}
	if err != nil || path.Ext(name) != ".css" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}

// ---------------------------------------------------------------- sign-in

func (h *adminPlane) adminLoginForm(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	if ar.sess != nil && ar.sess.Stage == ferry.SessionFull {
		http.Redirect(w, r, "/admin/", http.StatusSeeOther)
		return nil
	}
	return h.show(w, http.StatusOK, "login", ar.data("Administrator sign-in", ""))
}

func (h *adminPlane) adminClient(r *http.Request) auth.Client {
	return auth.Client{Remote: remoteHost(r), UserAgent: r.UserAgent(), Plane: ferry.PlaneAdmin}
}

// adminLogin checks an administrator's password. The shared limiter counts
// failures per account and address, as on the public listener.
func (h *adminPlane) adminLogin(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	email, password := r.PostForm.Get("email"), r.PostForm.Get("password")
	d := ar.data("Administrator sign-in", "")
	d.Email = email
	attempt := auth.Attempt{Account: email, Remote: remoteHost(r), Protocol: "admin"}
	if err := limited(w, h.cfg.Limiter, attempt); err != nil {
		d.Error = "Too many failed sign-ins. Try again later."
		return h.show(w, http.StatusTooManyRequests, "login", d)
	}
	secret, sess, err := h.auth.Login(r.Context(), email, password, h.adminClient(r))
	if err != nil || sess.Stage == ferry.SessionFull {
		counted(h.cfg.Limiter, attempt, err)
	}
	if err != nil {
		if k := ferry.KindOf(err); k == ferry.Unauthenticated || k == ferry.Permission {
			d.Error = ferry.Message(err)
			return h.show(w, statusOf(k), "login", d)
		}
		return err
	}
	if ar.sess != nil {
		h.auth.Logout(r.Context(), ar.sess, ar.p)
	}
	setAdminCookie(w, secret, sess)
	if sess.Stage == ferry.SessionMFA {
		http.Redirect(w, r, "/admin/login/mfa", http.StatusSeeOther)
		return nil
	}
	http.Redirect(w, r, "/admin/", http.StatusSeeOther)
	return nil
}

// adminMFAData says whether the administrator has a factor to give.
type adminMFAData struct {
	MustEnrol bool // the organisation requires one and none is enrolled
	Passkeys  bool // a passkey may be given (admin_login_extra.go)
}

func (h *adminPlane) adminMFAForm(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	return h.showAdminMFA(w, r, ar, http.StatusOK, "")
}

func (h *adminPlane) showAdminMFA(w http.ResponseWriter, r *http.Request, ar *adminReq, status int, msg string) error {
	f, err := h.auth.Factors(r.Context(), ar.p.UserID)
	if err != nil {
		return err
	}
	d := ar.data("Second factor", "")
	passkeys := f.Passkeys > 0 && f.PasskeyPolicy != ferry.PasskeysOff
	d.Data = &adminMFAData{MustEnrol: !f.TOTP && !passkeys, Passkeys: passkeys}
	d.Error = msg
	return h.show(w, status, "mfa", d)
}

// adminMFA takes a TOTP or recovery code (a passkey: admin_login_extra.go).
// Enrolment is on the public listener's pages.
func (h *adminPlane) adminMFA(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	ctx := r.Context()
	a := auth.Attempt{Account: ar.p.Email, Remote: remoteHost(r), Protocol: "admin"}
	if err := limited(w, h.cfg.Limiter, a); err != nil {
		return h.showAdminMFA(w, r, ar, http.StatusTooManyRequests, "Too many failed sign-ins from your address. Try again later.")
	}
	method, err := h.auth.VerifySecondFactor(ctx, ar.sess.UserID, r.PostForm.Get("code"), remoteHost(r), "admin")
	if err != nil {
		counted(h.cfg.Limiter, a, err)
		if ferry.KindOf(err) != ferry.Unauthenticated {
			return err
		}
		return h.showAdminMFA(w, r, ar, http.StatusUnauthorized, ferry.Message(err))
	}
	counted(h.cfg.Limiter, a, nil)
	secret, sess, err := h.auth.CompleteMFA(ctx, ar.sess, method, h.adminClient(r))
	if err != nil {
		return err
	}
	setAdminCookie(w, secret, sess)
	http.Redirect(w, r, "/admin/", http.StatusSeeOther)
	return nil
}

func (h *adminPlane) adminLogout(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	if ar.sess != nil {
		if err := h.auth.Logout(r.Context(), ar.sess, ar.p); err != nil {
			return err
		}
	}
	clearAdminCookie(w)
	http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
	return nil
}

// ---------------------------------------------------------------- helpers

// orgData is the page data of a page about one organisation.
func (h *adminPlane) orgData(r *http.Request, ar *adminReq, title, section string) (*adminData, error) {
	d := ar.data(title, section)
	var err error
	if d.Orgs, err = h.admin.Orgs(r.Context(), ar.p); err != nil {
		return nil, err
	}
	if d.Org, err = h.admin.Org(r.Context(), ar.p, r.PathValue("org")); err != nil {
		return nil, err
	}
	return d, nil
}

// back redirects to the page the form was on (a path under /admin/org/ORG).
func back(w http.ResponseWriter, r *http.Request, page string) {
	http.Redirect(w, r, "/admin/orgs/"+url.PathEscape(r.PathValue("org"))+"/"+page, http.StatusSeeOther)
}

// formError shows the page again with a refusal the administrator can fix
// (Invalid, Exist, NotExist, Permission); anything else is an error page.
func (h *adminPlane) formError(w http.ResponseWriter, r *http.Request, ar *adminReq, page, title string, err error) error {
	switch ferry.KindOf(err) {
	case ferry.Invalid, ferry.Exist, ferry.NotExist, ferry.Permission, ferry.Conflict:
	default:
		return err
	}
	d, derr := h.orgData(r, ar, title, page)
	if derr != nil {
		return err
	}
	d.Error = ferry.Message(err)
	return h.show(w, statusOf(ferry.KindOf(err)), page, d)
}

// newPassword returns a random initial password to hand to a new user.
func newPassword() string {
	b := make([]byte, 15)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
