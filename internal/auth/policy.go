package auth

import (
	"context"
	_ "embed"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"ferry.dev/ferry/internal/ferry"
)

// Organisation policy: what internal/auth enforces of it beyond Login and
// Session (which read it at sign-in): the password rules, the bound that a
// tightened policy puts on sessions already open, and the lockout alert.

//go:embed commonpasswords.txt
var commonPasswordsText string

// commonPasswords is the blocklist: lower-case cores of common passwords.
var commonPasswords = func() map[string]bool {
	m := map[string]bool{}
	for _, line := range strings.Split(commonPasswordsText, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			m[line] = true
		}
	}
	return m
}()

// MaxPasswordLen is the longest password accepted, in bytes.
const MaxPasswordLen = 1024

// leet undoes the usual letter-for-digit and letter-for-symbol swaps.
var leet = strings.NewReplacer("0", "o", "1", "i", "3", "e", "4", "a", "5", "s", "7", "t", "8", "b", "9", "g", "@", "a", "$", "s", "!", "i", "|", "l", "+", "t")

// keyboardRuns are sequences a password made by sliding along the keyboard
// or counting follows.
var keyboardRuns = []string{
	"qwertyuiopasdfghjklzxcvbnm", "qwertzuiopasdfghjklyxcvbnm", "azertyuiopqsdfghjklmwxcvbn",
	"1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p", "abcdefghijklmnopqrstuvwxyz", "01234567890",
}

// passwordCore returns what is left of a password once it is lower-cased,
// digits, symbols and spaces are taken off both ends, and the usual
// substitutions inside are undone: "P@ssw0rd2024!" → "password".
func passwordCore(pw string) string {
	s := strings.ToLower(pw)
	s = strings.TrimFunc(s, func(r rune) bool { return !unicode.IsLetter(r) })
	s = leet.Replace(s)
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || r == '-' || r == '_' || r == '.' {
			return -1
		}
		return r
	}, s)
}

// isRun reports whether s (at least 4 characters) lies within one of the
// keyboard or counting sequences, forwards or backwards, possibly repeated.
func isRun(s string) bool {
	if len(s) < 4 {
		return false
	}
	rev := []rune(s)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	for _, cand := range []string{s, string(rev)} {
		for _, run := range keyboardRuns {
			// Every 4-character window must be in the run.
			ok := true
			for i := 0; i+4 <= len(cand); i++ {
				if !strings.Contains(run, cand[i:i+4]) && !strings.Contains(run+run, cand[i:i+4]) {
					ok = false
					break
				}
			}
			if ok {
				return true
			}
		}
	}
	return false
}

// repeats reports whether s is a shorter string repeated (abcabcabc).
func repeats(s string) bool {
	for n := 1; n <= len(s)/2; n++ {
		if len(s)%n == 0 && strings.Repeat(s[:n], len(s)/n) == s {
			return true
		}
	}
	return false
}

// CheckPassword reports whether pw may be set as a password under pol for
// the account email of the organisation named org. It refuses passwords
// shorter than the policy's minimum (never below MinPasswordLen characters)
// or longer than MaxPasswordLen bytes, and weak ones: built on a common
// password (the embedded blocklist, after digits and symbols at either end
// and the usual substitutions are undone), made of fewer than 5 different
// characters, a keyboard or counting run, a repeated chunk, only digits, or
// the account's or organisation's own name. The error, kind Invalid, says
// which rule failed, never the password.
func CheckPassword(pol *ferry.Policy, email, org, pw string) error {
	const op = "auth.CheckPassword"
	minLen := MinPasswordLen
	if pol != nil && pol.MinPasswordLen > minLen {
		minLen = pol.MinPasswordLen
	}
	n := utf8.RuneCountInString(pw)
	switch {
	case n < minLen:
		return ferry.Errorf(op, ferry.Invalid, "the password must be at least %d characters long", minLen)
	case len(pw) > MaxPasswordLen:
		return ferry.Errorf(op, ferry.Invalid, "the password is longer than %d bytes", MaxPasswordLen)
	case !utf8.ValidString(pw) || strings.ContainsFunc(pw, unicode.IsControl):
		return ferry.E(op, ferry.Invalid, "the password may not contain control characters")
	}
	weak := ferry.E(op, ferry.Invalid, "that password is too easy to guess: it is a common password or follows a common pattern; choose a longer phrase of unrelated words")
	lower := strings.ToLower(pw)
	distinct := map[rune]bool{}
	digits := true
	for _, r := range lower {
		distinct[r] = true
		digits = digits && r >= '0' && r <= '9'
	}
	if len(distinct) < 5 || digits || isRun(lower) || repeats(lower) {
		return weak
	}
	core := passwordCore(pw)
	if core == "" || commonPasswords[core] || isRun(core) || repeats(core) {
		return weak
	}
	// A common word doubled or followed by another common word
	// ("passwordpassword", "welcomeadmin").
	for i := 3; i < len(core)-2; i++ {
		if commonPasswords[core[:i]] && commonPasswords[core[i:]] {
			return weak
		}
	}
	// The account's own names: the email's local part and domain, the
	// organisation.
	local, domain, _ := strings.Cut(strings.ToLower(email), "@")
	domain, _, _ = strings.Cut(domain, ".")
	for _, name := range []string{local, domain, strings.ToLower(org)} {
		name = strings.Map(func(r rune) rune {
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				return r
			}
			return -1
		}, name)
		if len(name) >= 3 && (core == name || strings.Contains(core, name) && utf8.RuneCountInString(core)-utf8.RuneCountInString(name) < 8) {
			return weak
		}
	}
	return nil
}

