package httpd

import (
	"net/http"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
)

// changePassword handles POST /account/password: the current password and
// a new one (twice), checked against the organisation's policy. A wrong
// current password counts with the limiter as a failed sign-in; on success
// the user's other sessions end.
func (h *public) changePassword(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	f := r.PostForm
	if f.Get("new") != f.Get("confirm") {
		return h.accountError(w, r, wr, ferry.E("httpd.changePassword", ferry.Invalid, "the two new passwords differ"))
	}
	a := auth.Attempt{Account: wr.p.Email, Remote: remoteHost(r), Protocol: "https"}
	if err := limited(w, h.cfg.Limiter, a); err != nil {
		return err
	}
	err := h.auth.ChangePassword(r.Context(), wr.p, f.Get("current"), f.Get("new"))
	if ferry.KindOf(err) == ferry.Unauthenticated && h.cfg.Limiter != nil {
		h.cfg.Limiter.Failure(a)
	}
	if k := ferry.KindOf(err); k == ferry.Invalid || k == ferry.Unauthenticated {
		return h.accountError(w, r, wr, err)
	} else if err != nil {
		return err
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
	return nil
}

// accountError shows the account page again with err in the password block
// (status of its kind).
func (h *public) accountError(w http.ResponseWriter, r *http.Request, wr *webReq, err error) error {
	ctx := r.Context()
	d := wr.data("Account")
	var e error
	if d.Org, e = h.tr.OrgName(ctx, wr.p); e != nil {
		return e
	}
	if d.Sessions, e = h.auth.Sessions(ctx, wr.p); e != nil {
		return e
	}
	if d.Tokens, e = h.auth.Tokens(ctx, wr.p); e != nil {
		return e
	}
	if d.Data, e = h.accountExtras(r, wr); e != nil {
		return e
	}
	d.Error = ferry.Message(err)
	return h.showStatus(w, statusOf(ferry.KindOf(err)), "account", d)
}
