package httpd

import (
	"net/http"
	"time"

	"ferry.dev/ferry/internal/admin"
)

// Inviting users by email: the admin API call and the admin UI's page. Both
// go through internal/admin InviteUser, which creates the user without a
// password, mails them a single-use link to /invite/{token} on the public
// listener (web_invite.go) and audits "user.invite". The link itself is
// never shown to the administrator.

// adminInviteRoutes is the admin UI's route table of this file.
func (h *adminPlane) adminInviteRoutes() []route {
	return []route{
		{"GET /admin/orgs/{org}/users/invite", h.page(signedIn, h.invitePage)},
		{"POST /admin/orgs/{org}/users/invite", h.page(signedIn, h.inviteSend)},
	}
}

type inviteJSON struct {
	OK        bool      `json:"ok"`
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Expires   time.Time `json:"expires"`
	Reinvited bool      `json:"reinvited"`
	// MailConfigured is false when the server has no SMTP server: the
	// invitation waits in the outbox.
	MailConfigured bool `json:"mail_configured"`
}

// inviteUser is POST /admin/v1/users/invite {"org", "email", "role", "party"}.
func (h *adminPlane) inviteUser(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Org   string `json:"org"`
		Email string `json:"email"`
		Role  string `json:"role"`
		Party string `json:"party"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	inv, err := h.admin.InviteUser(r.Context(), principalFrom(r.Context()), admin.UserSpec{Org: req.Org, Email: req.Email, Role: req.Role, Party: req.Party})
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if inv.Reinvited {
		status = http.StatusOK
	}
	writeJSON(w, status, inviteJSON{OK: true, ID: inv.User.ID, Email: inv.User.Email, Expires: inv.Expires, Reinvited: inv.Reinvited, MailConfigured: !inv.MailOff})
	return nil
}

func (h *adminPlane) invitePage(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	d, err := h.orgData(r, ar, "Invite a user", "users")
	if err != nil {
		return err
	}
	return h.show(w, http.StatusOK, "admin-invite", d)
}

func (h *adminPlane) inviteSend(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	f := r.PostForm
	inv, err := h.admin.InviteUser(r.Context(), ar.p, admin.UserSpec{Org: r.PathValue("org"), Email: f.Get("email"), Role: f.Get("role"), Party: f.Get("party")})
	if err != nil {
		return h.formError(w, r, ar, "admin-invite", "Invite a user", err)
	}
	d, err := h.orgData(r, ar, "Invite a user", "users")
	if err != nil {
		return err
	}
	d.Flash = "Invitation mailed to " + inv.User.Email + "; the link works once, until " + inv.Expires.Format("2 Jan 2006 15:04 UTC") + "."
	if inv.Reinvited {
		d.Flash += " The earlier link no longer works."
	}
	if inv.MailOff {
		d.Flash = "Invitation for " + inv.User.Email + " queued: this server has no SMTP server configured (--smtp-url), so it is sent once one is."
	}
	return h.show(w, http.StatusOK, "admin-invite", d)
}