// CheckNewPassword is CheckPassword under the policy of the organisation
// orgID (its default policy when it has none).
func (s *Service) CheckNewPassword(ctx context.Context, orgID, email, pw string) error {
	pol := ferry.DefaultPolicy(orgID)
	org := ""
	if orgID != "" {
		var err error
		if pol, err = s.db.Policy(ctx, orgID); err != nil {
			return err
		}
		if o, err := s.db.OrgByID(ctx, orgID); err == nil {
			org = o.Name
		}
	}
	return CheckPassword(pol, email, org, pw)
}

// ChangePassword sets a new password for the principal, who must give the
// current one. The new one must pass the organisation's policy. On success
// every other session of the user ends (the one making the change stays) and
// the change is audited as "password.change"; a wrong current password is
// ErrLoginFailed and audited as denied (the caller counts it with the
// Limiter, as a login).
func (s *Service) ChangePassword(ctx context.Context, p *ferry.Principal, current, next string) error {
	const op = "auth.ChangePassword"
	ev := &ferry.Event{Action: "password.change", Outcome: ferry.OutcomeOK, Actor: p.Email, ActorID: p.UserID, OrgID: p.OrgID,
		Session: p.SessionID, Token: p.TokenID, Remote: p.Remote, Protocol: p.Protocol, Object: p.UserID}
	u, err := s.db.UserByID(ctx, p.UserID)
	if err != nil {
		return err
	}
	hash := dummyHash
	if u.PasswordHash != "" {
		hash = u.PasswordHash
	}
	if len(current) > MaxPasswordLen || !VerifyPassword(hash, current) || u.PasswordHash == "" || u.Disabled {
		ev.Outcome, ev.Detail = ferry.OutcomeDenied, "wrong current password"
		if err := s.record(ctx, ev); err != nil {
			return err
		}
		return ferry.E(op, ferry.Unauthenticated, "the current password is wrong")
	}
	if current == next {
		return ferry.E(op, ferry.Invalid, "the new password is the same as the current one")
	}
	if err := s.CheckNewPassword(ctx, u.OrgID, u.Email, next); err != nil {
		return err
	}
	h, err := HashPassword(next, DefaultPasswordParams, s.rand)
	if err != nil {
		return err
	}
	if err := s.db.SetPasswordHash(ctx, u.ID, h); err != nil {
		return err
	}
	ended := 0
	sessions, err := s.db.SessionsOfUser(ctx, u.ID, s.now())
	if err != nil {
		return err
	}
	for _, x := range sessions {
		if x.ID != p.SessionID {
			if err := s.db.RevokeSession(ctx, x.ID); err != nil {
				return err
			}
			ended++
		}
	}
	ev.Detail = "other sessions ended: " + strconv.Itoa(ended)
	return s.record(ctx, ev)
}

// withinPolicy reports whether a session still fits its organisation's
// current policy: a policy tightened after sign-in (shorter idle or absolute
// timeouts) also ends the sessions already open.
func withinPolicy(sess *ferry.Session, pol *ferry.Policy, now time.Time) bool {
	if sess.Stage != ferry.SessionFull {
		return true // the ten minutes of the second-factor stage are shorter still
	}
	if pol.SessionMax > 0 && now.Sub(sess.Created) >= pol.SessionMax {
		return false
	}
	if pol.SessionIdle > 0 && now.Sub(sess.LastSeen) > pol.SessionIdle {
		return false
	}
	return true
}

// AlertLockout audits a lock set by the Limiter as "alert.lockout" (which
// the guard turns into a notification). It is the Limiter's OnLock in the
// server.
func (s *Service) AlertLockout(lk Lock) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev := &ferry.Event{Action: "alert.lockout", Outcome: ferry.OutcomeDenied, Actor: "anonymous", Remote: lk.Remote,
		Protocol: lk.Protocol, Detail: lk.String()}
	if lk.Account != "" {
		ev.Actor = quoteName(lk.Account)
		if u, err := s.db.UserByEmail(ctx, lk.Account); err == nil {
			ev.Actor, ev.ActorID, ev.OrgID = u.Email, u.ID, u.OrgID
		}
	}
	if err := s.record(ctx, ev); err != nil {
		s.logger.Error("audit lockout alert", "lock", lk.String(), "err", err)
	}
}

// ParseCIDRs parses a comma-separated list of address ranges (a bare
// address is a range of one); "" and "none" are the empty list (any
// address).
func ParseCIDRs(v string) ([]netip.Prefix, error) {
	v = strings.TrimSpace(v)
	if v == "" || v == "none" {
		return nil, nil
	}
	return ferry.ParsePrefixes(strings.Split(v, ","))
}

// SecondFactorDue reports whether a user must give a second factor after
// their password or key on a protocol that can only ask for a code (SFTP):
// their organisation requires one, or they have one enrolled (a TOTP
// authenticator, or a passkey where the policy allows passkeys — which SFTP
// cannot use, so such a user answers with a recovery code, or enrols a TOTP
// authenticator for SFTP).
func (s *Service) SecondFactorDue(ctx context.Context, userID string) (bool, error) {
	u, err := s.db.UserByID(ctx, userID)
	if err != nil {
		return false, err
	}
	pol, err := s.db.Policy(ctx, u.OrgID)
	if err != nil || pol.MFARequired {
		return pol != nil && pol.MFARequired, err
	}
	// As at web sign-in: a passkey counts only where the policy allows
	// passkeys (otherwise a passkey-only user would be asked over SFTP for
	// a code that cannot be accepted).
	return s.hasSecondFactor(ctx, userID)
}
