package httpd

import (
	_ "embed"
	"net/http"
	"strconv"
	"strings"
	"time"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
)

// Passkeys and single sign-on on the admin listener, as on the public one
// (web_mfa.go, web_oidc.go) but with everything of the admin plane's own:
// the relying party and the OpenID Connect redirect URI come from the admin
// listener's host, the session is created on the admin plane (auth.Client
// Plane) and lives in __Host-ferry_admin, and only organisation and server
// administrators get one (internal/auth refuses anyone else, audited).
//
// Browsers send cookies to every port of a host, so the ceremony and
// single-sign-on binding cookies have names of their own here: a ceremony
// or a single-sign-on login begun on one listener cannot be finished on the
// other (the ceremony also binds the origin, the provider the redirect URI).
// The admin listener never provisions an account at single sign-on.
//
// A passkey belongs to a host name (its relying party id), and the admin
// listener usually has its own (localhost, an internal name): an
// administrator adds passkeys for it on /admin/account, in an admin-plane
// session.

const (
	// adminCeremonyCookie holds the id of a WebAuthn ceremony begun on the
	// admin listener.
	adminCeremonyCookie = "__Host-ferry_admin_webauthn"
	// adminSSOCookie binds a single-sign-on login begun on the admin
	// listener to the browser.
	adminSSOCookie = "__Host-ferry_admin_sso"
	// adminSSOCallbackPath is the admin listener's redirect URI path,
	// registered at providers as https://ADMIN-HOST/admin/login/sso/callback.
	adminSSOCallbackPath = "/admin/login/sso/callback"
)

//go:embed web/static/passkey.js
var adminPasskeyJS []byte

// adminLoginRoutes is the route table of this file.
func (h *adminPlane) adminLoginRoutes() []route {
	return []route{
		{"GET /admin/static/passkey.js", http.HandlerFunc(adminPasskeyScript)},
		{"POST /admin/login/passkey/begin", h.page(anyone, h.adminPasskeyBegin)},
		{"POST /admin/login/passkey/finish", h.page(anyone, h.adminPasskeyFinish)},
		{"POST /admin/login/mfa/passkey/begin", h.page(mfaStage, h.adminMFAPasskeyBegin)},
		{"POST /admin/login/mfa/passkey/finish", h.page(mfaStage, h.adminMFAPasskeyFinish)},
		{"GET /admin/account", h.page(signedIn, h.adminAccount)},
		{"POST /admin/account/passkeys/begin", h.page(signedIn, h.adminPasskeyAddBegin)},
		{"POST /admin/account/passkeys/finish", h.page(signedIn, h.adminPasskeyAddFinish)},
		{"POST /admin/account/passkeys/{id}/remove", h.page(signedIn, h.adminPasskeyRemove)},
		{"GET /admin/login/sso", h.page(anyone, h.adminSSOStart)},
		{"GET " + adminSSOCallbackPath, h.page(anyone, h.adminSSOCallback)},
	}
}

func adminPasskeyScript(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(adminPasskeyJS)
}

// adminAttempt describes a sign-in attempt on the admin listener for the
// shared brute-force limiter.
func adminAttempt(r *http.Request, ar *adminReq) auth.Attempt {
	a := auth.Attempt{Remote: remoteHost(r), Protocol: "admin"}
	if ar.p != nil {
		a.Account = ar.p.Email
	}
	return a
}

func (h *adminPlane) adminLocked(w http.ResponseWriter, r *http.Request, ar *adminReq) bool {
	return limited(w, h.cfg.Limiter, adminAttempt(r, ar)) != nil
}

func (h *adminPlane) adminOutcome(r *http.Request, ar *adminReq, err error) {
	lim := h.cfg.Limiter
	switch {
	case lim == nil:
	case err == nil:
		lim.Success(adminAttempt(r, ar))
	case ferry.KindOf(err) == ferry.Unauthenticated:
		lim.Failure(adminAttempt(r, ar))
	}
}

var errAdminLocked = map[string]string{"error": "Too many failed sign-ins from your address. Try again later."}

func setAdminCeremonyCookie(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{Name: adminCeremonyCookie, Value: id, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(auth.CeremonyTTL.Seconds())})
}

