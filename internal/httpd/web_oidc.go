package httpd

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
)

// Single sign-on (OpenID Connect) in the browser. /login/sso starts a login
// to an organisation named by ?org= or found from ?email=; the identity
// provider sends the browser back to /login/sso/callback. internal/auth does
// the protocol; this file moves the browser and its cookies.
//
// Two browser rules shape it. The page CSP says form-action 'self', which
// browsers also apply to the redirects that follow a form submission, so
// /login/sso answers with a page that moves on by a Refresh header (not a
// 303) to the provider. And the session cookie is SameSite=Strict, which a
// browser does not send on a navigation that a cross-site redirect chain
// started, so the callback answers with a page that moves on to Ferry
// itself, instead of redirecting.

// ssoCallbackPath is Ferry's redirect URI path, registered at providers as
// https://HOST/login/sso/callback.
const ssoCallbackPath = "/login/sso/callback"

// ssoRoutes is the route table of single sign-on (OpenID Connect).
func (h *public) ssoRoutes() []route {
	return []route{
		{"GET /login/sso", h.page(anyone, h.ssoStart)},
		{"GET " + ssoCallbackPath, h.page(anyone, h.ssoCallback)},
	}
}

func ssoCallbackURL(r *http.Request) string { return "https://" + r.Host + ssoCallbackPath }

func (h *public) ssoStart(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	q := r.URL.Query()
	email := strings.TrimSpace(q.Get("email"))
	o, err := h.auth.SSOOrg(r.Context(), q.Get("org"), email)
	if err != nil {
		if k := ferry.KindOf(err); k == ferry.NotExist || k == ferry.Invalid {
			d := wr.data("Sign in")
			d.Email, d.Error = email, ferry.Message(err)
			return h.showStatus(w, statusOf(k), "login", d)
		}
		return err
	}
	next := safeNext(q.Get("next"))
	if strings.ContainsFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		next = "/"
	}
	authURL, browser, err := h.auth.BeginSSO(r.Context(), o, ssoCallbackURL(r), next, email)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: auth.SSOCookie, Value: browser, Path: "/", Secure: true, HttpOnly: true,
		// Lax: the provider's redirect back is a cross-site navigation.
		SameSite: http.SameSiteLaxMode, MaxAge: int(auth.SSOLoginTTL / time.Second)})
	w.Header().Set("Refresh", "0; url="+authURL)
	w.Header().Set("Cache-Control", "no-store")
	d := wr.data("Single sign-on")
	d.Data = authURL
	return h.show(w, "ssoredirect", d)
}

func (h *public) ssoCallback(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	remote := remoteHost(r)
	w.Header().Set("Cache-Control", "no-store")
	if lim := h.cfg.Limiter; lim != nil {
		if ok, wait := lim.Allow(auth.AddrKey(remote)); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
			return ferry.E("httpd.ssoCallback", ferry.Quota, "Too many failed sign-ins from your address. Try again later.")
		}
	}
	browser := ""
	if c, err := r.Cookie(auth.SSOCookie); err == nil {
		browser = c.Value
	}
	// The binding cookie has served its purpose, whatever happens next.
	http.SetCookie(w, &http.Cookie{Name: auth.SSOCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	q := r.URL.Query()
	cb := auth.SSOCallback{State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error"), ErrorDescription: q.Get("error_description")}
	secret, sess, next, err := h.auth.FinishSSO(r.Context(), cb, browser, ssoCallbackURL(r), auth.Client{Remote: remote, UserAgent: r.UserAgent()})
	if err != nil {
		if ferry.KindOf(err) == ferry.Unauthenticated && h.cfg.Limiter != nil {
			h.cfg.Limiter.Fail(auth.AddrKey(remote))
		}
		return err
	}
	if wr.sess != nil { // signing in again: the old session ends
		h.auth.Logout(r.Context(), wr.sess, wr.p)
	}
	setSessionCookie(w, secret, sess)
	next = safeNext(next)
	w.Header().Set("Refresh", "0; url="+next)
	d := (&webReq{}).data("Signed in")
	d.Data = next
	return h.show(w, "ssodone", d)
}
