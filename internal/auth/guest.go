package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
)

// Package guests: an external recipient of a package proves they read the
// mailbox the package went to by entering a one-time code sent there, and
// then holds a short guest session scoped to that one package. Codes are six
// digits, valid GuestCodeTTL, GuestCodeTries wrong tries, single-use, and
// stored only as a hash; guest session secrets are 256-bit random values,
// stored only as a hash, like user sessions.

// Guest code and session rules.
const (
	GuestCodeTTL    = 10 * time.Minute
	GuestCodeTries  = 5
	GuestCodesPer10 = 3 // codes a recipient may request per 10 minutes
	GuestSessionTTL = time.Hour
)

var errGuestCode = ferry.E("auth.VerifyGuestCode", ferry.Permission, "the code is wrong or no longer valid")

func guestCodeHash(recipientID, code string) []byte {
	h := sha256.Sum256([]byte("ferry guest code v1\x00" + recipientID + "\x00" + code))
	return h[:]
}

// IssueGuestCode makes a new one-time code for a package recipient (ending
// any earlier one) and returns it for mailing. At most GuestCodesPer10 are
// issued per recipient in ten minutes (Quota).
func (s *Service) IssueGuestCode(ctx context.Context, r *ferry.PackageRecipient) (string, error) {
	const op = "auth.IssueGuestCode"
	now := s.now().UTC()
	n, err := s.db.CountGuestCodes(ctx, r.ID, now.Add(-10*time.Minute))
	if err != nil {
		return "", err
	}
	if n >= GuestCodesPer10 {
		return "", ferry.E(op, ferry.Quota, "a code was sent several times already; wait a few minutes and try again")
	}
	v, err := rand.Int(s.rand, big.NewInt(1_000_000))
	if err != nil {
		return "", ferry.E(op, ferry.Internal, err)
	}
	code := fmt.Sprintf("%06d", v.Int64())
	c := &db.GuestCode{ID: ferry.NewID(s.rand), RecipientID: r.ID, Hash: guestCodeHash(r.ID, code), Expires: now.Add(GuestCodeTTL), Created: now}
	if err := s.db.AddGuestCode(ctx, c); err != nil {
		return "", err
	}
	return code, nil
}

// VerifyGuestCode checks a recipient's one-time code and, if right, uses it
// up and starts a guest session for the package (until GuestSessionTTL or
// the package's expiry, whichever is first). It returns the session secret
// for the cookie. A wrong, expired, used or exhausted code is the same
// Permission error; every wrong try is audited as package.otp.fail.
func (s *Service) VerifyGuestCode(ctx context.Context, pkg *ferry.Package, r *ferry.PackageRecipient, code, remote string) (string, *db.GuestSession, error) {
	const op = "auth.VerifyGuestCode"
	ev := &ferry.Event{Action: "package.otp.fail", Outcome: ferry.OutcomeDenied, Actor: r.Email, OrgID: pkg.OrgID, Object: pkg.ID, PartyID: pkg.PartyID, Remote: remote, Protocol: "https"}
	fail := func(why string) error {
		ev.Detail = why
		if err := s.record(ctx, ev); err != nil {
			return err
		}
		return errGuestCode
	}
	c, err := s.db.LatestGuestCode(ctx, r.ID)
	if ferry.KindOf(err) == ferry.NotExist {
		return "", nil, fail("no code issued")
	} else if err != nil {
		return "", nil, err
	}
	now := s.now()
	if c.Used || !now.Before(c.Expires) || c.Tries >= GuestCodeTries {
		return "", nil, fail("code used, expired or out of tries")
	}
	// The try is taken before the guess is compared, so that parallel
	// guesses get no more than GuestCodeTries between them.
	ok, n, err := s.db.TryGuestCode(ctx, c.ID, GuestCodeTries)
	if err != nil {
		return "", nil, err
	} else if !ok {
		return "", nil, fail("code used, expired or out of tries")
	}
	if len(code) > 20 || subtle.ConstantTimeCompare(guestCodeHash(r.ID, code), c.Hash) != 1 {
		if n >= GuestCodeTries { // the last try: the code is used up
			if _, err := s.db.UseGuestCode(ctx, c.ID); err != nil {
				return "", nil, err
			}
		}
		return "", nil, fail(fmt.Sprintf("wrong code (try %d of %d)", n, GuestCodeTries))
	}
	if ok, err = s.db.UseGuestCode(ctx, c.ID); err != nil {
		return "", nil, err
	} else if !ok {
		return "", nil, fail("code already used")
	}
	var idb [8]byte
	secret := make([]byte, 32)
	if _, err := io.ReadFull(s.rand, idb[:]); err != nil {
		return "", nil, ferry.E(op, ferry.Internal, err)
	}
	if _, err := io.ReadFull(s.rand, secret); err != nil {
		return "", nil, ferry.E(op, ferry.Internal, err)
	}
	sec := base64.RawURLEncoding.EncodeToString(secret)
	exp := now.UTC().Add(GuestSessionTTL)
	if pkg.Expires.Before(exp) {
		exp = pkg.Expires
	}
	gs := &db.GuestSession{ID: hex.EncodeToString(idb[:]), Hash: hashSecret(sec), RecipientID: r.ID, PackageID: pkg.ID, Created: now.UTC(), Expires: exp}
	if err := s.db.CreateGuestSession(ctx, gs); err != nil {
		return "", nil, err
	}
	ev.Action, ev.Outcome, ev.Session, ev.Detail = "package.otp.ok", ferry.OutcomeOK, gs.ID, "guest session until "+exp.Format(time.RFC3339)
	if err := s.record(ctx, ev); err != nil {
		return "", nil, err
	}
	return sec, gs, nil
}

// GuestSession authenticates a guest session cookie's secret for the
// package id and returns the guest's principal. Unknown, revoked, expired
// sessions and sessions of another package are the same Unauthenticated
// error.
func (s *Service) GuestSession(ctx context.Context, secret, packageID, remote string) (*ferry.Principal, error) {
	if secret == "" || len(secret) > 100 {
		return nil, errSession
	}
	gs, err := s.db.GuestSessionByHash(ctx, hashSecret(secret))
	if ferry.KindOf(err) == ferry.NotExist {
		return nil, errSession
	} else if err != nil {
		return nil, err
	}
	if gs.Revoked || !s.now().Before(gs.Expires) || gs.PackageID != packageID {
		return nil, errSession
	}
	r, err := s.db.RecipientByID(ctx, gs.RecipientID)
	if err != nil {
		return nil, err
	}
	pkg, err := s.db.PackageByID(ctx, gs.PackageID)
	if err != nil {
		return nil, err
	}
	return &ferry.Principal{Guest: r.Email, Email: r.Email, PackageID: pkg.ID, OrgID: pkg.OrgID, SessionID: gs.ID, Remote: remote, Protocol: "https"}, nil
}
