package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"image/png"
	"io"
	"strconv"
	"strings"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"

	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/keys"
)

// TOTP authenticators (RFC 6238) and recovery codes.
//
// The secret is 256 bits from the service's randomness, wrapped by the
// organisation's KEK (additional data: the user id) before it is stored. Codes
// are 6 digits, 30-second steps, HMAC-SHA1 (what every authenticator app
// supports); a code of the previous, current or next step is accepted, and
// the step of each accepted code is recorded so no code (nor an earlier one)
// is accepted twice. Recovery codes are 80 random bits each, stored as
// SHA-256 hashes bound to the user, and each works once.

const (
	totpPeriod    = 30
	totpSkew      = 1 // steps either side of now
	totpIssuer    = "Ferry"
	recoveryCount = 10
)

var (
	totpOpts = hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	b32      = base32.StdEncoding.WithPadding(base32.NoPadding)
)

// ErrSecondFactor is the error of every refused TOTP or recovery code,
// whatever the reason: wrong, expired, already used, or none enrolled.
var ErrSecondFactor = ferry.E("auth.VerifyTOTP", ferry.Unauthenticated, "wrong or expired code")

// TOTPEnrolment is what a user needs to add a pending TOTP authenticator to
// their app: the secret in base32, the otpauth:// URL, and that URL as a QR
// code in a PNG data: URL.
type TOTPEnrolment struct {
	Secret string
	URL    string
	QR     string
}

func totpAAD(userID string) []byte { return []byte("ferry totp secret v1\x00" + userID) }

// BeginTOTP creates a new TOTP secret for the principal, pending until
// ConfirmTOTP, in place of any other pending one. A user who already has a
// confirmed authenticator must remove it first (ferry.Exist).
func (s *Service) BeginTOTP(ctx context.Context, p *ferry.Principal) (*TOTPEnrolment, error) {
	const op = "auth.BeginTOTP"
	if s.mfa.keks == nil {
		return nil, ferry.E(op, ferry.Internal, "no key-encryption keys configured")
	}
	if t, err := s.db.TOTPOf(ctx, p.UserID); err == nil && t.Confirmed {
		return nil, ferry.E(op, ferry.Exist, "you already have an authenticator app; remove it first")
	} else if err != nil && ferry.KindOf(err) != ferry.NotExist {
		return nil, err
	}
	secret := make([]byte, keys.DataKeySize)
	if _, err := io.ReadFull(s.rand, secret); err != nil {
		return nil, ferry.E(op, ferry.Internal, err)
	}
	if err := s.mfa.keks.Ensure(ctx, p.OrgID); err != nil {
		return nil, err
	}
	wrapped, kekID, err := s.mfa.keks.Wrap(ctx, p.OrgID, secret, totpAAD(p.UserID))
	if err != nil {
		return nil, err
	}
	if err := s.db.PutPendingTOTP(ctx, &dbTOTP{UserID: p.UserID, Wrapped: wrapped, KEKID: kekID, Created: s.now().UTC()}); err != nil {
		if ferry.KindOf(err) == ferry.Exist {
			return nil, ferry.E(op, ferry.Exist, "you already have an authenticator app; remove it first")
		}
		return nil, err
	}
	return enrolment(p.Email, secret)
}

