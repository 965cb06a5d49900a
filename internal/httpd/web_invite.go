package httpd

import (
	"net/http"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
)

// Email invitations: the single-use link /invite/{token} that an
// administrator's invitation mails (internal/admin InviteUser). Anyone may
// open it — the token is the credential — so both routes are on the reviewed
// unauthenticated list; unusable tokens count as failed sign-ins for the
// address (auth.Limiter), and every unusable link gets the same page.

func (h *public) inviteRoutes() []route {
	return []route{
		{"GET /invite/{token}", h.page(anyone, h.inviteForm)},
		{"POST /invite/{token}", h.page(anyone, h.acceptInvite)},
	}
}

type inviteData struct{ Token string }

// inviteAttempt counts against the address only: with an account name
// shared by every link, guesses from many addresses would lock real
// invitees out.
func inviteAttempt(r *http.Request) auth.Attempt {
	return auth.Attempt{Remote: remoteHost(r), Protocol: "https"}
}

// inviteInvalid shows the page of an unusable link, counting the failure.
func (h *public) inviteInvalid(w http.ResponseWriter, r *http.Request, wr *webReq, err error) error {
	if lim := h.cfg.Limiter; lim != nil && ferry.KindOf(err) == ferry.NotExist {
		lim.Failure(inviteAttempt(r))
	}
	d := wr.data("Invitation")
	d.Error = ferry.Message(err)
	return h.showStatus(w, statusOf(ferry.KindOf(err)), "invite", d)
}

func (h *public) inviteForm(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	if err := limited(w, h.cfg.Limiter, inviteAttempt(r)); err != nil {
		return err
	}
	token := r.PathValue("token")
	u, err := h.auth.Invite(r.Context(), token)
	if err != nil {
		if ferry.KindOf(err) == ferry.NotExist {
			return h.inviteInvalid(w, r, wr, err)
		}
		return err
	}
	d := wr.data("Invitation")
	d.Email, d.Data = u.Email, inviteData{Token: token}
	return h.show(w, "invite", d)
}

func (h *public) acceptInvite(w http.ResponseWriter, r *http.Request, wr *webReq) error {
	if err := limited(w, h.cfg.Limiter, inviteAttempt(r)); err != nil {
		return err
	}
	ctx := r.Context()
	token := r.PathValue("token")
	// again shows the form once more with a message; the link stays usable.
	again := func(msg string) error {
		u, err := h.auth.Invite(ctx, token)
		if err != nil {
			if ferry.KindOf(err) == ferry.NotExist {
				return h.inviteInvalid(w, r, wr, err)
			}
			return err
		}
		d := wr.data("Invitation")
		d.Email, d.Data, d.Error = u.Email, inviteData{Token: token}, msg
		return h.showStatus(w, http.StatusBadRequest, "invite", d)
	}
	password := r.PostForm.Get("password")
	if password != r.PostForm.Get("confirm") {
		return again("The two passwords differ.")
	}
	secret, sess, err := h.auth.AcceptInvite(ctx, token, password, auth.Client{Remote: remoteHost(r), UserAgent: r.UserAgent()})
	switch k := ferry.KindOf(err); {
	case err == nil:
	case k == ferry.NotExist:
		return h.inviteInvalid(w, r, wr, err)
	case k == ferry.Invalid:
		return again(ferry.Message(err))
	case k == ferry.Unauthenticated || k == ferry.Permission:
		// The password is set; the organisation's policy refuses this
		// sign-in (single sign-on, passkeys only, address ranges).
		d := wr.data("Invitation")
		d.Error = ferry.Message(err)
		return h.showStatus(w, statusOf(k), "invite", d)
	default:
		return err
	}
	if wr.sess != nil { // someone else was signed in in this browser
		h.auth.Logout(ctx, wr.sess, wr.p)
	}
	setSessionCookie(w, secret, sess)
	if sess.Stage == ferry.SessionMFA {
		http.Redirect(w, r, "/login/mfa", http.StatusSeeOther)
		return nil
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}
