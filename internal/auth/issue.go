package auth

import (
	"context"
	"strings"
	"time"

	"ferry.dev/ferry/internal/ferry"
)

// The token endpoint: an API token for an email and password (and a second
// factor when one is due), for scripts and the CLI that have no browser.

// ErrSecondFactorRequired is the answer of the token endpoint to a right
// password when the user has a second factor enrolled or the organisation
// requires one, and no code was sent. Only the holder of the password sees
// it.
var ErrSecondFactorRequired = ferry.E("auth.IssueToken", ferry.Unauthenticated, "second factor required: send the code from your authenticator app as totp")

// TokenRequest is what the token endpoint is given.
type TokenRequest struct {
	Email    string
	Password string
	TOTP     string // a TOTP or recovery code; required when a second factor is due
	Name     string
	Scope    ferry.Scope
	TTL      time.Duration
}

// IssueToken checks an email and password like Login and, on success,
// returns a new API token of the requested scope, name and lifetime (at most
// a year). Unknown users, wrong passwords, users without a password and
// disabled users all get ErrLoginFailed after the same work (one argon2id
// verification and one audit record). When the user has a second factor or
// the organisation requires one, the request must carry a code (else
// ErrSecondFactorRequired; a wrong code is ErrSecondFactor). The
// organisation's allowed ranges, single-sign-on and passkey-only rules apply
// as at the web login. Every outcome is audited ("auth.login" with the
// method, "token.create"). Brute-force limiting is the caller's job: count
// ErrLoginFailed and ErrSecondFactor as failures.
func (s *Service) IssueToken(ctx context.Context, req TokenRequest, c Client) (string, *ferry.Token, error) {
	const op = "auth.IssueToken"
	if req.Scope == 0 {
		return "", nil, ferry.E(op, ferry.Invalid, "a token needs a scope: read, write or share")
	}
	if req.TTL < time.Minute || req.TTL > 366*24*time.Hour {
		return "", nil, ferry.E(op, ferry.Invalid, "expires_in must be between 60 seconds and a year")
	}
	name := strings.TrimSpace(req.Name)
	if len(name) > 100 {
		return "", nil, ferry.E(op, ferry.Invalid, "the token name is longer than 100 characters")
	}
	email := normEmail(req.Email)
	u, err := s.db.UserByEmail(ctx, email)
	if err != nil && ferry.KindOf(err) != ferry.NotExist {
		return "", nil, err
	}
	hash := dummyHash
	if u != nil && u.PasswordHash != "" {
		hash = u.PasswordHash
	}
	ok := len(req.Password) <= MaxPasswordLen && VerifyPassword(hash, req.Password)
	const method = "token endpoint: password"
	switch {
	case u == nil:
		return "", nil, s.loginDeny(ctx, nil, email, c, method, "unknown user")
	case u.PasswordHash == "":
		return "", nil, s.loginDeny(ctx, u, email, c, method, "no password set")
	case !ok:
		return "", nil, s.loginDeny(ctx, u, email, c, method, "wrong password")
	case u.Disabled:
		return "", nil, s.loginDeny(ctx, u, email, c, method, "user disabled")
	}
	pol, err := s.db.Policy(ctx, u.OrgID)
	if err != nil {
		return "", nil, err
	}
	refuse := func(why, msg string) (string, *ferry.Token, error) {
		if err := s.loginDeny(ctx, u, email, c, method, why); err != ErrLoginFailed {
			return "", nil, err
		}
		return "", nil, ferry.E(op, ferry.Permission, msg)
	}
	switch {
	case !pol.AddrAllowed(c.Remote):
		return refuse("address not in the organisation's allowed ranges", "your organisation does not allow sign-in from this address")
	case pol.SSORequired:
		return refuse("organisation requires single sign-on", "your organisation signs in through single sign-on only")
	case pol.Passkeys == ferry.PasskeysRequired:
		return refuse("organisation requires passkeys", "your organisation signs in with passkeys only")
	}
	s.upgradeHash(ctx, u, req.Password)
	methods := "password"
	has, err := s.hasSecondFactor(ctx, u.ID)
	if err != nil {
		return "", nil, err
	}
	if has || pol.MFARequired {
		if strings.TrimSpace(req.TOTP) == "" {
			if err := s.loginDeny(ctx, u, email, c, method, "second factor required"); err != ErrLoginFailed {
				return "", nil, err
			}
			return "", nil, ErrSecondFactorRequired
		}
		m, err := s.checkSecondFactor(ctx, u, req.TOTP, c.Remote, "https")
		if err != nil {
			return "", nil, err
		}
		methods += "+" + m
	}
	tok, t, err := s.createToken(ctx, u.ID, req.TTL, req.Scope, name)
	if err != nil {
		return "", nil, err
	}
	if err := s.record(ctx, &ferry.Event{Action: "auth.login", Outcome: ferry.OutcomeOK, Actor: u.Email, ActorID: u.ID, OrgID: u.OrgID,
		Token: t.ID, Remote: c.Remote, Protocol: "https", Detail: "token endpoint: " + methods}); err != nil {
		return "", nil, err
	}
	if err := s.record(ctx, &ferry.Event{Action: "token.create", Outcome: ferry.OutcomeOK, Actor: u.Email, ActorID: u.ID, OrgID: u.OrgID,
		Token: t.ID, Object: t.ID, Remote: c.Remote, Protocol: "https",
		Detail: "scope " + req.Scope.String() + ", expires " + t.Expires.Format(time.RFC3339) + ", by the token endpoint"}); err != nil {
		return "", nil, err
	}
	return tok, t, nil
}
