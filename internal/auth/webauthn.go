package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
)

// Passkeys (WebAuthn, with github.com/go-webauthn/webauthn).
//
// The relying party is the host name the browser used and its https origin
// (RP). A ceremony's state — challenge, RP id, user, the session that began
// it, allowed credentials — is written by the server into its own table,
// found by the SHA-256 of a random 256-bit id that the browser holds in a
// short-lived cookie, and taken (deleted) when the ceremony finishes, so each
// challenge is answered at most once. Nothing the browser sends is stored
// except the credential's public key and id after verification.
//
// Assertions are verified by go-webauthn (challenge, origin, RP id hash,
// signature, user presence and verification); on top of it a signature
// counter that does not move forward is refused, with a compare-and-set
// update so that two racing uses of a cloned key cannot both pass.

// CeremonyCookie names the cookie that holds a WebAuthn ceremony's id.
const CeremonyCookie = "__Host-ferry_webauthn"

// CeremonyTTL is how long a WebAuthn ceremony may take.
const CeremonyTTL = 5 * time.Minute

// Ceremony kinds.
const (
	ceremonyRegister = "register"
	ceremonyLogin    = "login"
	ceremonyMFA      = "mfa"
)

// ErrPasskey is the error of every refused passkey assertion or
// registration, whatever the reason.
var ErrPasskey = ferry.E("auth.Passkey", ferry.Unauthenticated, "the passkey was not accepted; try again")

var errPasskeysOff = ferry.E("auth.Passkey", ferry.Permission, "your organisation does not use passkeys")

// RP is the relying party of a ceremony: the host name the browser is on
// (the RP id) and its origin, e.g. {"ferry.example.com",
// "https://ferry.example.com"}.
type RP struct {
	ID     string
	Origin string
}

// RPFromHost returns the relying party for a request to host (the Host
// header: a name, optionally with a port) over HTTPS. IP addresses are not
// valid RP ids (browsers refuse them), nor is an empty or malformed host.
func RPFromHost(host string) (RP, error) {
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	name = strings.ToLower(name)
	if name == "" || len(name) > 253 || net.ParseIP(strings.Trim(name, "[]")) != nil || protocol.ValidateRPID(name) != nil || strings.ContainsAny(name, "/\\@ ") {
		return RP{}, ferry.E("auth.RPFromHost", ferry.Invalid, "passkeys need Ferry to be reached by a host name, not an address")
	}
	return RP{ID: name, Origin: "https://" + strings.ToLower(host)}, nil
}

// Passkey is a user's registered passkey as the pages show it.
type Passkey = db.Passkey

// waUser is a Ferry user as go-webauthn sees it. The user handle is the
// user id: 128 random bits, nothing personal.
type waUser struct {
	u     *ferry.User
	creds []webauthn.Credential
}

func (w *waUser) WebAuthnID() []byte                         { return []byte(w.u.ID) }
func (w *waUser) WebAuthnName() string                       { return w.u.Email }
func (w *waUser) WebAuthnDisplayName() string                { return w.u.Email }
func (w *waUser) WebAuthnCredentials() []webauthn.Credential { return w.creds }

func credential(p *db.Passkey) webauthn.Credential {
	tr := make([]protocol.AuthenticatorTransport, len(p.Transports))
	for i, t := range p.Transports {
		tr[i] = protocol.AuthenticatorTransport(t)
	}
	return webauthn.Credential{ID: p.CredentialID, PublicKey: p.PublicKey, AttestationType: p.AttestationType, AttestationFormat: p.AttestationFormat,
		Transport: tr, Flags: webauthn.CredentialFlagsFromMsgpByte(p.Flags), Authenticator: webauthn.Authenticator{AAGUID: p.AAGUID, SignCount: p.SignCount}}
}

func (s *Service) waUser(ctx context.Context, userID string) (*waUser, []*db.Passkey, error) {
	u, err := s.db.UserByID(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	pks, err := s.db.PasskeysOf(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	w := &waUser{u: u}
	for _, p := range pks {
		w.creds = append(w.creds, credential(p))
	}
	return w, pks, nil
}

func relyingParty(rp RP, uv protocol.UserVerificationRequirement) (*webauthn.WebAuthn, error) {
	return webauthn.New(&webauthn.Config{
		RPID: rp.ID, RPDisplayName: "Ferry", RPOrigins: []string{rp.Origin},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementRequired, RequireResidentKey: protocol.ResidentKeyRequired(), UserVerification: uv,
		},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: CeremonyTTL, TimeoutUVD: CeremonyTTL},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: CeremonyTTL, TimeoutUVD: CeremonyTTL},
		},
	})
}

