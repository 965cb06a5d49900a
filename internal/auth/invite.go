package auth

import (
	"context"
	"encoding/base64"
	"io"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
)

// Email invitations. An administrator creates a user without a usable
// password (internal/admin) and a single-use link is mailed to them; the
// link's token is 256 bits from crypto/rand and only its SHA-256 is stored.
// Opening the link lets the user choose a password (the organisation's
// policy applies) and signs them in. A user has at most one invitation:
// inviting again replaces the link. Every unusable link — unknown, used,
// replaced, expired, or of a disabled user — gets the same answer.

// InviteTTL is how long an invitation link works.
const InviteTTL = 72 * time.Hour

// errInvite is the answer to every unusable invitation link.
var errInvite = ferry.E("auth.Invite", ferry.NotExist, "this invitation link is not valid: it was used or replaced, or it has expired")

// CreateInvite makes a new invitation link token for a user, replacing any
// earlier one, valid for ttl (InviteTTL if 0). invitedBy is the inviting
// user's id. The token is returned once, to be mailed; it is not stored.
func (s *Service) CreateInvite(ctx context.Context, userID, invitedBy string, ttl time.Duration) (token string, expires time.Time, err error) {
	if ttl <= 0 {
		ttl = InviteTTL
	}
	b := make([]byte, 32)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", time.Time{}, ferry.E("auth.CreateInvite", ferry.Internal, err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	now := s.now().UTC()
	inv := &db.Invite{UserID: userID, Hash: hashSecret(token), InvitedBy: invitedBy, Created: now, Expires: now.Add(ttl)}
	if err := s.db.PutInvite(ctx, inv); err != nil {
		return "", time.Time{}, err
	}
	return token, inv.Expires, nil
}

// validInviteToken rejects tokens that cannot be ours before any lookup.
func validInviteToken(token string) bool {
	if len(token) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil
}

// Invite returns the user a usable invitation link is for (to show the
// address on the page that accepts it).
func (s *Service) Invite(ctx context.Context, token string) (*ferry.User, error) {
	u, _, err := s.invite(ctx, token)
	return u, err
}

func (s *Service) invite(ctx context.Context, token string) (*ferry.User, *db.Invite, error) {
	if !validInviteToken(token) {
		return nil, nil, errInvite
	}
	inv, err := s.db.InviteByHash(ctx, hashSecret(token), s.now())
	if ferry.KindOf(err) == ferry.NotExist {
		return nil, nil, errInvite
	} else if err != nil {
		return nil, nil, err
	}
	u, err := s.db.UserByID(ctx, inv.UserID)
	if ferry.KindOf(err) == ferry.NotExist || (err == nil && u.Disabled) {
		return nil, nil, errInvite
	} else if err != nil {
		return nil, nil, err
	}
	return u, inv, nil
}

// AcceptInvite uses an invitation link: it sets the user's password (which
// must pass the organisation's policy; a refused password leaves the link
// usable) and ends the link, then signs the user in on c's plane as a
// password login would (second factor, allowed addresses and the other
// policies apply). It is audited as "user.invite.accept"; an unusable link
// as a denied one.
func (s *Service) AcceptInvite(ctx context.Context, token, password string, c Client) (string, *ferry.Session, error) {
	const op = "auth.AcceptInvite"
	ev := &ferry.Event{Action: "user.invite.accept", Outcome: ferry.OutcomeOK, Remote: c.Remote, Protocol: planeProtocol(c.plane())}
	u, _, err := s.invite(ctx, token)
	if err != nil {
		if ferry.KindOf(err) == ferry.NotExist {
			ev.Outcome, ev.Detail = ferry.OutcomeDenied, "unusable invitation link"
			if aerr := s.record(ctx, ev); aerr != nil {
				return "", nil, aerr
			}
		}
		return "", nil, err
	}
	ev.Actor, ev.ActorID, ev.OrgID, ev.Object = u.Email, u.ID, u.OrgID, u.ID
	if len(password) > MaxPasswordLen {
		return "", nil, ferry.E(op, ferry.Invalid, "password is too long")
	}
	if err := s.CheckNewPassword(ctx, u.OrgID, u.Email, password); err != nil {
		return "", nil, err
	}
	h, err := HashPassword(password, DefaultPasswordParams, s.rand)
	if err != nil {
		return "", nil, err
	}
	if err := s.db.ConsumeInvite(ctx, hashSecret(token), s.now(), u.ID, h); ferry.KindOf(err) == ferry.NotExist {
		return "", nil, errInvite // used by a concurrent request
	} else if err != nil {
		return "", nil, err
	}
	if err := s.record(ctx, ev); err != nil {
		return "", nil, err
	}
	return s.Login(ctx, u.Email, password, c)
}
