package admin

import (
	"context"
	"time"

	"ferry.dev/ferry/internal/ferry"
)

// Mailer queues the invitation mails; *mail.Outbox is one.
type Mailer interface {
	// Notify renders the templates of kind and queues the mail.
	Notify(ctx context.Context, kind, locale string, to []string, data any) error
	// Link returns the absolute URL of a path on the public listener.
	Link(path string) string
}

// SetMail gives the service the mailer of invitations (ferry serve passes
// the mail outbox).
func (s *Service) SetMail(m Mailer) { s.mailer = m }

// Invitation is the outcome of InviteUser.
type Invitation struct {
	User      *ferry.User
	Expires   time.Time // when the mailed link stops working
	Reinvited bool      // the user existed (invited before); the old link no longer works
	// MailOff: the server has no SMTP server configured, so the mail
	// waits in the outbox until one is.
	MailOff bool
}

// InviteUser invites a user by email: it creates the user (as CreateUser,
// without a password) unless they exist and have never set one, and mails
// them a single-use link to /invite/{token} on the public listener, where
// they choose a password. Inviting again replaces the earlier link. The link
// is never returned to the caller: only the mailbox owner gets it. Audited
// as "user.invite".
func (s *Service) InviteUser(ctx context.Context, p *ferry.Principal, spec UserSpec) (*Invitation, error) {
	const op = "admin.InviteUser"
	if s.mailer == nil {
		return nil, ferry.E(op, ferry.Unavailable, "mail is not configured on this server")
	}
	if spec.Password != "" {
		return nil, ferry.E(op, ferry.Invalid, "an invited user chooses their own password")
	}
	email, err := normalizeEmail(op, spec.Email)
	if err != nil {
		return nil, err
	}
	inv := &Invitation{}
	u, err := s.db.UserByEmail(ctx, email)
	switch {
	case ferry.KindOf(err) == ferry.NotExist:
		if u, err = s.CreateUser(ctx, p, spec); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		// Someone already invited: check the caller may administer them
		// (as CreateUser would for a new one), then replace the link.
		ev := s.event(p, "user.invite")
		ev.Detail = "email " + email
		o, oerr := s.org(ctx, op, p, spec.Org)
		if oerr == nil {
			u, err = s.user(ctx, op, p, email)
		}
		switch {
		case oerr != nil:
			err = oerr
		case err != nil:
		case u.OrgID != o.ID || u.PasswordHash != "":
			err = ferry.Errorf(op, ferry.Exist, "a user with email %s already exists", email)
		case u.Disabled:
			err = ferry.Errorf(op, ferry.Invalid, "the user %s is disabled; enable them first", email)
		}
		if err != nil {
			return nil, s.done(ctx, ev, err)
		}
		inv.Reinvited = true
	}
	inv.User = u
	if c, ok := s.mailer.(interface{ Configured() bool }); ok && !c.Configured() {
		inv.MailOff = true
	}
	ev := s.event(p, "user.invite")
	ev.OrgID, ev.Object = u.OrgID, u.ID
	ev.Detail = "email " + email + " role " + string(u.Role)
	err = func() error {
		token, expires, err := s.auth.CreateInvite(ctx, u.ID, p.UserID, 0)
		if err != nil {
			return err
		}
		inv.Expires = expires
		orgName := ""
		if o, err := s.db.OrgByID(ctx, u.OrgID); err == nil {
			orgName = o.Name
		}
		ev.Detail += "; link valid until " + expires.Format(time.RFC3339)
		if inv.Reinvited {
			ev.Detail += "; earlier link replaced"
		}
		return s.mailer.Notify(ctx, "invite.user", "en", []string{email}, map[string]any{
			"InvitedBy": p.Name(), "Org": orgName, "Email": email,
			"Link": s.mailer.Link("/invite/" + token), "Expires": expires.Format("2 January 2006 15:04 UTC"),
		})
	}()
	return inv, s.done(ctx, ev, err)
}
