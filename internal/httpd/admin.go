package httpd

import (
	"context"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"ferry.dev/ferry/internal/admin"
	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
)

// AdminConfig is what the admin plane needs to know.
type AdminConfig struct {
	Ready   func(context.Context) error
	Limiter *auth.Limiter // brute-force defence for bearer tokens (optional)
}

type adminPlane struct {
	errorRenderer
	cfg     AdminConfig
	admin   *admin.Service
	auth    *auth.Service
	metrics *Metrics
	socket  bool  // serving the admin socket: the caller is the local operator
	pages   pages // the admin UI's templates (admin_web.go); TCP listener only
}

// NewAdminHandler returns the handler of the admin TCP listener: health,
// metrics, first-administrator setup (loopback only), the admin API for
// server and organisation administrators' bearer tokens, and the admin UI
// under /admin/ (admin_web.go).
func NewAdminHandler(logger *slog.Logger, cfg AdminConfig, ad *admin.Service, au *auth.Service, m *Metrics) http.Handler {
	return newAdmin(logger, cfg, ad, au, m, false)
}

// NewAdminSocketHandler returns the handler of the admin control socket
// (DATA/admin.sock, mode 0600). Whoever can open the socket is the server's
// operator: file permissions are its authentication. Every call is audited
// with the operator as actor and the peer's uid.
func NewAdminSocketHandler(logger *slog.Logger, cfg AdminConfig, ad *admin.Service, au *auth.Service, m *Metrics) http.Handler {
	return newAdmin(logger, cfg, ad, au, m, true)
}

func newAdmin(logger *slog.Logger, cfg AdminConfig, ad *admin.Service, au *auth.Service, m *Metrics, socket bool) http.Handler {
	h := &adminPlane{errorRenderer: errorRenderer{logger: logger, metrics: m}, cfg: cfg, admin: ad, auth: au, metrics: m, socket: socket}
	if !socket {
		var err error
		if h.pages, err = loadAdminPages(); err != nil {
			// Embedded templates: a parse error is a build defect, which
			// the admin UI tests catch.
			panic("httpd: admin templates: " + err.Error())
		}
	}
	mux := http.NewServeMux()
	h.routes(mux)
	listener := "admin"
	if socket {
		listener = "admin-socket"
	}
	return common(listener, m, rejectDotSegments(h.errorRenderer, mux))
}

func (h *adminPlane) healthz(w http.ResponseWriter, r *http.Request) error {
	if err := h.cfg.Ready(r.Context()); err != nil {
		return ferry.E("httpd.healthz", ferry.Unavailable, "not ready", err)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
	return nil
}

// api authenticates an admin API call: the operator on the socket, a bearer
// token of an administrator on TCP.
func (h *adminPlane) api(fn handlerFunc) http.Handler {
	return h.wrap(func(w http.ResponseWriter, r *http.Request) error {
		if h.socket {
			return fn(w, withPrincipal(r, &ferry.Principal{Operator: true, Remote: "admin.sock", Protocol: "admin"}))
		}
		authz := r.Header.Values("Authorization")
		tok, ok := "", len(authz) == 1
		if ok {
			tok, ok = strings.CutPrefix(authz[0], "Bearer ")
		}
		if !ok || tok == "" || len(tok) > 512 {
			return ferry.E("httpd.adminAuth", ferry.Unauthenticated, "send Authorization: Bearer TOKEN")
		}
		p, err := bearer(w, r, h.auth, h.cfg.Limiter, tok)
		if err != nil {
			return err
		}
		p.Protocol = "admin"
		if !p.ServerAdmin && p.Role != ferry.RoleAdmin {
			return ferry.E("httpd.adminAuth", ferry.Permission, "administrators only")
		}
		return fn(w, withPrincipal(r, p))
	})
}

const jsonLimit = 64 << 10

type okJSON struct {
	OK bool   `json:"ok"`
	ID string `json:"id,omitempty"`
}

func (h *adminPlane) createOrg(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	o, err := h.admin.CreateOrg(r.Context(), principalFrom(r.Context()), req.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, okJSON{OK: true, ID: o.ID})
	return nil
}

func (h *adminPlane) createParty(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Org      string   `json:"org"`
		Name     string   `json:"name"`
		Contacts []string `json:"contacts"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	p, err := h.admin.CreateParty(r.Context(), principalFrom(r.Context()), req.Org, req.Name, req.Contacts)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, okJSON{OK: true, ID: p.ID})
	return nil
}

func (h *adminPlane) createUser(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Org      string `json:"org"`
		Email    string `json:"email"`
		Role     string `json:"role"`
		Party    string `json:"party"`
		Password string `json:"password"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	u, err := h.admin.CreateUser(r.Context(), principalFrom(r.Context()), admin.UserSpec{Org: req.Org, Email: req.Email, Role: req.Role, Party: req.Party, Password: req.Password})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, okJSON{OK: true, ID: u.ID})
	return nil
}