// passkeysAllowed loads the user's organisation policy and refuses if
// passkeys are off.
func (s *Service) passkeysAllowed(ctx context.Context, orgID string) error {
	pol, err := s.db.Policy(ctx, orgID)
	if err != nil {
		return err
	}
	if pol.Passkeys == ferry.PasskeysOff {
		return errPasskeysOff
	}
	return nil
}

// PasskeysEnabled reports whether the organisation's policy lets its users
// use passkeys.
func (s *Service) PasskeysEnabled(ctx context.Context, orgID string) (bool, error) {
	err := s.passkeysAllowed(ctx, orgID)
	if err == errPasskeysOff {
		return false, nil
	}
	return err == nil, err
}

// newCeremony stores a ceremony's state and returns the id for its cookie.
func (s *Service) newCeremony(ctx context.Context, kind, userID, sessionID string, sd *webauthn.SessionData) (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", ferry.E("auth.newCeremony", ferry.Internal, err)
	}
	id := base64.RawURLEncoding.EncodeToString(b)
	c := &db.Ceremony{IDHash: hashSecret(id), Kind: kind, UserID: userID, SessionID: sessionID, Challenge: sd.Challenge, RPID: sd.RelyingPartyID,
		UserVerification: string(sd.UserVerification), AllowedIDs: sd.AllowedCredentialIDs, Expires: s.now().Add(CeremonyTTL)}
	if _, err := s.db.DeleteExpiredCeremonies(ctx, s.now()); err != nil {
		s.logger.Warn("delete expired WebAuthn ceremonies", "err", err)
	}
	if err := s.db.PutCeremony(ctx, c); err != nil {
		return "", err
	}
	return id, nil
}

// takeCeremony returns the session data of the ceremony named by the
// cookie's id, if it is of the kind, for the relying party, and (when
// sessionID is not "") begun by that session. It is deleted either way.
func (s *Service) takeCeremony(ctx context.Context, id, kind, sessionID string, rp RP) (*db.Ceremony, webauthn.SessionData, error) {
	var sd webauthn.SessionData
	if id == "" || len(id) > 100 {
		return nil, sd, errors.New("no ceremony cookie")
	}
	c, err := s.db.TakeCeremony(ctx, hashSecret(id), s.now())
	if ferry.KindOf(err) == ferry.NotExist {
		return nil, sd, errors.New("unknown or expired ceremony")
	} else if err != nil {
		return nil, sd, err
	}
	switch {
	case c.Kind != kind:
		return nil, sd, errors.New("ceremony of another kind")
	case c.SessionID != sessionID:
		return nil, sd, errors.New("ceremony begun by another session")
	case c.RPID != rp.ID:
		return nil, sd, errors.New("ceremony begun on another host")
	}
	sd = webauthn.SessionData{Challenge: c.Challenge, RelyingPartyID: c.RPID, UserID: []byte(c.UserID), AllowedCredentialIDs: c.AllowedIDs,
		UserVerification: protocol.UserVerificationRequirement(c.UserVerification), Expires: c.Expires}
	if kind == ceremonyRegister {
		sd.CredParams = webauthn.CredentialParametersDefault()
	}
	return c, sd, nil
}

// BeginPasskeyRegistration starts adding a passkey for the principal and
// returns the options for navigator.credentials.create (JSON) and the id for
// the ceremony cookie.
func (s *Service) BeginPasskeyRegistration(ctx context.Context, p *ferry.Principal, sessionID string, rp RP) ([]byte, string, error) {
	if err := s.passkeysAllowed(ctx, p.OrgID); err != nil {
		return nil, "", err
	}
	w, _, err := s.waUser(ctx, p.UserID)
	if err != nil {
		return nil, "", err
	}
	if len(w.creds) >= 20 {
		return nil, "", ferry.E("auth.BeginPasskeyRegistration", ferry.Quota, "you have 20 passkeys; remove one first")
	}
	wa, err := relyingParty(rp, protocol.VerificationRequired)
	if err != nil {
		return nil, "", ferry.E("auth.BeginPasskeyRegistration", ferry.Invalid, "passkeys cannot be used at this address", err)
	}
	excl := make([]protocol.CredentialDescriptor, len(w.creds))
	for i, c := range w.creds {
		excl[i] = c.Descriptor()
	}
	opts, sd, err := wa.BeginRegistration(w, webauthn.WithExclusions(excl))
	if err != nil {
		return nil, "", ferry.E("auth.BeginPasskeyRegistration", ferry.Internal, err)
	}
	id, err := s.newCeremony(ctx, ceremonyRegister, p.UserID, sessionID, sd)
	if err != nil {
		return nil, "", err
	}
	b, err := json.Marshal(opts)
	if err != nil {
		return nil, "", ferry.E("auth.BeginPasskeyRegistration", ferry.Internal, err)
	}
	return b, id, nil
}

