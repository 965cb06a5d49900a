package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"strings"
	"time"

	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/guard"
)

// Web sessions.
//
// A session is created only here: by a password login (Login), after a
// second factor (CompleteMFA), or by a passkey or single-sign-on login
// (StartSession). Its secret — 256 bits from crypto/rand, base64url in the
// __Host- cookie — is never stored: the database holds its SHA-256, and a
// separate random public id names it in listings and audit records. Nothing
// a client sends is ever written into a session: the row holds only what the
// server decided (user, stage, methods, times, address).

// SessionCookie is the name of the session cookie. The __Host- prefix makes
// browsers insist on Secure, Path=/ and no Domain.
const SessionCookie = "__Host-ferry_session"

// AdminSessionCookie is the name of the admin listener's session cookie.
// Browsers send cookies to every port of a host, so each listener's cookie
// reaches the other too: a session is accepted only on the plane it was
// created on (ferry.Session.Plane), whatever cookie carries it.
const AdminSessionCookie = "__Host-ferry_admin"

// ErrLoginFailed is the error of every refused password login, whatever the
// reason: unknown user, wrong password, no password, disabled user.
var ErrLoginFailed = ferry.E("auth.Login", ferry.Unauthenticated, "wrong email or password")

// errSession is the error of every unusable session cookie.
var errSession = ferry.E("auth.Session", ferry.Unauthenticated, "your session has ended; sign in again")

// Client describes where a login comes from.
type Client struct {
	Remote    string // host:port or address
	UserAgent string
	// Plane is the listener signing in: ferry.PlanePublic (or "") or
	// ferry.PlaneAdmin. The session is created for that plane only.
	Plane string
}

func (c Client) plane() string {
	if c.Plane == "" {
		return ferry.PlanePublic
	}
	return c.Plane
}

// protocol is how a plane's logins are recorded in audit events.
func planeProtocol(plane string) string {
	if plane == ferry.PlaneAdmin {
		return "admin"
	}
	return "https"
}