// takeAdminCeremonyCookie returns the ceremony id and clears the cookie.
func takeAdminCeremonyCookie(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(adminCeremonyCookie)
	http.SetCookie(w, &http.Cookie{Name: adminCeremonyCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	if err != nil {
		return ""
	}
	return c.Value
}

func adminCeremonyBegin(w http.ResponseWriter, options []byte, id string, err error) error {
	if err != nil {
		return jsonError(w, err)
	}
	setAdminCeremonyCookie(w, id)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, err = w.Write(options)
	return err
}

// adminPasskeyBegin starts a passwordless sign-in with a passkey of the
// admin listener's relying party (its host name).
func (h *adminPlane) adminPasskeyBegin(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	rp, err := auth.RPFromHost(r.Host)
	if err != nil {
		return jsonError(w, err)
	}
	opts, id, err := h.auth.BeginPasskeyLogin(r.Context(), rp)
	return adminCeremonyBegin(w, opts, id, err)
}

func (h *adminPlane) adminPasskeyFinish(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	id := takeAdminCeremonyCookie(w, r)
	rp, err := auth.RPFromHost(r.Host)
	if err != nil {
		return jsonError(w, err)
	}
	if h.adminLocked(w, r, ar) {
		return jsonReply(w, http.StatusTooManyRequests, errAdminLocked)
	}
	secret, sess, err := h.auth.FinishPasskeyLogin(r.Context(), rp, id, []byte(r.PostForm.Get("credential")), h.adminClient(r))
	if err != nil {
		h.adminOutcome(r, ar, err)
		if ferry.KindOf(err) == ferry.Unauthenticated {
			// A valid passkey of someone who is not an administrator gets
			// the same answer as any refused passkey.
			err = auth.ErrPasskey
		}
		return jsonError(w, err)
	}
	if ar.sess != nil { // signing in again: the old session ends
		h.auth.Logout(r.Context(), ar.sess, ar.p)
	}
	setAdminCookie(w, secret, sess)
	return jsonReply(w, http.StatusOK, map[string]string{"redirect": "/admin/"})
}

// adminMFAPasskeyBegin starts a passkey assertion as the second factor of
// an admin-plane MFA-stage session.
func (h *adminPlane) adminMFAPasskeyBegin(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	rp, err := auth.RPFromHost(r.Host)
	if err != nil {
		return jsonError(w, err)
	}
	opts, id, err := h.auth.BeginPasskeyMFA(r.Context(), ar.sess, rp)
	return adminCeremonyBegin(w, opts, id, err)
}

func (h *adminPlane) adminMFAPasskeyFinish(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	id := takeAdminCeremonyCookie(w, r)
	rp, err := auth.RPFromHost(r.Host)
	if err != nil {
		return jsonError(w, err)
	}
	if h.adminLocked(w, r, ar) {
		return jsonReply(w, http.StatusTooManyRequests, errAdminLocked)
	}
	secret, sess, err := h.auth.FinishPasskeyMFA(r.Context(), ar.sess, rp, id, []byte(r.PostForm.Get("credential")), h.adminClient(r))
	if err != nil {
		h.adminOutcome(r, ar, err)
		return jsonError(w, err)
	}
	h.adminOutcome(r, ar, nil)
	setAdminCookie(w, secret, sess)
	return jsonReply(w, http.StatusOK, map[string]string{"redirect": "/admin/"})
}

// adminSSOData is the page data of the single-sign-on hand-over pages.
type adminSSOData struct {
	Heading, Message, URL string
}

// adminSSOStart starts a single-sign-on login to the organisation of
// ?email= (or ?org=) that ends on the admin listener. As on the public
// listener (web_oidc.go) it moves on to the provider with a Refresh header,
// which the form-action CSP allows.
func (h *adminPlane) adminSSOStart(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	q := r.URL.Query()
	email := strings.TrimSpace(q.Get("email"))
	o, err := h.auth.SSOOrg(r.Context(), q.Get("org"), email)
	if err != nil {
		if k := ferry.KindOf(err); k == ferry.NotExist || k == ferry.Invalid {
			d := ar.data("Administrator sign-in", "")
			d.Email, d.Error = email, ferry.Message(err)
			return h.show(w, statusOf(k), "login", d)
		}
		return err
	}
	authURL, browser, err := h.auth.BeginSSO(r.Context(), o, "https://"+r.Host+adminSSOCallbackPath, "/admin/", email)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: adminSSOCookie, Value: browser, Path: "/", Secure: true, HttpOnly: true,
		// Lax: the provider's redirect back is a cross-site navigation.
		SameSite: http.SameSiteLaxMode, MaxAge: int(auth.SSOLoginTTL / time.Second)})
	w.Header().Set("Refresh", "0; url="+authURL)
	w.Header().Set("Cache-Control", "no-store")
	d := ar.data("Single sign-on", "")
	d.Data = &adminSSOData{Heading: "Single sign-on", Message: "Taking you to your organisation's sign-in page…", URL: authURL}
	return h.show(w, http.StatusOK, "login-sso", d)
}

