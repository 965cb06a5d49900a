package auth

import (
	"context"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/keys"
)

type dbTOTP = db.TOTP

// mfaConfig is what the second-factor code needs beyond the Service's
// database, audit log, clock and randomness.
type mfaConfig struct {
	keks keys.KEKProvider // wraps TOTP secrets
}

// SetKEKs gives the service the key-encryption keys that wrap TOTP secrets
// (the organisation's KEK, the one that wraps file keys). Without them TOTP
// enrolment and verification fail. Call it before the service is used.
func (s *Service) SetKEKs(k keys.KEKProvider) { s.mfa.keks = k }

// hasSecondFactor reports whether a user has a second factor enrolled: a
// confirmed TOTP authenticator, or a passkey where the organisation's policy
// allows passkeys.
func (s *Service) hasSecondFactor(ctx context.Context, userID string) (bool, error) {
	totp, passkeys, err := s.db.SecondFactors(ctx, userID)
	if err != nil || totp {
		return totp, err
	}
	if passkeys == 0 {
		return false, nil
	}
	u, err := s.db.UserByID(ctx, userID)
	if err != nil {
		return false, err
	}
	pol, err := s.db.Policy(ctx, u.OrgID)
	if err != nil {
		return false, err
	}
	return pol.Passkeys != ferry.PasskeysOff, nil
}

// SecondFactors tells the web pages what a user has enrolled: a confirmed
// TOTP authenticator, passkeys (counted only where the policy allows them),
// and the unused recovery codes that come with either.
type SecondFactors struct {
	TOTP          bool
	RecoveryLeft  int // unused recovery codes (counted when TOTP or Passkeys)
	Passkeys      int
	PasskeyPolicy string // ferry.PasskeysAllowed, Required or Off
	MFARequired   bool
}

// Factors returns what second factors the user has, and the policy on them.
func (s *Service) Factors(ctx context.Context, userID string) (*SecondFactors, error) {
	u, err := s.db.UserByID(ctx, userID)
	if err != nil {
		return nil, err
	}
	pol, err := s.db.Policy(ctx, u.OrgID)
	if err != nil {
		return nil, err
	}
	f := &SecondFactors{PasskeyPolicy: pol.Passkeys, MFARequired: pol.MFARequired}
	if f.TOTP, f.Passkeys, err = s.db.SecondFactors(ctx, userID); err != nil {
		return nil, err
	}
	if pol.Passkeys == ferry.PasskeysOff {
		f.Passkeys = 0
	}
	if f.TOTP || f.Passkeys > 0 {
		if f.RecoveryLeft, err = s.db.RecoveryCodesLeft(ctx, userID); err != nil {
			return nil, err
		}
	}
	return f, nil
}
