package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/guard"
)

// TokenPrefix starts every Ferry API token, so secret scanners can find
// leaked ones.
const TokenPrefix = "ferry_"

// Service authenticates API tokens and mints them. It is the only code that
// creates credentials.
type Service struct {
	db     *db.DB
	log    *audit.Log
	now    func() time.Time
	rand   io.Reader
	logger *slog.Logger

	mu   sync.Mutex
	seen map[string]string // token id → last remote address audited

	guard *guard.Guard // frozen users are refused; sign-in alerts (SetGuard)

	mfa mfaConfig // second factors: see mfa.go
	sso ssoCache  // identity providers: see oidc.go
}

// New returns an authentication service.
func New(d *db.DB, log *audit.Log, now func() time.Time, rand io.Reader, logger *slog.Logger) *Service {
	return &Service{db: d, log: log, now: now, rand: rand, logger: logger, seen: map[string]string{}}
}

// SetGuard makes the service refuse the sessions and tokens of users the
// exfiltration guard froze, and report sign-ins and token uses to it.
func (s *Service) SetGuard(g *guard.Guard) { s.guard = g }

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// CreateToken mints a new API token for a user and returns the token string,
// which is shown once and never stored: only its SHA-256 is. The token is
// "ferry_" + 16 hex id + "_" + 43 characters of base64url secret (256 bits).
func (s *Service) CreateToken(ctx context.Context, userID string, ttl time.Duration) (tok string, t *ferry.Token, err error) {
	return s.createToken(ctx, userID, ttl, ferry.ScopeAll, "")
}

func (s *Service) createToken(ctx context.Context, userID string, ttl time.Duration, scope ferry.Scope, name string) (tok string, t *ferry.Token, err error) {
	var idb [8]byte
	secret := make([]byte, 32)
	if _, err := io.ReadFull(s.rand, idb[:]); err != nil {
		return "", nil, ferry.E("auth.CreateToken", ferry.Internal, err)
	}
	if _, err := io.ReadFull(s.rand, secret); err != nil {
		return "", nil, ferry.E("auth.CreateToken", ferry.Internal, err)
	}
	id := hex.EncodeToString(idb[:])
	sec := base64.RawURLEncoding.EncodeToString(secret)
	now := s.now().UTC()
	t = &ferry.Token{ID: id, UserID: userID, Hash: hashSecret(sec), Created: now, Scope: scope, Name: name}
	if ttl > 0 {
		t.Expires = now.Add(ttl)
	}
	if err := s.db.CreateToken(ctx, t); err != nil {
		return "", nil, err
	}
	return TokenPrefix + id + "_" + sec, t, nil
}

// ParseTokenID returns the id part of a token string, or "" if it is not
// one.
func ParseTokenID(tok string) string {
	rest, ok := strings.CutPrefix(tok, TokenPrefix)
	if !ok {
		return ""
	}
	id, _, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 16 {
		return ""
	}
	if _, err := hex.DecodeString(id); err != nil {
		return ""
	}
	return id
}

// Token authenticates a bearer token and returns its principal. Unknown,
// malformed, expired or revoked tokens and disabled users all get the same
// Unauthenticated error. The first use of a token from each remote address is
// audited as "token.use"; failures as "auth.token" denied.
func (s *Service) Token(ctx context.Context, tok, remote string) (*ferry.Principal, error) {
	const op = "auth.Token"
	deny := func(why string) (*ferry.Principal, error) {
		s.record(ctx, &ferry.Event{Action: "auth.token", Outcome: ferry.OutcomeDenied, Actor: "anonymous", Remote: remote, Token: ParseTokenID(tok), Detail: why})
		return nil, ferry.E(op, ferry.Unauthenticated, "invalid or expired token")
	}
	id := ParseTokenID(tok)
	if id == "" {
		return deny("malformed token")
	}
	secret := tok[len(TokenPrefix)+len(id)+1:]
	t, err := s.db.TokenByID(ctx, id)
	if ferry.KindOf(err) == ferry.NotExist {
		return deny("unknown token")
	} else if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(hashSecret(secret), t.Hash) != 1 {
		return deny("wrong secret")
	}
	now := s.now()
	switch {
	case t.Revoked:
		return deny("revoked token")
	case !t.Expires.IsZero() && !now.Before(t.Expires):
		return deny("expired token")
	}
	u, err := s.db.UserByID(ctx, t.UserID)
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return deny("user disabled")
	}
	if s.guard.UserFrozen(u.ID) {
		s.record(ctx, &ferry.Event{Action: "auth.token", Outcome: ferry.OutcomeDenied, Actor: u.Email, ActorID: u.ID, OrgID: u.OrgID, Remote: remote, Token: t.ID,
			Detail: "frozen by the guard"})
		return nil, ferry.E(op, ferry.Permission, ferry.Message(guard.ErrFrozen))
	}
	pol, err := s.db.Policy(ctx, u.OrgID)
	if err != nil {
		return nil, err
	}
	if !pol.AddrAllowed(remote) {
		s.record(ctx, &ferry.Event{Action: "auth.token", Outcome: ferry.OutcomeDenied, Actor: u.Email, ActorID: u.ID, OrgID: u.OrgID, Remote: remote, Token: t.ID,
			Detail: "address not in the organisation's allowed ranges"})
		return nil, ferry.E(op, ferry.Permission, "your organisation does not allow API access from this address")
	}
	p := &ferry.Principal{UserID: u.ID, Email: u.Email, OrgID: u.OrgID, Role: u.Role, ServerAdmin: u.ServerAdmin, TokenID: t.ID, Remote: remote, Scope: t.Scope}
	s.mu.Lock()
	first := s.seen[t.ID] != remote
	if first {
		if len(s.seen) > 100000 {
			clear(s.seen)
		}
		s.seen[t.ID] = remote
	}
	s.mu.Unlock()
	if first {
		s.guard.TokenUse(ctx, p, remote)
		if err := s.record(ctx, &ferry.Event{Action: "token.use", Outcome: ferry.OutcomeOK, Actor: u.Email, ActorID: u.ID, OrgID: u.OrgID, Token: t.ID, Remote: remote}); err != nil {
			return nil, err
		}
		if err := s.db.TouchToken(ctx, t.ID, now); err != nil {
			s.logger.Warn("record token use", "token", t.ID, "err", err)
		}
	}
	return p, nil
}

// NewSetupCode creates a single-use code that lets whoever holds it create the
// first server administrator within ttl. Only its hash is stored.
func (s *Service) NewSetupCode(ctx context.Context, ttl time.Duration) (string, error) {
	b := make([]byte, 24)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", ferry.E("auth.NewSetupCode", ferry.Internal, err)
	}
	code := base64.RawURLEncoding.EncodeToString(b)
	if err := s.db.AddSetupCode(ctx, hashSecret(code), s.now().Add(ttl)); err != nil {
		return "", err
	}
	return code, nil
}

// SetupCodeHash returns the stored form of a setup code.
func SetupCodeHash(code string) []byte { return hashSecret(code) }

// record appends ev to the audit log. A record must not be lost because
// the client went away (a brute-forcer that drops each connection at once
// would otherwise leave no trace): the append is detached from ctx's
// cancellation.
func (s *Service) record(ctx context.Context, ev *ferry.Event) error {
	err := s.log.Append(context.WithoutCancel(ctx), ev)
	if err != nil && s.logger != nil {
		s.logger.Error("audit append failed", "action", ev.Action, "err", err)
	}
	return err
}