// FinishPasskeyRegistration verifies the browser's response to the
// registration begun in the same session and stores the passkey under name.
// With recovery set, and if the user has no recovery codes (the passkey is
// their first second factor), it also returns ten new recovery codes, to be
// shown once as TOTP enrolment shows them; a caller that cannot show them
// passes false, and the user gets codes at a later enrolment or from "New
// recovery codes". Audited as "auth.passkey.add".
func (s *Service) FinishPasskeyRegistration(ctx context.Context, p *ferry.Principal, sessionID string, rp RP, ceremonyID, name string, response []byte,
	recovery bool) (*Passkey, []string, error) {
	const op = "auth.FinishPasskeyRegistration"
	name = strings.TrimSpace(name)
	if name == "" {
		name = "passkey"
	}
	if len(name) > 100 || !utf8.ValidString(name) {
		return nil, nil, ferry.E(op, ferry.Invalid, "the passkey name is longer than 100 characters")
	}
	deny := func(why string, err error) (*Passkey, []string, error) {
		if err != nil {
			why += ": " + clip(err.Error(), 200)
		}
		if aerr := s.mfaEvent(ctx, p, "auth.passkey.add", ferry.OutcomeDenied, why); aerr != nil {
			return nil, nil, aerr
		}
		return nil, nil, ferry.E(op, ferry.Unauthenticated, "the passkey could not be registered; try again")
	}
	if err := s.passkeysAllowed(ctx, p.OrgID); err != nil {
		return nil, nil, err
	}
	_, sd, err := s.takeCeremony(ctx, ceremonyID, ceremonyRegister, sessionID, rp)
	if err != nil {
		return deny("ceremony", err)
	}
	w, _, err := s.waUser(ctx, p.UserID)
	if err != nil {
		return nil, nil, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return deny("malformed response", err)
	}
	wa, err := relyingParty(rp, protocol.VerificationRequired)
	if err != nil {
		return deny("relying party", err)
	}
	cred, err := wa.CreateCredential(w, sd, parsed)
	if err != nil {
		return deny("verification failed", err)
	}
	var idb [8]byte
	if _, err := io.ReadFull(s.rand, idb[:]); err != nil {
		return nil, nil, ferry.E(op, ferry.Internal, err)
	}
	pk := &db.Passkey{ID: hex.EncodeToString(idb[:]), UserID: p.UserID, CredentialID: cred.ID, PublicKey: cred.PublicKey,
		AttestationType: cred.AttestationType, AttestationFormat: cred.AttestationFormat, Flags: cred.Flags.MsgpByte(),
		AAGUID: cred.Authenticator.AAGUID, SignCount: cred.Authenticator.SignCount, Name: name, Created: s.now().UTC()}
	for _, t := range cred.Transport {
		pk.Transports = append(pk.Transports, string(t))
	}
	var codes []string
	var hashes [][]byte
	if recovery {
		if codes, hashes, err = s.recoveryCodes(p.UserID); err != nil {
			return nil, nil, err
		}
	}
	made, err := s.db.AddPasskey(ctx, pk, hashes)
	if err != nil {
		if ferry.KindOf(err) == ferry.Exist {
			return deny("credential already registered", nil)
		}
		return nil, nil, err
	}
	detail := "passkey " + pk.ID + " " + quoteName(name)
	if made {
		detail += "; 10 recovery codes"
	} else {
		codes = nil
	}
	if err := s.mfaEvent(ctx, p, "auth.passkey.add", ferry.OutcomeOK, detail); err != nil {
		return nil, nil, err
	}
	return pk, codes, nil
}

// Passkeys lists the principal's passkeys.
func (s *Service) Passkeys(ctx context.Context, p *ferry.Principal) ([]*Passkey, error) {
	return s.db.PasskeysOf(ctx, p.UserID)
}