// PendingTOTP returns the principal's pending (unconfirmed) TOTP
// enrolment again, or a ferry.NotExist error.
func (s *Service) PendingTOTP(ctx context.Context, p *ferry.Principal) (*TOTPEnrolment, error) {
	t, err := s.db.TOTPOf(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	if t.Confirmed {
		return nil, ferry.E("auth.PendingTOTP", ferry.NotExist, "no authenticator is being set up")
	}
	secret, err := s.unwrapTOTP(ctx, p.OrgID, t)
	if err != nil {
		return nil, err
	}
	return enrolment(p.Email, secret)
}

func enrolment(account string, secret []byte) (*TOTPEnrolment, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: totpIssuer, AccountName: account, Secret: secret, Period: totpPeriod,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return nil, ferry.E("auth.enrolment", ferry.Internal, err)
	}
	img, err := key.Image(240, 240)
	if err != nil {
		return nil, ferry.E("auth.enrolment", ferry.Internal, err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, ferry.E("auth.enrolment", ferry.Internal, err)
	}
	return &TOTPEnrolment{Secret: key.Secret(), URL: key.URL(), QR: "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())}, nil
}

func (s *Service) unwrapTOTP(ctx context.Context, orgID string, t *dbTOTP) ([]byte, error) {
	if s.mfa.keks == nil {
		return nil, ferry.E("auth.unwrapTOTP", ferry.Internal, "no key-encryption keys configured")
	}
	return s.mfa.keks.Unwrap(ctx, orgID, t.KEKID, t.Wrapped, totpAAD(t.UserID))
}

// matchTOTP returns the time step within the skew of now whose code is
// code, or -1; expired reports a match a few steps further back (for the
// audit record only).
func (s *Service) matchTOTP(secret []byte, code string) (step int64, expired bool) {
	code = strings.TrimSpace(code)
	if len(code) != 6 {
		return -1, false
	}
	key := b32.EncodeToString(secret)
	now := s.now().Unix() / totpPeriod
	step = -1
	for d := int64(-10); d <= totpSkew; d++ {
		want, err := hotp.GenerateCodeCustom(key, uint64(now+d), totpOpts) // #nosec G115 -- now is the current 30 s step since 1970 (millions), d >= -10: never negative
		if err != nil {
			return -1, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			if d >= -totpSkew {
				step = now + d
			} else {
				expired = true
			}
		}
	}
	return step, expired && step < 0
}

// ConfirmTOTP activates the principal's pending authenticator if code is
// a valid code for it. If the user has no recovery codes (the authenticator
// is their first second factor), it returns ten new ones (shown once; only
// their hashes are kept); otherwise the codes they have stay and it returns
// none. Audited as "auth.mfa.enrol".
func (s *Service) ConfirmTOTP(ctx context.Context, p *ferry.Principal, code string) ([]string, error) {
	const op = "auth.ConfirmTOTP"
	t, err := s.db.TOTPOf(ctx, p.UserID)
	if ferry.KindOf(err) == ferry.NotExist || err == nil && t.Confirmed {
		return nil, ferry.E(op, ferry.NotExist, "no authenticator is being set up; start again")
	} else if err != nil {
		return nil, err
	}
	secret, err := s.unwrapTOTP(ctx, p.OrgID, t)
	if err != nil {
		return nil, err
	}
	step, _ := s.matchTOTP(secret, code)
	if step < 0 {
		s.mfaEvent(ctx, p, "auth.mfa.enrol", ferry.OutcomeDenied, "totp: wrong code")
		return nil, ferry.E(op, ferry.Unauthenticated, "that code is not right; check the time on your device and try the next one")
	}
	codes, hashes, err := s.recoveryCodes(p.UserID)
	if err != nil {
		return nil, err
	}
	made, err := s.db.ConfirmTOTP(ctx, p.UserID, step, hashes)
	if err != nil {
		return nil, err
	}
	detail := "totp; recovery codes kept"
	if made {
		detail = "totp; 10 recovery codes"
	} else {
		codes = nil
	}
	if err := s.mfaEvent(ctx, p, "auth.mfa.enrol", ferry.OutcomeOK, detail); err != nil {
		return nil, err
	}
	return codes, nil
}

// NewRecoveryCodes replaces the principal's recovery codes with ten new
// ones. The user must have a second factor (a TOTP authenticator or a
// passkey). Audited as "auth.mfa.recovery".
func (s *Service) NewRecoveryCodes(ctx context.Context, p *ferry.Principal) ([]string, error) {
	has, err := s.hasSecondFactor(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	if !has {
		return nil, ferry.E("auth.NewRecoveryCodes", ferry.NotExist, "recovery codes come with a second factor; set up an authenticator app or a passkey first")
	}
	codes, hashes, err := s.recoveryCodes(p.UserID)
	if err != nil {
		return nil, err
	}
	if err := s.db.SetRecoveryCodes(ctx, p.UserID, hashes); err != nil {
		return nil, err
	}
	if err := s.mfaEvent(ctx, p, "auth.mfa.recovery", ferry.OutcomeOK, "10 new recovery codes"); err != nil {
		return nil, err
	}
	return codes, nil
}

// RemoveTOTP removes the principal's authenticator app, given a current
// code (or a recovery code) or their password. Their recovery codes go with
// it unless they still have a passkey. Audited as "auth.mfa.remove".
func (s *Service) RemoveTOTP(ctx context.Context, p *ferry.Principal, code, password string) error {
	const op = "auth.RemoveTOTP"
	u, err := s.db.UserByID(ctx, p.UserID)
	if err != nil {
		return err
	}
	switch {
	case password != "":
		hash := dummyHash
		if u.PasswordHash != "" {
			hash = u.PasswordHash
		}
		if len(password) > 1024 || !VerifyPassword(hash, password) || u.PasswordHash == "" {
			s.mfaEvent(ctx, p, "auth.mfa.remove", ferry.OutcomeDenied, "totp: wrong password")
			return ferry.E(op, ferry.Unauthenticated, "wrong password")
		}
	case code != "":
		if _, err := s.checkSecondFactor(ctx, u, code, p.Remote, p.Protocol); err != nil {
			s.mfaEvent(ctx, p, "auth.mfa.remove", ferry.OutcomeDenied, "totp: wrong code")
			return err
		}
	default:
		return ferry.E(op, ferry.Invalid, "enter a code from your app or your password")
	}
	had, err := s.db.DeleteTOTP(ctx, p.UserID)
	if err != nil {
		return err
	}
	if !had {
		return ferry.E(op, ferry.NotExist, "you have no authenticator app")
	}
	detail := "totp and recovery codes"
	if _, passkeys, err := s.db.SecondFactors(ctx, p.UserID); err != nil {
		return err
	} else if passkeys > 0 {
		detail = "totp; recovery codes kept (passkeys remain)"
	}
	return s.mfaEvent(ctx, p, "auth.mfa.remove", ferry.OutcomeOK, detail)
}

// VerifyTOTP checks a second factor typed by a user: a code from their
// authenticator app or one of their recovery codes (which work for any user
// with a second factor, a passkey-only user too). A code is accepted once
// (its time step, and every earlier one, is then refused); a recovery code
// works once. Every failure is ErrSecondFactor and is audited as
// "auth.login" denied; a success as "auth.mfa". Limiting attempts is the
// caller's job (Limiter), as for passwords.
func (s *Service) VerifyTOTP(ctx context.Context, userID, code, remote string) error {
	u, err := s.db.UserByID(ctx, userID)
	if ferry.KindOf(err) == ferry.NotExist {
		return ErrSecondFactor
	} else if err != nil {
		return err
	}
	_, err = s.checkSecondFactor(ctx, u, code, remote, "")
	return err
}

// VerifySecondFactor is VerifyTOTP for the web's second-factor page: it
// also returns which method succeeded, "totp" or "recovery" (for
// CompleteMFA).
func (s *Service) VerifySecondFactor(ctx context.Context, userID, code, remote, protocol string) (string, error) {
	u, err := s.db.UserByID(ctx, userID)
	if ferry.KindOf(err) == ferry.NotExist {
		return "", ErrSecondFactor
	} else if err != nil {
		return "", err
	}
	return s.checkSecondFactor(ctx, u, code, remote, protocol)
}

// checkSecondFactor is VerifyTOTP for a loaded user; it returns the method
// that succeeded: "totp" or "recovery".
func (s *Service) checkSecondFactor(ctx context.Context, u *ferry.User, code, remote, protocol string) (string, error) {
	deny := func(method, why string) error {
		if err := s.record(ctx, &ferry.Event{Action: "auth.login", Outcome: ferry.OutcomeDenied, Actor: u.Email, ActorID: u.ID, OrgID: u.OrgID,
			Remote: remote, Protocol: protocol, Detail: method + ": " + why}); err != nil {
			return err
		}
		return ErrSecondFactor
	}
	ok := func(method, detail string) (string, error) {
		return method, s.record(ctx, &ferry.Event{Action: "auth.mfa", Outcome: ferry.OutcomeOK, Actor: u.Email, ActorID: u.ID, OrgID: u.OrgID,
			Remote: remote, Protocol: protocol, Detail: detail})
	}
	if u.Disabled {
		return "", deny("totp", "user disabled")
	}
	if rc := normRecovery(code); rc != "" {
		// Recovery codes stand in for whatever second factor the user has.
		has, err := s.hasSecondFactor(ctx, u.ID)
		if err != nil {
			return "", err
		}
		if !has {
			return "", deny("recovery", "no second factor enrolled")
		}
		used, err := s.db.UseRecoveryCode(ctx, u.ID, recoveryHash(u.ID, rc), s.now())
		if err != nil {
			return "", err
		}
		if !used {
			return "", deny("recovery", "unknown or already used recovery code")
		}
		left, err := s.db.RecoveryCodesLeft(ctx, u.ID)
		if err != nil {
			return "", err
		}
		return ok("recovery", "recovery code; "+strconv.Itoa(left)+" left")
	}
	t, err := s.db.TOTPOf(ctx, u.ID)
	if ferry.KindOf(err) == ferry.NotExist || err == nil && !t.Confirmed {
		return "", deny("totp", "no authenticator enrolled")
	} else if err != nil {
		return "", err
	}
	secret, err := s.unwrapTOTP(ctx, u.OrgID, t)
	if err != nil {
		return "", err
	}
	step, expired := s.matchTOTP(secret, code)
	switch {
	case expired:
		return "", deny("totp", "expired code")
	case step < 0:
		return "", deny("totp", "wrong code")
	}
	fresh, err := s.db.UseTOTPStep(ctx, u.ID, step)
	if err != nil {
		return "", err
	}
	if !fresh {
		return "", deny("totp", "code already used")
	}
	return ok("totp", "totp")
}

// recoveryCodes returns ten new recovery codes and their hashes.
func (s *Service) recoveryCodes(userID string) (codes []string, hashes [][]byte, err error) {
	for range recoveryCount {
		b := make([]byte, 10)
		if _, err := io.ReadFull(s.rand, b); err != nil {
			return nil, nil, ferry.E("auth.recoveryCodes", ferry.Internal, err)
		}
		c := strings.ToLower(b32.EncodeToString(b)) // 16 characters
		codes = append(codes, c[0:4]+"-"+c[4:8]+"-"+c[8:12]+"-"+c[12:16])
		hashes = append(hashes, recoveryHash(userID, c))
	}
	return codes, hashes, nil
}

// normRecovery returns a recovery code in its canonical form (16 lower-case
// base32 characters), or "" if s cannot be one.
func normRecovery(s string) string {
	s = strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(s)))
	if len(s) != 16 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return ""
		}
	}
	return s
}

func recoveryHash(userID, code string) []byte {
	h := sha256.Sum256([]byte("ferry recovery code v1\x00" + userID + "\x00" + code))
	return h[:]
}

func (s *Service) mfaEvent(ctx context.Context, p *ferry.Principal, action string, outcome ferry.Outcome, detail string) error {
	return s.record(ctx, &ferry.Event{Action: action, Outcome: outcome, Actor: p.Email, ActorID: p.UserID, OrgID: p.OrgID,
		Session: p.SessionID, Remote: p.Remote, Protocol: p.Protocol, Object: p.UserID, Detail: detail})
}