func (h *adminPlane) setRole(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Email string `json:"email"`
		Role  string `json:"role"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	role, err := ferry.ParseRole(req.Role)
	if err != nil {
		return err
	}
	if err := h.admin.SetRole(r.Context(), principalFrom(r.Context()), req.Email, role); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, okJSON{OK: true})
	return nil
}

func (h *adminPlane) disableUser(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Email string `json:"email"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	if err := h.admin.DisableUser(r.Context(), principalFrom(r.Context()), req.Email); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, okJSON{OK: true})
	return nil
}

func (h *adminPlane) createFolder(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Org   string `json:"org"`
		Path  string `json:"path"`
		Party string `json:"party"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	f, err := h.admin.CreateFolder(r.Context(), principalFrom(r.Context()), req.Org, req.Path, req.Party)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, okJSON{OK: true, ID: f.ID})
	return nil
}

func (h *adminPlane) grant(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Org   string `json:"org"`
		Email string `json:"email"`
		Path  string `json:"path"`
		Perms string `json:"perms"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	if err := h.admin.Grant(r.Context(), principalFrom(r.Context()), req.Org, req.Email, req.Path, req.Perms); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, okJSON{OK: true})
	return nil
}

func (h *adminPlane) createToken(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Email   string `json:"email"`
		Expires string `json:"expires"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	var ttl time.Duration
	if req.Expires != "" {
		var err error
		if ttl, err = time.ParseDuration(req.Expires); err != nil || ttl <= 0 {
			return ferry.Errorf("httpd.createToken", ferry.Invalid, "expires %q: want a positive duration such as 720h", req.Expires)
		}
	}
	tok, t, err := h.admin.CreateToken(r.Context(), principalFrom(r.Context()), req.Email, ttl)
	if err != nil {
		return err
	}
	resp := struct {
		Token   string     `json:"token"`
		ID      string     `json:"id"`
		Expires *time.Time `json:"expires,omitempty"`
	}{Token: tok, ID: t.ID}
	if !t.Expires.IsZero() {
		resp.Expires = &t.Expires
	}
	writeJSON(w, http.StatusCreated, resp)
	return nil
}

func (h *adminPlane) revokeToken(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		ID string `json:"id"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	if err := h.admin.RevokeToken(r.Context(), principalFrom(r.Context()), req.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, okJSON{OK: true})
	return nil
}

func (h *adminPlane) addSSHKey(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Email string `json:"email"`
		Key   string `json:"key"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	k, err := h.admin.AddSSHKey(r.Context(), principalFrom(r.Context()), req.Email, req.Key)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, struct {
		OK          bool   `json:"ok"`
		ID          string `json:"id"`
		Fingerprint string `json:"fingerprint"`
	}{true, k.ID, k.Fingerprint})
	return nil
}

func (h *adminPlane) hold(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Org  string `json:"org"`
		Path string `json:"path"`
		Hold bool   `json:"hold"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	if err := h.admin.SetHold(r.Context(), principalFrom(r.Context()), req.Org, req.Path, req.Hold); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, okJSON{OK: true})
	return nil
}

var setupPage = template.Must(template.New("setup").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ferry — first administrator</title></head>
<body>
<h1>Create the first administrator</h1>
{{if .Done}}<p>Done: {{.Email}} can now sign in. This setup link no longer works.</p>
{{else}}{{if .Error}}<p role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/setup">
<input type="hidden" name="code" value="{{.Code}}">
<p><label>Organisation <input name="org" required maxlength="100" value="{{.Org}}"></label></p>
<p><label>Email <input name="email" type="email" required value="{{.Email}}"></label></p>
<p><label>Password (12 characters or more) <input name="password" type="password" required minlength="12" autocomplete="new-password"></label></p>
<p><button type="submit">Create administrator</button></p>
</form>{{end}}
</body></html>
`))

type setupData struct {
	Code, Org, Email, Error string
	Done                    bool
}

func (h *adminPlane) setupForm(w http.ResponseWriter, r *http.Request) error {
	if h.socket || !isLoopbackRequest(r) {
		return ferry.E("httpd.setup", ferry.NotExist, "no such endpoint")
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	return setupPage.Execute(w, setupData{Code: r.URL.Query().Get("code")})
}

// setup creates the first administrator. The single-use code in the form is
// both the authorization and the CSRF token; requests from anywhere but
// loopback are refused.
func (h *adminPlane) setup(w http.ResponseWriter, r *http.Request) error {
	if h.socket || !isLoopbackRequest(r) {
		return ferry.E("httpd.setup", ferry.NotExist, "no such endpoint")
	}
	r.Body = http.MaxBytesReader(w, r.Body, jsonLimit)
	if err := r.ParseForm(); err != nil {
		return ferry.E("httpd.setup", ferry.Invalid, "malformed form", err)
	}
	d := setupData{Code: r.PostForm.Get("code"), Org: r.PostForm.Get("org"), Email: r.PostForm.Get("email")}
	_, err := h.admin.Setup(r.Context(), d.Code, remoteHost(r), d.Org, d.Email, r.PostForm.Get("password"))
	status := http.StatusOK
	switch k := ferry.KindOf(err); {
	case err == nil:
		d.Done = true
	case k == ferry.Invalid || k == ferry.Unauthenticated || k == ferry.Exist:
		d.Error, status = ferry.Message(err), statusOf(k)
	default:
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	return setupPage.Execute(w, d)
}