// RemovePasskey deletes one of the principal's passkeys by its public id.
// If it was their last second factor, their recovery codes go with it.
// Audited as "auth.passkey.remove".
func (s *Service) RemovePasskey(ctx context.Context, p *ferry.Principal, id string) error {
	dropped, err := s.db.DeletePasskey(ctx, p.UserID, id)
	if err != nil {
		if ferry.KindOf(err) == ferry.NotExist {
			return ferry.E("auth.RemovePasskey", ferry.NotExist, "no such passkey")
		}
		return err
	}
	detail := "passkey " + id
	if dropped {
		detail += " and recovery codes"
	}
	return s.mfaEvent(ctx, p, "auth.passkey.remove", ferry.OutcomeOK, detail)
}

// BeginPasskeyLogin starts a passwordless sign-in with a discoverable
// credential (the browser offers the user's passkeys for this site), and
// returns the options for navigator.credentials.get (JSON) and the ceremony id.
func (s *Service) BeginPasskeyLogin(ctx context.Context, rp RP) ([]byte, string, error) {
	wa, err := relyingParty(rp, protocol.VerificationRequired)
	if err != nil {
		return nil, "", ferry.E("auth.BeginPasskeyLogin", ferry.Invalid, "passkeys cannot be used at this address", err)
	}
	opts, sd, err := wa.BeginDiscoverableLogin()
	if err != nil {
		return nil, "", ferry.E("auth.BeginPasskeyLogin", ferry.Internal, err)
	}
	id, err := s.newCeremony(ctx, ceremonyLogin, "", "", sd)
	if err != nil {
		return nil, "", err
	}
	b, err := json.Marshal(opts)
	if err != nil {
		return nil, "", ferry.E("auth.BeginPasskeyLogin", ferry.Internal, err)
	}
	return b, id, nil
}

// FinishPasskeyLogin verifies a passwordless assertion and signs its user
// in with a full session (methods "passkey"). A passkey alone is two factors:
// possession of the authenticator and user verification (PIN or biometric),
// which the ceremony requires. Every failure is ErrPasskey, audited as
// "auth.login" denied.
func (s *Service) FinishPasskeyLogin(ctx context.Context, rp RP, ceremonyID string, response []byte, c Client) (string, *ferry.Session, error) {
	deny := func(u *ferry.User, why string, err error) (string, *ferry.Session, error) {
		if err != nil {
			why += ": " + clip(err.Error(), 200)
		}
		ev := &ferry.Event{Action: "auth.login", Outcome: ferry.OutcomeDenied, Actor: "anonymous", Remote: c.Remote, Protocol: planeProtocol(c.plane()), Detail: "passkey: " + why}
		if u != nil {
			ev.Actor, ev.ActorID, ev.OrgID = u.Email, u.ID, u.OrgID
		}
		if aerr := s.record(ctx, ev); aerr != nil {
			return "", nil, aerr
		}
		return "", nil, ErrPasskey
	}
	_, sd, err := s.takeCeremony(ctx, ceremonyID, ceremonyLogin, "", rp)
	if err != nil {
		return deny(nil, "ceremony", err)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return deny(nil, "malformed response", err)
	}
	pk, err := s.db.PasskeyByCredentialID(ctx, parsed.RawID)
	if ferry.KindOf(err) == ferry.NotExist {
		return deny(nil, "unknown credential", nil)
	} else if err != nil {
		return "", nil, err
	}
	w, _, err := s.waUser(ctx, pk.UserID)
	if err != nil {
		return "", nil, err
	}
	if err := s.passkeysAllowed(ctx, w.u.OrgID); err != nil {
		return deny(w.u, "organisation does not use passkeys", nil)
	}
	wa, err := relyingParty(rp, protocol.VerificationRequired)
	if err != nil {
		return deny(w.u, "relying party", err)
	}
	handler := func(rawID, userHandle []byte) (webauthn.User, error) {
		if !bytes.Equal(userHandle, []byte(pk.UserID)) {
			return nil, errors.New("user handle does not match the credential's user")
		}
		return w, nil
	}
	cred, err := wa.ValidateDiscoverableLogin(handler, sd, parsed)
	if err != nil {
		return deny(w.u, "verification failed", err)
	}
	if why := s.recordUse(ctx, pk, cred); why != "" {
		return deny(w.u, why, nil)
	}
	return s.StartSession(ctx, w.u.ID, "passkey "+pk.ID, c)
}

