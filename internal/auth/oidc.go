package auth

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/keys"
	"ferry.dev/ferry/internal/outbound"
)

// Single sign-on through OpenID Connect.
//
// An organisation configures one identity provider (issuer, client id,
// client secret, email domains, provisioning). A login is the authorization
// code flow with PKCE (S256), a state and a nonce. Everything the callback
// needs is kept server-side in a single-use row keyed by the state's SHA-256
// and bound to the browser by a short-lived cookie whose hash the row holds;
// nothing the browser or the provider sends is written into a session. The
// ID token is verified with go-oidc (signature from the provider's published
// keys, issuer, audience, expiry), then its nonce, then email_verified. The
// user is matched by email within the organisation, or created when the
// organisation allows it. Every refusal is audited as a denied auth.login
// with the detail "oidc: why".
//
// The client secret is stored sealed (AES-256-GCM) under a random key that
// the organisation's KEK wraps; see SetKEKs.

// SSOCookie is the name of the cookie binding a login in progress to the
// browser that started it.
const SSOCookie = "__Host-ferry_sso"

// SSOLoginTTL is how long a single-sign-on login may take, from Ferry's
// redirect to the provider's answer.
const SSOLoginTTL = 10 * time.Minute

// The provisioning modes of single sign-on.
const (
	ProvisionOff      = "off"      // unknown users are refused
	ProvisionUser     = "user"     // unknown users become internal users
	ProvisionExternal = "external" // unknown users become external users of a party
)

// ssoHTTPTimeout bounds each request to an identity provider.
const ssoHTTPTimeout = 10 * time.Second

// SSOSpec is a new single-sign-on configuration of an organisation.
type SSOSpec struct {
	OrgID        string
	Issuer       string
	ClientID     string
	ClientSecret string
	Domains      []string // email domains; required when provisioning
	Provision    string   // ProvisionOff, ProvisionUser or ProvisionExternal
	PartyID      string   // the party of provisioned external users
	Enabled      bool
}

// SSOSettings is an organisation's single-sign-on configuration as shown to
// administrators: everything but the client secret.
type SSOSettings struct {
	Issuer    string    `json:"issuer"`
	ClientID  string    `json:"client_id"`
	Domains   []string  `json:"domains"`
	Provision string    `json:"provision"`
	Party     string    `json:"party,omitempty"`
	Enabled   bool      `json:"enabled"`
	Updated   time.Time `json:"updated"`
}

// SSOCallback is what the identity provider sent back to the callback.
type SSOCallback struct {
	State            string
	Code             string
	Error            string
	ErrorDescription string
}

// ssoAAD is the additional data sealing and wrapping a client secret: it
// binds the secret to its organisation and client id.
func ssoAAD(orgID, clientID string) []byte {
	return []byte("ferry oidc client secret v1\x00" + orgID + "\x00" + clientID)
}