// mayUsePlane reports whether u may hold a session on plane: only
// organisation and server administrators may on the admin plane.
func mayUsePlane(u *ferry.User, plane string) bool {
	switch plane {
	case ferry.PlanePublic:
		return true
	case ferry.PlaneAdmin:
		return u.ServerAdmin || u.Role == ferry.RoleAdmin
	}
	return false
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Login checks an email and password. On success it returns a new session
// and the secret for its cookie: a full session, or one at stage
// ferry.SessionMFA when the user has a second factor enrolled or the
// organisation requires one (then only CompleteMFA and enrolment accept it).
//
// Unknown users cost the same time as known ones and every failure gets
// ErrLoginFailed; every outcome is audited as "auth.login". Brute-force
// limiting is the caller's job (Limiter), before Login is called.
//
// On the admin plane (c.Plane) only organisation and server administrators
// may sign in; anyone else gets ErrLoginFailed too, so the admin sign-in
// does not tell whether a non-administrator's password was right.
func (s *Service) Login(ctx context.Context, email, password string, c Client) (string, *ferry.Session, error) {
	email = normEmail(email)
	u, err := s.db.UserByEmail(ctx, email)
	if err != nil && ferry.KindOf(err) != ferry.NotExist {
		return "", nil, err
	}
	hash := dummyHash
	if u != nil && u.PasswordHash != "" {
		hash = u.PasswordHash
	}
	ok := len(password) <= 1024 && VerifyPassword(hash, password)
	switch {
	case u == nil:
		return "", nil, s.loginDeny(ctx, nil, email, c, "password", "unknown user")
	case u.PasswordHash == "":
		return "", nil, s.loginDeny(ctx, u, email, c, "password", "no password set")
	case !ok:
		return "", nil, s.loginDeny(ctx, u, email, c, "password", "wrong password")
	case u.Disabled:
		return "", nil, s.loginDeny(ctx, u, email, c, "password", "user disabled")
	case !mayUsePlane(u, c.plane()):
		return "", nil, s.loginDeny(ctx, u, email, c, "password", "not an administrator (admin listener)")
	}
	if s.guard.UserFrozen(u.ID) {
		// The password was right: say why, as every request would.
		s.loginDeny(ctx, u, email, c, "password", "frozen by the guard")
		return "", nil, ferry.E("auth.Login", ferry.Permission, ferry.Message(guard.ErrFrozen))
	}
	pol, err := s.db.Policy(ctx, u.OrgID)
	if err != nil {
		return "", nil, err
	}
	if !pol.AddrAllowed(c.Remote) {
		s.loginDeny(ctx, u, email, c, "password", "address not in the organisation's allowed ranges")
		return "", nil, ferry.E("auth.Login", ferry.Permission, "your organisation does not allow sign-in from this address")
	}
	if pol.SSORequired {
		s.loginDeny(ctx, u, email, c, "password", "organisation requires single sign-on")
		return "", nil, ferry.E("auth.Login", ferry.Permission, "your organisation signs in through single sign-on only")
	}
	if pol.Passkeys == ferry.PasskeysRequired {
		s.loginDeny(ctx, u, email, c, "password", "organisation requires passkeys")
		return "", nil, ferry.E("auth.Login", ferry.Permission, "your organisation signs in with passkeys only")
	}
	s.upgradeHash(ctx, u, password)
	stage := ferry.SessionFull
	has, err := s.hasSecondFactor(ctx, u.ID)
	if err != nil {
		return "", nil, err
	}
	if has || pol.MFARequired {
		stage = ferry.SessionMFA
	}
	return s.newSession(ctx, u, pol, stage, "password", c)
}

// upgradeHash rehashes a correct password whose hash has weaker parameters
// than the current ones. Failure is logged, not fatal: the login stands.
func (s *Service) upgradeHash(ctx context.Context, u *ferry.User, password string) {
	p, ok := hashParams(u.PasswordHash)
	if !ok || p == DefaultPasswordParams || p.Memory > DefaultPasswordParams.Memory && p.Time >= DefaultPasswordParams.Time {
		return
	}
	h, err := HashPassword(password, DefaultPasswordParams, s.rand)
	if err == nil {
		err = s.db.SetPasswordHash(ctx, u.ID, h)
	}
	if err != nil {
		s.logger.Warn("upgrade password hash", "user", u.Email, "err", err)
	}
}

// StartSession signs a user in after a login method other than a password
// (a passkey, single sign-on) has verified them: methods names it for the
// audit record. Disabled users and disallowed addresses are refused; on the
// admin plane (c.Plane) so is anyone who is not an organisation or server
// administrator.
func (s *Service) StartSession(ctx context.Context, userID, methods string, c Client) (string, *ferry.Session, error) {
	u, err := s.db.UserByID(ctx, userID)
	if err != nil {
		return "", nil, err
	}
	if u.Disabled {
		return "", nil, s.loginDeny(ctx, u, u.Email, c, methods, "user disabled")
	}
	if !mayUsePlane(u, c.plane()) {
		return "", nil, s.loginDeny(ctx, u, u.Email, c, methods, "not an administrator (admin listener)")
	}
	if s.guard.UserFrozen(u.ID) {
		s.loginDeny(ctx, u, u.Email, c, methods, "frozen by the guard")
		return "", nil, ferry.E("auth.StartSession", ferry.Permission, ferry.Message(guard.ErrFrozen))
	}
	pol, err := s.db.Policy(ctx, u.OrgID)
	if err != nil {
		return "", nil, err
	}
	if !pol.AddrAllowed(c.Remote) {
		s.loginDeny(ctx, u, u.Email, c, methods, "address not in the organisation's allowed ranges")
		return "", nil, ferry.E("auth.StartSession", ferry.Permission, "your organisation does not allow sign-in from this address")
	}
	return s.newSession(ctx, u, pol, ferry.SessionFull, methods, c)
}

// CompleteMFA ends an MFA-stage session whose second factor method (e.g.
// "totp", "recovery", "passkey") has just been verified, and returns a new
// full session in its place (the session id rotates at the privilege change).
// The new session is on the old one's plane, whatever c says.
func (s *Service) CompleteMFA(ctx context.Context, old *ferry.Session, method string, c Client) (string, *ferry.Session, error) {
	if old.Stage != ferry.SessionMFA {
		return "", nil, ferry.E("auth.CompleteMFA", ferry.Invalid, "the session is not waiting for a second factor")
	}
	c.Plane = old.Plane
	u, err := s.db.UserByID(ctx, old.UserID)
	if err != nil {
		return "", nil, err
	}
	pol, err := s.db.Policy(ctx, u.OrgID)
	if err != nil {
		return "", nil, err
	}
	if err := s.db.RevokeSession(ctx, old.ID); err != nil {
		return "", nil, err
	}
	return s.newSession(ctx, u, pol, ferry.SessionFull, old.Methods+"+"+method, c)
}

func (s *Service) newSession(ctx context.Context, u *ferry.User, pol *ferry.Policy, stage, methods string, c Client) (string, *ferry.Session, error) {
	const op = "auth.newSession"
	var idb [8]byte
	secret := make([]byte, 32)
	if _, err := io.ReadFull(s.rand, idb[:]); err != nil {
		return "", nil, ferry.E(op, ferry.Internal, err)
	}
	if _, err := io.ReadFull(s.rand, secret); err != nil {
		return "", nil, ferry.E(op, ferry.Internal, err)
	}
	sec := base64.RawURLEncoding.EncodeToString(secret)
	now := s.now().UTC()
	sess := &ferry.Session{
		ID: hex.EncodeToString(idb[:]), Hash: hashSecret(sec), UserID: u.ID, Stage: stage, Methods: methods,
		Created: now, LastSeen: now, Expires: now.Add(pol.SessionMax), Idle: pol.SessionIdle,
		Remote: clip(c.Remote, 100), UserAgent: clip(c.UserAgent, 300), Plane: c.plane(),
	}
	if stage == ferry.SessionMFA {
		// Ten minutes to give the second factor.
		sess.Expires, sess.Idle = now.Add(10*time.Minute), 10*time.Minute
	}
	if err := s.db.CreateSession(ctx, sess); err != nil {
		return "", nil, err
	}
	detail := methods
	if stage == ferry.SessionMFA {
		detail += "; second factor due"
	}
	if err := s.record(ctx, &ferry.Event{Action: "auth.login", Outcome: ferry.OutcomeOK, Actor: u.Email, ActorID: u.ID, OrgID: u.OrgID,
		Session: sess.ID, Remote: c.Remote, Protocol: planeProtocol(sess.Plane), Detail: detail}); err != nil {
		return "", nil, err
	}
	if stage == ferry.SessionFull {
		s.guard.SeenLogin(ctx, u, c.Remote, planeProtocol(sess.Plane)) // alerts on a new address range
	}
	return sec, sess, nil
}

func (s *Service) loginDeny(ctx context.Context, u *ferry.User, email string, c Client, method, why string) error {
	ev := &ferry.Event{Action: "auth.login", Outcome: ferry.OutcomeDenied, Actor: quoteName(email), Remote: c.Remote, Protocol: planeProtocol(c.plane()), Detail: method + ": " + why}
	if u != nil {
		ev.Actor, ev.ActorID, ev.OrgID = u.Email, u.ID, u.OrgID
	}
	if err := s.record(ctx, ev); err != nil {
		return err
	}
	return ErrLoginFailed
}

// Session authenticates a session cookie's secret and returns the session
// and its principal. A revoked, expired or idle session, a disabled user or an
// address outside the organisation's ranges all get the same Unauthenticated
// error. MFA-stage sessions are returned too, with a principal, so callers
// must check sess.Stage (Principal does not grant file access to them: see
// httpd). Only sessions of the public plane are accepted (SessionOn).
func (s *Service) Session(ctx context.Context, secret, remote string) (*ferry.Session, *ferry.Principal, error) {
	return s.SessionOn(ctx, ferry.PlanePublic, secret, remote)
}

// SessionOn is Session for the listener of the given plane: a session
// created on another plane gets the same Unauthenticated error as an unknown
// one, and on the admin plane so does a user who is no longer an
// administrator.
func (s *Service) SessionOn(ctx context.Context, plane, secret, remote string) (*ferry.Session, *ferry.Principal, error) {
	if secret == "" || len(secret) > 100 {
		return nil, nil, errSession
	}
	sess, err := s.db.SessionByHash(ctx, hashSecret(secret))
	if ferry.KindOf(err) == ferry.NotExist {
		return nil, nil, errSession
	} else if err != nil {
		return nil, nil, err
	}
	now := s.now()
	if sess.Plane != plane || sess.Revoked || !now.Before(sess.Expires) || sess.Idle > 0 && now.Sub(sess.LastSeen) > sess.Idle {
		return nil, nil, errSession
	}
	u, err := s.db.UserByID(ctx, sess.UserID)
	if err != nil {
		return nil, nil, err
	}
	if u.Disabled || !mayUsePlane(u, plane) {
		return nil, nil, errSession
	}
	if s.guard.UserFrozen(u.ID) {
		return nil, nil, ferry.E("auth.Session", ferry.Permission, ferry.Message(guard.ErrFrozen))
	}
	pol, err := s.db.Policy(ctx, u.OrgID)
	if err != nil {
		return nil, nil, err
	}
	if !pol.AddrAllowed(remote) || !withinPolicy(sess, pol, now) {
		return nil, nil, errSession
	}
	// The idle clock moves at most once a minute per session, so a busy
	// page does not write on every request.
	if now.Sub(sess.LastSeen) > time.Minute {
		if err := s.db.TouchSession(ctx, sess.ID, now); err != nil {
			s.logger.Warn("touch session", "session", sess.ID, "err", err)
		}
		sess.LastSeen = now
	}
	p := &ferry.Principal{UserID: u.ID, Email: u.Email, OrgID: u.OrgID, Role: u.Role, ServerAdmin: u.ServerAdmin, SessionID: sess.ID, Remote: remote}
	return sess, p, nil
}

// CSRFToken returns the anti-forgery token of the session whose secret is
// given: derived from the secret (which only the cookie holds), so it needs no
// storage and is useless without the cookie.
func CSRFToken(secret string) string {
	h := sha256.Sum256([]byte("ferry csrf v1\x00" + secret))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// Logout ends a session.
func (s *Service) Logout(ctx context.Context, sess *ferry.Session, p *ferry.Principal) error {
	if err := s.db.RevokeSession(ctx, sess.ID); err != nil {
		return err
	}
	return s.record(ctx, &ferry.Event{Action: "auth.logout", Outcome: ferry.OutcomeOK, Actor: p.Email, ActorID: p.UserID, OrgID: p.OrgID,
		Session: sess.ID, Remote: p.Remote, Protocol: planeProtocol(sess.Plane)})
}

// Sessions lists the principal's own active sessions.
func (s *Service) Sessions(ctx context.Context, p *ferry.Principal) ([]*ferry.Session, error) {
	all, err := s.db.SessionsOfUser(ctx, p.UserID, s.now())
	if err != nil {
		return nil, err
	}
	out := all[:0]
	now := s.now()
	for _, x := range all {
		if x.Idle == 0 || now.Sub(x.LastSeen) <= x.Idle {
			out = append(out, x)
		}
	}
	return out, nil
}

// RevokeSession ends one of the principal's own sessions by its public id.
// Another user's session is NotExist.
func (s *Service) RevokeSession(ctx context.Context, p *ferry.Principal, id string) error {
	sess, err := s.db.SessionByID(ctx, id)
	if err != nil || sess.UserID != p.UserID {
		return ferry.E("auth.RevokeSession", ferry.NotExist, "no such session")
	}
	if err := s.db.RevokeSession(ctx, id); err != nil {
		return err
	}
	return s.record(ctx, &ferry.Event{Action: "session.revoke", Outcome: ferry.OutcomeOK, Actor: p.Email, ActorID: p.UserID, OrgID: p.OrgID,
		Session: p.SessionID, Remote: p.Remote, Object: id})
}

// Tokens lists the principal's own API tokens that are not revoked.
func (s *Service) Tokens(ctx context.Context, p *ferry.Principal) ([]*ferry.Token, error) {
	return s.db.TokensOfUser(ctx, p.UserID)
}

// CreateOwnToken mints an API token for the principal themself, with a scope
// no wider than theirs, a name and an expiry (at most a year).
func (s *Service) CreateOwnToken(ctx context.Context, p *ferry.Principal, name string, scope ferry.Scope, ttl time.Duration) (string, *ferry.Token, error) {
	const op = "auth.CreateOwnToken"
	if scope == 0 {
		return "", nil, ferry.E(op, ferry.Invalid, "a token needs a scope: read, write or share")
	}
	if p.Scope != 0 && !p.Scope.Has(scope) {
		return "", nil, ferry.E(op, ferry.Permission, "a token cannot grant more than the token that creates it")
	}
	if ttl <= 0 || ttl > 366*24*time.Hour {
		return "", nil, ferry.E(op, ferry.Invalid, "a token's lifetime must be between a minute and a year")
	}
	name = strings.TrimSpace(name)
	if len(name) > 100 {
		return "", nil, ferry.E(op, ferry.Invalid, "the token name is longer than 100 characters")
	}
	tok, t, err := s.createToken(ctx, p.UserID, ttl, scope, name)
	if err != nil {
		return "", nil, err
	}
	if err := s.record(ctx, &ferry.Event{Action: "token.create", Outcome: ferry.OutcomeOK, Actor: p.Email, ActorID: p.UserID, OrgID: p.OrgID,
		Session: p.SessionID, Token: t.ID, Object: t.ID, Remote: p.Remote, Detail: "scope " + scope.String() + ", expires " + t.Expires.Format(time.RFC3339)}); err != nil {
		return "", nil, err
	}
	return tok, t, nil
}

// RevokeOwnToken revokes one of the principal's own tokens; another user's
// token is NotExist.
func (s *Service) RevokeOwnToken(ctx context.Context, p *ferry.Principal, id string) error {
	t, err := s.db.TokenByID(ctx, id)
	if err != nil || t.UserID != p.UserID {
		return ferry.E("auth.RevokeOwnToken", ferry.NotExist, "no such token")
	}
	if err := s.db.RevokeToken(ctx, id); err != nil {
		return err
	}
	return s.record(ctx, &ferry.Event{Action: "token.revoke", Outcome: ferry.OutcomeOK, Actor: p.Email, ActorID: p.UserID, OrgID: p.OrgID,
		Session: p.SessionID, Token: p.TokenID, Object: id, Remote: p.Remote})
}