// recordUse refuses a signature counter that does not move forward (a sign
// of a cloned authenticator) and stores the new one; it returns why it
// refused, or "".
func (s *Service) recordUse(ctx context.Context, pk *db.Passkey, cred *webauthn.Credential) string {
	if cred.Authenticator.CloneWarning {
		return "signature counter did not increase (possible cloned authenticator)"
	}
	ok, err := s.db.UsePasskey(ctx, pk.ID, cred.Authenticator.SignCount, cred.Flags.MsgpByte(), s.now().UTC())
	if err != nil {
		return "storing the signature counter failed"
	}
	if !ok {
		return "signature counter did not increase (possible cloned authenticator)"
	}
	return ""
}

// BeginPasskeyMFA starts a passkey assertion as the second factor of an
// MFA-stage session, restricted to the user's own passkeys.
func (s *Service) BeginPasskeyMFA(ctx context.Context, sess *ferry.Session, rp RP) ([]byte, string, error) {
	const op = "auth.BeginPasskeyMFA"
	if sess.Stage != ferry.SessionMFA {
		return nil, "", ferry.E(op, ferry.Invalid, "the session is not waiting for a second factor")
	}
	w, _, err := s.waUser(ctx, sess.UserID)
	if err != nil {
		return nil, "", err
	}
	if err := s.passkeysAllowed(ctx, w.u.OrgID); err != nil {
		return nil, "", err
	}
	if len(w.creds) == 0 {
		return nil, "", ferry.E(op, ferry.NotExist, "you have no passkey")
	}
	wa, err := relyingParty(rp, protocol.VerificationPreferred)
	if err != nil {
		return nil, "", ferry.E(op, ferry.Invalid, "passkeys cannot be used at this address", err)
	}
	opts, sd, err := wa.BeginLogin(w)
	if err != nil {
		return nil, "", ferry.E(op, ferry.Internal, err)
	}
	id, err := s.newCeremony(ctx, ceremonyMFA, w.u.ID, sess.ID, sd)
	if err != nil {
		return nil, "", err
	}
	b, err := json.Marshal(opts)
	if err != nil {
		return nil, "", ferry.E(op, ferry.Internal, err)
	}
	return b, id, nil
}

// FinishPasskeyMFA verifies the passkey assertion begun by BeginPasskeyMFA
// in the same session and completes the sign-in (CompleteMFA). Every failure
// is ErrPasskey, audited as "auth.login" denied.
func (s *Service) FinishPasskeyMFA(ctx context.Context, sess *ferry.Session, rp RP, ceremonyID string, response []byte, c Client) (string, *ferry.Session, error) {
	w, _, err := s.waUser(ctx, sess.UserID)
	if err != nil {
		return "", nil, err
	}
	deny := func(why string, err error) (string, *ferry.Session, error) {
		if err != nil {
			why += ": " + clip(err.Error(), 200)
		}
		if aerr := s.record(ctx, &ferry.Event{Action: "auth.login", Outcome: ferry.OutcomeDenied, Actor: w.u.Email, ActorID: w.u.ID, OrgID: w.u.OrgID,
			Session: sess.ID, Remote: c.Remote, Protocol: planeProtocol(sess.Plane), Detail: "passkey: " + why}); aerr != nil {
			return "", nil, aerr
		}
		return "", nil, ErrPasskey
	}
	if sess.Stage != ferry.SessionMFA {
		return "", nil, ferry.E("auth.FinishPasskeyMFA", ferry.Invalid, "the session is not waiting for a second factor")
	}
	if err := s.passkeysAllowed(ctx, w.u.OrgID); err != nil {
		return deny("organisation does not use passkeys", nil)
	}
	_, sd, err := s.takeCeremony(ctx, ceremonyID, ceremonyMFA, sess.ID, rp)
	if err != nil {
		return deny("ceremony", err)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return deny("malformed response", err)
	}
	wa, err := relyingParty(rp, protocol.VerificationPreferred)
	if err != nil {
		return deny("relying party", err)
	}
	cred, err := wa.ValidateLogin(w, sd, parsed)
	if err != nil {
		return deny("verification failed", err)
	}
	pk, err := s.db.PasskeyByCredentialID(ctx, cred.ID)
	if err != nil || pk.UserID != w.u.ID {
		return deny("unknown credential", nil)
	}
	if why := s.recordUse(ctx, pk, cred); why != "" {
		return deny(why, nil)
	}
	return s.CompleteMFA(ctx, sess, "passkey", c)
}