// CheckSSOSpec validates a configuration and normalises its domains.
func CheckSSOSpec(spec *SSOSpec) error {
	const op = "auth.SetSSO"
	u, err := url.Parse(spec.Issuer)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return ferry.E(op, ferry.Invalid, "the issuer must be an absolute https URL without query or fragment")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
		// A provider on this machine (tests, development).
	default:
		return ferry.E(op, ferry.Invalid, "the issuer must be an https URL (http only on loopback)")
	}
	if spec.ClientID == "" || len(spec.ClientID) > 255 || strings.ContainsFunc(spec.ClientID, isControl) {
		return ferry.E(op, ferry.Invalid, "the client id must be 1-255 printable characters")
	}
	if spec.ClientSecret == "" || len(spec.ClientSecret) > 1024 {
		return ferry.E(op, ferry.Invalid, "the client secret must be 1-1024 bytes")
	}
	doms := make([]string, 0, len(spec.Domains))
	for _, d := range spec.Domains {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == "" {
			continue
		}
		if !validDomain(d) {
			return ferry.Errorf(op, ferry.Invalid, "%q is not an email domain", d)
		}
		if !slices.Contains(doms, d) {
			doms = append(doms, d)
		}
	}
	spec.Domains = doms
	switch spec.Provision {
	case "":
		spec.Provision = ProvisionOff
	case ProvisionOff, ProvisionUser:
		spec.PartyID = ""
	case ProvisionExternal:
		if spec.PartyID == "" {
			return ferry.E(op, ferry.Invalid, "provisioning external users needs their party")
		}
	default:
		return ferry.Errorf(op, ferry.Invalid, "provisioning %q: want user, external or off", spec.Provision)
	}
	if spec.Provision != ProvisionOff && len(spec.Domains) == 0 {
		// Without domains, anyone the provider vouches for (a shared
		// provider vouches for the whole world) would get an account.
		return ferry.E(op, ferry.Invalid, "provisioning needs at least one email domain (--domains)")
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func validDomain(d string) bool {
	if len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// SetOutboundAllow sets the internal networks (loopback, private…) that
// identity providers may be reached on (config outbound-allow). Without it,
// a provider whose address is internal is refused (internal/outbound).
func (s *Service) SetOutboundAllow(allow []netip.Prefix) {
	s.sso.mu.Lock()
	defer s.sso.mu.Unlock()
	s.sso.client = outbound.NewClient(allow, ssoHTTPTimeout)
	s.sso.m = nil
}

// ssoContext gives go-oidc and oauth2 the outbound client: a timeout, and no
// connection to an internal address that is not allow-listed (no SSRF
// through an issuer URL or a discovery document naming internal endpoints).
func (s *Service) ssoContext(ctx context.Context) context.Context {
	s.sso.mu.Lock()
	defer s.sso.mu.Unlock()
	if s.sso.client == nil {
		s.sso.client = outbound.NewClient(nil, ssoHTTPTimeout)
	}
	return oidc.ClientContext(ctx, s.sso.client)
}

// ssoProviderTTL is how long a provider's discovery document (and with it
// its key set, which go-oidc refreshes itself when it meets an unknown key)
// is reused before being fetched again.
const ssoProviderTTL = 10 * time.Minute

// ssoCache keeps discovered providers, so that an unauthenticated sign-in
// start does not make Ferry fetch the provider's discovery document (and
// keys) every time: one fetch per issuer per ssoProviderTTL.
type ssoCache struct {
	mu     sync.Mutex
	m      map[string]ssoCached
	client *http.Client // see SetOutboundAllow
}

type ssoCached struct {
	p  *oidc.Provider
	at time.Time
}

// provider returns the discovered provider of issuer, fetching it if it is
// not cached or is older than ssoProviderTTL.
func (s *Service) provider(ctx context.Context, issuer string) (*oidc.Provider, error) {
	now := s.now()
	s.sso.mu.Lock()
	c, ok := s.sso.m[issuer]
	s.sso.mu.Unlock()
	if ok && now.Sub(c.at) < ssoProviderTTL && now.Sub(c.at) >= 0 {
		return c.p, nil
	}
	// The provider keeps its context for later key fetches: it must not be
	// the request's, which ends with the request.
	p, err := oidc.NewProvider(s.ssoContext(context.WithoutCancel(ctx)), issuer)
	if err != nil {
		return nil, err
	}
	s.sso.mu.Lock()
	if s.sso.m == nil || len(s.sso.m) > 1000 {
		s.sso.m = map[string]ssoCached{}
	}
	s.sso.m[issuer] = ssoCached{p: p, at: now}
	s.sso.mu.Unlock()
	return p, nil
}

// SetSSO stores an organisation's single-sign-on configuration (replacing
// any), sealing the client secret under the organisation's KEK. It checks
// that the issuer answers OpenID discovery for itself first. Authorization
// and auditing are the caller's (internal/admin).
func (s *Service) SetSSO(ctx context.Context, spec SSOSpec) error {
	const op = "auth.SetSSO"
	if err := CheckSSOSpec(&spec); err != nil {
		return err
	}
	if _, err := oidc.NewProvider(s.ssoContext(ctx), spec.Issuer); err != nil {
		return ferry.E(op, ferry.Invalid, "the issuer does not answer OpenID Connect discovery for itself: "+clip(err.Error(), 300))
	}
	kekID, wrapped, sealed, err := s.sealSecret(ctx, spec.OrgID, spec.ClientID, spec.ClientSecret)
	if err != nil {
		return err
	}
	return s.db.SetOIDCConfig(ctx, &db.OIDCConfig{OrgID: spec.OrgID, Issuer: spec.Issuer, ClientID: spec.ClientID,
		SecretKEK: kekID, SecretKey: wrapped, SecretSealed: sealed, Domains: spec.Domains, Provision: spec.Provision,
		ProvisionPartyID: spec.PartyID, Enabled: spec.Enabled, Updated: s.now().UTC()})
}

// SSO returns an organisation's single-sign-on configuration without its
// secret, or ferry.NotExist.
func (s *Service) SSO(ctx context.Context, orgID string) (*SSOSettings, error) {
	c, err := s.db.OIDCConfig(ctx, orgID)
	if ferry.KindOf(err) == ferry.NotExist {
		return nil, ferry.E("auth.SSO", ferry.NotExist, "the organisation has no single sign-on configured")
	} else if err != nil {
		return nil, err
	}
	out := &SSOSettings{Issuer: c.Issuer, ClientID: c.ClientID, Domains: c.Domains, Provision: c.Provision, Enabled: c.Enabled, Updated: c.Updated}
	if out.Domains == nil {
		out.Domains = []string{}
	}
	if c.ProvisionPartyID != "" {
		pt, err := s.db.PartyByID(ctx, c.ProvisionPartyID)
		if err != nil {
			return nil, err
		}
		out.Party = pt.Name
	}
	return out, nil
}

func (s *Service) sealSecret(ctx context.Context, orgID, clientID, secret string) (kekID string, wrapped, sealed []byte, err error) {
	const op = "auth.SetSSO"
	if s.mfa.keks == nil {
		return "", nil, nil, ferry.E(op, ferry.Internal, "no key-encryption keys (SetKEKs was not called)")
	}
	key, err := keys.NewDataKey(s.rand)
	if err != nil {
		return "", nil, nil, err
	}
	aead, err := newGCM(key)
	if err != nil {
		return "", nil, nil, ferry.E(op, ferry.Internal, err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(s.rand, nonce); err != nil {
		return "", nil, nil, ferry.E(op, ferry.Internal, err)
	}
	aad := ssoAAD(orgID, clientID)
	sealed = aead.Seal(nonce, nonce, []byte(secret), aad)
	if err := s.mfa.keks.Ensure(ctx, orgID); err != nil {
		return "", nil, nil, err
	}
	wrapped, kekID, err = s.mfa.keks.Wrap(ctx, orgID, key, aad)
	if err != nil {
		return "", nil, nil, err
	}
	return kekID, wrapped, sealed, nil
}

func (s *Service) openSecret(ctx context.Context, c *db.OIDCConfig) (string, error) {
	const op = "auth.sso"
	if s.mfa.keks == nil {
		return "", ferry.E(op, ferry.Internal, "no key-encryption keys (SetKEKs was not called)")
	}
	aad := ssoAAD(c.OrgID, c.ClientID)
	key, err := s.mfa.keks.Unwrap(ctx, c.OrgID, c.SecretKEK, c.SecretKey, aad)
	if err != nil {
		return "", err
	}
	aead, err := newGCM(key)
	if err != nil {
		return "", ferry.E(op, ferry.Internal, err)
	}
	n := aead.NonceSize()
	if len(c.SecretSealed) < n {
		return "", ferry.E(op, ferry.Integrity, "the stored client secret is truncated")
	}
	pt, err := aead.Open(nil, c.SecretSealed[:n], c.SecretSealed[n:], aad)
	if err != nil {
		return "", ferry.E(op, ferry.Integrity, "the stored client secret does not decrypt", err)
	}
	return string(pt), nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func sha(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func (s *Service) randString() (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", ferry.E("auth.sso", ferry.Internal, err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// SSOOrg finds the organisation a single-sign-on login is for: by name, or
// by the domain of an email address. Unknown organisations, domains no
// organisation claimed and organisations without (enabled) single sign-on
// all get the same NotExist error.
func (s *Service) SSOOrg(ctx context.Context, orgName, email string) (*ferry.Org, error) {
	notFound := ferry.E("auth.SSOOrg", ferry.NotExist, "single sign-on is not set up for that organisation or email domain")
	var o *ferry.Org
	var err error
	if email = normEmail(email); email != "" {
		at := strings.LastIndexByte(email, '@')
		if at < 0 || len(email) > 254 {
			return nil, ferry.E("auth.SSOOrg", ferry.Invalid, "enter your email address")
		}
		orgID, err := s.db.OIDCOrgByDomain(ctx, email[at+1:])
		if ferry.KindOf(err) == ferry.NotExist {
			return nil, notFound
		} else if err != nil {
			return nil, err
		}
		o, err = s.db.OrgByID(ctx, orgID)
		if err != nil {
			return nil, err
		}
	} else {
		if orgName == "" || len(orgName) > 100 {
			return nil, ferry.E("auth.SSOOrg", ferry.Invalid, "enter your email address or organisation")
		}
		o, err = s.db.OrgByName(ctx, orgName)
		if ferry.KindOf(err) == ferry.NotExist {
			return nil, notFound
		} else if err != nil {
			return nil, err
		}
	}
	c, err := s.db.OIDCConfig(ctx, o.ID)
	if ferry.KindOf(err) == ferry.NotExist || err == nil && !c.Enabled {
		return nil, notFound
	} else if err != nil {
		return nil, err
	}
	return o, nil
}

// BeginSSO starts a single-sign-on login to an organisation (see SSOOrg):
// it records the login in progress and returns the provider's authorization
// URL to redirect the browser to, and the value of the SSOCookie that binds
// the login to this browser. callback is Ferry's redirect URI (registered at
// the provider); next is the local path to land on afterwards; loginHint,
// if not empty, is passed to the provider.
func (s *Service) BeginSSO(ctx context.Context, o *ferry.Org, callback, next, loginHint string) (authURL, browser string, err error) {
	const op = "auth.BeginSSO"
	c, err := s.db.OIDCConfig(ctx, o.ID)
	if err != nil {
		return "", "", err
	}
	p, err := s.provider(ctx, c.Issuer)
	if err != nil {
		s.logger.Warn("single sign-on: provider discovery failed", "org", o.Name, "issuer", c.Issuer, "err", err)
		return "", "", ferry.E(op, ferry.Unavailable, "your organisation's identity provider cannot be reached; try again later")
	}
	var state, nonce, verifier string
	for _, v := range []*string{&state, &nonce, &verifier, &browser} {
		if *v, err = s.randString(); err != nil {
			return "", "", err
		}
	}
	now := s.now().UTC()
	if _, err := s.db.DeleteExpiredOIDCLogins(ctx, now); err != nil {
		s.logger.Warn("delete expired single-sign-on logins", "err", err)
	}
	if err := s.db.CreateOIDCLogin(ctx, &db.OIDCLogin{StateHash: sha(state), OrgID: o.ID, BrowserHash: sha(browser), NonceHash: sha(nonce),
		Verifier: verifier, Next: next, Created: now, Expires: now.Add(SSOLoginTTL)}); err != nil {
		return "", "", err
	}
	oc := oauth2.Config{ClientID: c.ClientID, Endpoint: p.Endpoint(), RedirectURL: callback, Scopes: []string{oidc.ScopeOpenID, "email"}}
	opts := []oauth2.AuthCodeOption{oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)}
	if loginHint != "" {
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", loginHint))
	}
	return oc.AuthCodeURL(state, opts...), browser, nil
}

// ssoDeny audits a refused single-sign-on login and returns the error for
// the browser: msg, of kind (Unauthenticated or Permission).
func (s *Service) ssoDeny(ctx context.Context, orgID, email string, c Client, why string, kind ferry.Kind, msg string) error {
	ev := &ferry.Event{Action: "auth.login", Outcome: ferry.OutcomeDenied, Actor: "sso", OrgID: orgID, Remote: c.Remote,
		Protocol: planeProtocol(c.plane()), Detail: "oidc: " + clip(why, 300)}
	if email != "" {
		ev.Actor = quoteName(email)
		if u, err := s.db.UserByEmail(ctx, email); err == nil && u.OrgID == orgID {
			ev.Actor, ev.ActorID = u.Email, u.ID
		}
	}
	if err := s.record(ctx, ev); err != nil {
		return err
	}
	return ferry.E("auth.FinishSSO", kind, msg)
}

// FinishSSO completes a single-sign-on login with the provider's answer to
// the callback and the browser's SSOCookie value. On success it returns a
// full session, its secret for the session cookie and the local path to go
// to. Every refusal is audited and gets an Unauthenticated error (the
// answer cannot be trusted) or a Permission error (it can, but this person
// may not sign in).
func (s *Service) FinishSSO(ctx context.Context, cb SSOCallback, browser, callback string, c Client) (secret string, sess *ferry.Session, next string, err error) {
	const restart = "This sign-in attempt is not valid (it expired, was already used or was started in another browser). Start again from the sign-in page."
	if cb.State == "" || len(cb.State) > 200 {
		return "", nil, "", s.ssoDeny(ctx, "", "", c, "callback without a state", ferry.Unauthenticated, restart)
	}
	l, err := s.db.TakeOIDCLogin(ctx, sha(cb.State))
	if ferry.KindOf(err) == ferry.NotExist {
		return "", nil, "", s.ssoDeny(ctx, "", "", c, "state mismatch (unknown or already used state)", ferry.Unauthenticated, restart)
	} else if err != nil {
		return "", nil, "", err
	}
	if browser == "" || subtle.ConstantTimeCompare(sha(browser), l.BrowserHash) != 1 {
		return "", nil, "", s.ssoDeny(ctx, l.OrgID, "", c, "state mismatch (the login was started in another browser)", ferry.Unauthenticated, restart)
	}
	if !s.now().Before(l.Expires) {
		return "", nil, "", s.ssoDeny(ctx, l.OrgID, "", c, "login expired before the provider answered", ferry.Unauthenticated, restart)
	}
	if cb.Error != "" {
		why := "provider refused: " + clip(cb.Error, 64)
		if cb.ErrorDescription != "" {
			why += " (" + clip(cb.ErrorDescription, 200) + ")"
		}
		return "", nil, "", s.ssoDeny(ctx, l.OrgID, "", c, why, ferry.Unauthenticated, "Your identity provider did not sign you in.")
	}
	cfg, err := s.db.OIDCConfig(ctx, l.OrgID)
	if ferry.KindOf(err) == ferry.NotExist || err == nil && !cfg.Enabled {
		return "", nil, "", s.ssoDeny(ctx, l.OrgID, "", c, "single sign-on was switched off during the login", ferry.Permission, "Single sign-on is not enabled for your organisation.")
	} else if err != nil {
		return "", nil, "", err
	}
	clientSecret, err := s.openSecret(ctx, cfg)
	if err != nil {
		return "", nil, "", err
	}
	hctx := s.ssoContext(ctx)
	p, err := s.provider(ctx, cfg.Issuer)
	if err != nil {
		s.logger.Warn("single sign-on: provider discovery failed", "issuer", cfg.Issuer, "err", err)
		return "", nil, "", ferry.E("auth.FinishSSO", ferry.Unavailable, "your organisation's identity provider cannot be reached; try again later")
	}
	oc := oauth2.Config{ClientID: cfg.ClientID, ClientSecret: clientSecret, Endpoint: p.Endpoint(), RedirectURL: callback}
	tok, err := oc.Exchange(hctx, cb.Code, oauth2.VerifierOption(l.Verifier))
	if err != nil {
		return "", nil, "", s.ssoDeny(ctx, l.OrgID, "", c, "code exchange failed: "+err.Error(), ferry.Unauthenticated, "Your identity provider did not confirm this sign-in.")
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", nil, "", s.ssoDeny(ctx, l.OrgID, "", c, "no ID token in the token response", ferry.Unauthenticated, "Your identity provider did not send an identity token.")
	}
	v := p.Verifier(&oidc.Config{ClientID: cfg.ClientID, Now: s.now})
	claims, why, err := verifyIDToken(hctx, v, cfg.ClientID, raw, l.NonceHash)
	if err != nil {
		return "", nil, "", s.ssoDeny(ctx, l.OrgID, "", c, why, ferry.Unauthenticated, "Your identity provider's answer could not be verified: "+why+".")
	}
	if claims.Email == "" {
		// The provider keeps the email claims for its userinfo endpoint
		// (OIDC Core 5.4); its answer must be about the same subject.
		ui, err := p.UserInfo(hctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return "", nil, "", s.ssoDeny(ctx, l.OrgID, "", c, "userinfo request failed: "+err.Error(), ferry.Unauthenticated, "Your identity provider did not share your email address.")
		}
		if ui.Subject != claims.Subject {
			return "", nil, "", s.ssoDeny(ctx, l.OrgID, "", c, "userinfo subject differs from the ID token's", ferry.Unauthenticated, "Your identity provider's answer could not be verified.")
		}
		claims.Email, claims.Verified = normEmail(ui.Email), ui.EmailVerified
	}
	u, err := s.ssoUser(ctx, cfg, claims, c)
	if err != nil {
		return "", nil, "", err
	}
	secret, sess, err = s.StartSession(ctx, u.ID, "oidc", c)
	return secret, sess, l.Next, err
}

// idClaims are what Ferry takes from a verified ID token.
type idClaims struct {
	Subject  string
	Email    string
	Verified bool
}

// verifyIDToken verifies a raw ID token with v (signature, issuer, audience
// = clientID, expiry), then its nonce against nonceHash, and reads its email
// claims. On failure, why says what was wrong, for the audit record and the
// page.
func verifyIDToken(ctx context.Context, v *oidc.IDTokenVerifier, clientID, raw string, nonceHash []byte) (c *idClaims, why string, err error) {
	t, err := v.Verify(ctx, raw)
	if err != nil {
		var exp *oidc.TokenExpiredError
		msg := err.Error()
		switch {
		case errors.As(err, &exp):
			why = "the ID token expired at " + exp.Expiry.UTC().Format(time.RFC3339)
		case strings.Contains(msg, "issued by a different provider"):
			why = "the ID token is from the wrong issuer"
		case strings.Contains(msg, "expected audience"):
			why = "the ID token is for another client (wrong audience)"
		default:
			why = "the ID token is invalid: " + clip(msg, 200)
		}
		return nil, why, err
	}
	// With several audiences, the token must name Ferry as the party it
	// was issued to.
	var extra struct {
		AZP           string          `json:"azp"`
		Email         string          `json:"email"`
		EmailVerified json.RawMessage `json:"email_verified"`
	}
	if err := t.Claims(&extra); err != nil {
		return nil, "the ID token's claims are malformed", err
	}
	if len(t.Audience) > 1 && extra.AZP != clientID {
		return nil, "the ID token is for another client (wrong authorized party)", errors.New("azp mismatch")
	}
	if t.Nonce == "" || subtle.ConstantTimeCompare(sha(t.Nonce), nonceHash) != 1 {
		return nil, "nonce mismatch", errors.New("nonce mismatch")
	}
	c = &idClaims{Subject: t.Subject, Email: normEmail(extra.Email)}
	// Some providers send the boolean as a string.
	switch strings.Trim(string(extra.EmailVerified), `"`) {
	case "true":
		c.Verified = true
	}
	return c, "", nil
}

// ssoUser finds (or provisions) the Ferry user a verified ID token names,
// refusing whoever may not sign in to the organisation.
func (s *Service) ssoUser(ctx context.Context, cfg *db.OIDCConfig, claims *idClaims, c Client) (*ferry.User, error) {
	const op = "auth.FinishSSO"
	email := claims.Email
	if email == "" || !strings.Contains(email, "@") {
		return nil, s.ssoDeny(ctx, cfg.OrgID, "", c, "the ID token has no email address", ferry.Permission, "Your identity provider did not share your email address.")
	}
	if !claims.Verified {
		return nil, s.ssoDeny(ctx, cfg.OrgID, email, c, "email "+email+" not verified by the provider", ferry.Permission,
			"Your identity provider has not verified your email address "+email+", so Ferry cannot sign you in with it.")
	}
	domain := email[strings.LastIndexByte(email, '@')+1:]
	if len(cfg.Domains) > 0 && !slices.Contains(cfg.Domains, domain) {
		return nil, s.ssoDeny(ctx, cfg.OrgID, email, c, "email domain "+domain+" not allowed for the organisation", ferry.Permission,
			"Accounts of "+domain+" may not sign in to this organisation.")
	}
	u, err := s.db.UserByEmail(ctx, email)
	switch {
	case err == nil && u.OrgID != cfg.OrgID:
		return nil, s.ssoDeny(ctx, cfg.OrgID, email, c, "user "+email+" belongs to another organisation", ferry.Permission,
			"Your Ferry account belongs to another organisation; sign in through that organisation.")
	case err == nil && u.Disabled:
		return nil, s.ssoDeny(ctx, cfg.OrgID, email, c, "user disabled", ferry.Permission, "Your Ferry account is disabled.")
	case err == nil:
		return u, nil
	case ferry.KindOf(err) != ferry.NotExist:
		return nil, err
	case cfg.Provision == ProvisionOff || c.plane() == ferry.PlaneAdmin:
		// The admin listener signs in existing administrators only: it
		// never creates an account.
		return nil, s.ssoDeny(ctx, cfg.OrgID, email, c, "unknown user "+email+" and provisioning is off", ferry.Permission,
			"There is no Ferry account for "+email+". Ask your administrator for one.")
	}
	u = &ferry.User{ID: ferry.NewID(s.rand), OrgID: cfg.OrgID, Email: email, Role: ferry.RoleUser, Created: s.now().UTC()}
	if cfg.Provision == ProvisionExternal {
		u.Role, u.PartyID = ferry.RoleExternal, cfg.ProvisionPartyID
	}
	if err := s.db.CreateUser(ctx, u); ferry.KindOf(err) == ferry.Exist {
		// Created meanwhile by a concurrent login: use it, with the checks.
		if u, err = s.db.UserByEmail(ctx, email); err != nil {
			return nil, err
		}
		if u.OrgID != cfg.OrgID || u.Disabled {
			return nil, s.ssoDeny(ctx, cfg.OrgID, email, c, "user created concurrently elsewhere or disabled", ferry.Permission, "Your Ferry account cannot sign in here.")
		}
		return u, nil
	} else if err != nil {
		return nil, ferry.E(op, ferry.KindOf(err), "cannot create your account", err)
	}
	ev := &ferry.Event{Action: "user.create", Outcome: ferry.OutcomeOK, Actor: "sso", OrgID: cfg.OrgID, Object: u.ID, PartyID: u.PartyID,
		Remote: c.Remote, Protocol: "https", Detail: "email " + email + " role " + string(u.Role) + "; provisioned at single sign-on by " + cfg.Issuer + " (subject " + clip(claims.Subject, 100) + ")"}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	return u, nil
}