// adminSSOCallback finishes the login with the provider's answer. The
// session cookie is SameSite=Strict, which a browser does not send after a
// cross-site redirect chain, so the answer is a page that moves on to the
// dashboard rather than a redirect.
func (h *adminPlane) adminSSOCallback(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	remote := remoteHost(r)
	w.Header().Set("Cache-Control", "no-store")
	if lim := h.cfg.Limiter; lim != nil {
		if ok, wait := lim.Allow(auth.AddrKey(remote)); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
			return ferry.E("httpd.adminSSOCallback", ferry.Quota, "Too many failed sign-ins from your address. Try again later.")
		}
	}
	browser := ""
	if c, err := r.Cookie(adminSSOCookie); err == nil {
		browser = c.Value
	}
	http.SetCookie(w, &http.Cookie{Name: adminSSOCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	q := r.URL.Query()
	cb := auth.SSOCallback{State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error"), ErrorDescription: q.Get("error_description")}
	secret, sess, _, err := h.auth.FinishSSO(r.Context(), cb, browser, "https://"+r.Host+adminSSOCallbackPath, h.adminClient(r))
	if err == auth.ErrLoginFailed {
		// The provider vouched for them, but they are not an administrator
		// (or were disabled): no password was involved.
		err = ferry.E("httpd.adminSSOCallback", ferry.Permission, "Only organisation and server administrators may sign in here.")
	}
	if err != nil {
		if ferry.KindOf(err) == ferry.Unauthenticated && h.cfg.Limiter != nil {
			h.cfg.Limiter.Fail(auth.AddrKey(remote))
		}
		return err
	}
	if ar.sess != nil { // signing in again: the old session ends
		h.auth.Logout(r.Context(), ar.sess, ar.p)
	}
	setAdminCookie(w, secret, sess)
	w.Header().Set("Refresh", "0; url=/admin/")
	d := (&adminReq{}).data("Signed in", "")
	d.Data = &adminSSOData{Heading: "Signed in", Message: "Taking you to the administration…", URL: "/admin/"}
	return h.show(w, http.StatusOK, "login-sso", d)
}

// adminAccountData is the page data of /admin/account.
type adminAccountData struct {
	PasskeysOn bool
	Passkeys   []*auth.Passkey
	RPID       string // the host name the passkeys are for
}

// adminAccount shows the administrator's passkeys for the admin listener's
// host name, with the forms to add and remove them.
func (h *adminPlane) adminAccount(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	on, err := h.auth.PasskeysEnabled(r.Context(), ar.p.OrgID)
	if err != nil {
		return err
	}
	a := &adminAccountData{PasskeysOn: on}
	if rp, err := auth.RPFromHost(r.Host); err == nil {
		a.RPID = rp.ID
	}
	if on {
		if a.Passkeys, err = h.auth.Passkeys(r.Context(), ar.p); err != nil {
			return err
		}
	}
	d := ar.data("Your sign-in", "account")
	d.Data = a
	return h.show(w, http.StatusOK, "account", d)
}

func (h *adminPlane) adminPasskeyAddBegin(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	rp, err := auth.RPFromHost(r.Host)
	if err != nil {
		return jsonError(w, err)
	}
	opts, id, err := h.auth.BeginPasskeyRegistration(r.Context(), ar.p, ar.sess.ID, rp)
	return adminCeremonyBegin(w, opts, id, err)
}

func (h *adminPlane) adminPasskeyAddFinish(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	id := takeAdminCeremonyCookie(w, r)
	rp, err := auth.RPFromHost(r.Host)
	if err != nil {
		return jsonError(w, err)
	}
	// No recovery codes here: the admin pages cannot show them; the user
	// gets them with an enrolment on the public listener's account page.
	if _, _, err := h.auth.FinishPasskeyRegistration(r.Context(), ar.p, ar.sess.ID, rp, id, r.PostForm.Get("name"), []byte(r.PostForm.Get("credential")), false); err != nil {
		return jsonError(w, err)
	}
	return jsonReply(w, http.StatusOK, map[string]string{"redirect": "/admin/account"})
}

func (h *adminPlane) adminPasskeyRemove(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	if err := h.auth.RemovePasskey(r.Context(), ar.p, r.PathValue("id")); err != nil {
		return err
	}
	http.Redirect(w, r, "/admin/account", http.StatusSeeOther)
	return nil
}
