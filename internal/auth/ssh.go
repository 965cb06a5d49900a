package auth

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"ferry.dev/ferry/internal/ferry"
)

// dummyHash is an argon2id hash (of a random password nobody knows) with
// DefaultPasswordParams. A login for an unknown user is checked against it,
// so that it costs the same time as one for a known user.
const dummyHash = "$argon2id$v=19$m=65536,t=3,p=2$8BhGF/d7HWwloadk67BS2w$1Sfh/cAfDLn0fokAiNLHgnDCHQJaJVGnXSNzRPmzljI"

// ErrSSHDenied is the error of every refused SSH login, whatever the reason:
// the client learns nothing about which part was wrong.
var ErrSSHDenied = ferry.E("auth.SSH", ferry.Unauthenticated, "authentication failed")

// SSHPassword authenticates an SFTP login by email and password against the
// user's argon2id hash, the same hash as the web login. Unknown users cost
// the same time as known ones (a dummy hash is verified), and unknown users,
// wrong passwords, users without a password and disabled users all get
// ErrSSHDenied. Both outcomes are audited as "auth.ssh" with the method.
// Brute-force limiting is the caller's job (see Limiter), because it must
// happen before the password is hashed.
func (s *Service) SSHPassword(ctx context.Context, email, pw, remote string) (*ferry.Principal, error) {
	email = normEmail(email)
	u, err := s.db.UserByEmail(ctx, email)
	if err != nil && ferry.KindOf(err) != ferry.NotExist {
		return nil, err
	}
	hash := dummyHash
	if u != nil && u.PasswordHash != "" {
		hash = u.PasswordHash
	}
	ok := len(pw) <= 1024 && VerifyPassword(hash, pw)
	switch {
	case u == nil:
		return nil, s.sshDeny(ctx, nil, email, remote, "password", "unknown user")
	case u.PasswordHash == "":
		return nil, s.sshDeny(ctx, u, email, remote, "password", "no password set")
	case !ok:
		return nil, s.sshDeny(ctx, u, email, remote, "password", "wrong password")
	case u.Disabled:
		return nil, s.sshDeny(ctx, u, email, remote, "password", "user disabled")
	case s.guard.UserFrozen(u.ID):
		return nil, s.sshDeny(ctx, u, email, remote, "password", "frozen by the guard")
	}
	pol, err := s.db.Policy(ctx, u.OrgID)
	if err != nil {
		return nil, err
	}
	if pol.SFTPKeysOnly {
		return nil, s.sshDeny(ctx, u, email, remote, "password", "organisation allows SFTP with public keys only")
	}
	p := sshPrincipal(u, remote)
	if err := s.SSHAccepted(ctx, p, "password", ""); err != nil {
		return nil, err
	}
	return p, nil
}

// SSHPublicKey looks up whether key is one of the user's registered SSH keys
// (ferry admin sshkey add) and the user is enabled, and returns the principal
// it would authenticate. The SSH layer calls it when a client offers a key,
// before the client has proved that it holds the private key, so a success is
// not audited here: call SSHAccepted once the signature has been verified. A
// refusal is audited as "auth.ssh" denied and returns ErrSSHDenied.
func (s *Service) SSHPublicKey(ctx context.Context, email string, key ssh.PublicKey, remote string) (*ferry.Principal, error) {
	email = normEmail(email)
	fp := ssh.FingerprintSHA256(key)
	method := "publickey " + key.Type() + " " + fp
	u, err := s.db.UserByEmail(ctx, email)
	if ferry.KindOf(err) == ferry.NotExist {
		return nil, s.sshDeny(ctx, nil, email, remote, method, "unknown user")
	} else if err != nil {
		return nil, err
	}
	keys, err := s.db.SSHKeysByUser(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	want := key.Marshal()
	found := false
	for _, k := range keys {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey))
		if err != nil {
			s.logger.Warn("unparsable registered SSH key", "key", k.ID, "user", u.Email, "err", err)
			continue
		}
		if bytes.Equal(pub.Marshal(), want) {
			found = true
			break
		}
	}
	switch {
	case !found:
		return nil, s.sshDeny(ctx, u, email, remote, method, "key not registered")
	case u.Disabled:
		return nil, s.sshDeny(ctx, u, email, remote, method, "user disabled")
	case s.guard.UserFrozen(u.ID):
		return nil, s.sshDeny(ctx, u, email, remote, method, "frozen by the guard")
	}
	return sshPrincipal(u, remote), nil
}

// SSHAccepted audits a successful SFTP login of p by method (e.g.
// "publickey ssh-ed25519 SHA256:…") with an optional detail.
func (s *Service) SSHAccepted(ctx context.Context, p *ferry.Principal, method, detail string) error {
	ev := &ferry.Event{Time: s.now(), Action: "auth.ssh", Outcome: ferry.OutcomeOK, Actor: p.Email, ActorID: p.UserID, OrgID: p.OrgID,
		Remote: p.Remote, Protocol: "sftp", Detail: strings.TrimSpace(method + " " + detail)}
	if err := s.record(ctx, ev); err != nil {
		return err
	}
	// A login from an address range never seen for this user alerts, as
	// on the web.
	s.guard.SeenLogin(ctx, &ferry.User{ID: p.UserID, Email: p.Email, OrgID: p.OrgID}, p.Remote, "sftp")
	return nil
}

// SSHLockout audits that the address (an AddrKey) was locked out after too
// many failed logins.
func (s *Service) SSHLockout(ctx context.Context, addr, remote string, d time.Duration) error {
	ev := &ferry.Event{Time: s.now(), Action: "auth.lockout", Outcome: ferry.OutcomeDenied, Actor: "anonymous", Remote: remote,
		Protocol: "sftp", Detail: "address " + addr + " locked out for " + d.String() + " after repeated failed logins"}
	return s.record(ctx, ev)
}

// sshDeny audits a refused SSH login and returns ErrSSHDenied (or the audit
// error).
func (s *Service) sshDeny(ctx context.Context, u *ferry.User, email, remote, method, why string) error {
	ev := &ferry.Event{Time: s.now(), Action: "auth.ssh", Outcome: ferry.OutcomeDenied, Actor: "anonymous", Remote: remote,
		Protocol: "sftp", Detail: method + ": " + why}
	if u != nil {
		ev.Actor, ev.ActorID, ev.OrgID = u.Email, u.ID, u.OrgID
	} else {
		ev.Detail += " " + quoteName(email)
	}
	if err := s.record(ctx, ev); err != nil {
		return err
	}
	return ErrSSHDenied
}

func sshPrincipal(u *ferry.User, remote string) *ferry.Principal {
	return &ferry.Principal{UserID: u.ID, Email: u.Email, OrgID: u.OrgID, Role: u.Role, ServerAdmin: u.ServerAdmin, Remote: remote, Protocol: "sftp"}
}

func normEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// quoteName returns an attempted user name fit for an audit record: valid
// UTF-8, at most 64 bytes, quoted.
func quoteName(s string) string {
	s = strings.ToValidUTF8(s, "?")
	for len(s) > 64 {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return strconv.Quote(s)
}
