package auth

import (
	"context"
	"strings"

	"golang.org/x/crypto/ssh"

	"ferry.dev/ferry/internal/ferry"
)

// SSHKeys lists the principal's own SSH public keys (for SFTP).
func (s *Service) SSHKeys(ctx context.Context, p *ferry.Principal) ([]*ferry.SSHKey, error) {
	return s.db.SSHKeysByUser(ctx, p.UserID)
}

// ParseSSHKey parses one SSH public key (one line of authorized_keys
// format, as in a .pub file) into a key record for userID, not yet stored.
// Every SSH key is registered through it, by its owner (AddOwnSSHKey) or by
// an administrator (internal/admin).
func (s *Service) ParseSSHKey(userID, authorizedKey string) (*ferry.SSHKey, ssh.PublicKey, error) {
	const op = "auth.ParseSSHKey"
	if len(authorizedKey) > 16<<10 {
		return nil, nil, ferry.E(op, ferry.Invalid, "that is too long for an SSH public key")
	}
	pub, comment, _, rest, err := ssh.ParseAuthorizedKey([]byte(authorizedKey))
	if err != nil || strings.TrimSpace(string(rest)) != "" {
		return nil, nil, ferry.E(op, ferry.Invalid, "paste one SSH public key, as in authorized_keys or a .pub file (ssh-ed25519 AAAA… comment)")
	}
	return &ferry.SSHKey{ID: ferry.NewID(s.rand), UserID: userID, Fingerprint: ssh.FingerprintSHA256(pub),
		PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))), Comment: clip(comment, 200), Created: s.now().UTC()}, pub, nil
}

// AddOwnSSHKey registers an SSH public key (one line of authorized_keys
// format) for the principal's own SFTP logins. Audited as "sshkey.add".
func (s *Service) AddOwnSSHKey(ctx context.Context, p *ferry.Principal, authorizedKey string) (*ferry.SSHKey, error) {
	const op = "auth.AddOwnSSHKey"
	k, pub, err := s.ParseSSHKey(p.UserID, authorizedKey)
	if err != nil {
		return nil, err
	}
	if err := s.db.AddSSHKey(ctx, k); err != nil {
		if ferry.KindOf(err) == ferry.Exist {
			return nil, ferry.E(op, ferry.Exist, "that key is already registered")
		}
		return nil, err
	}
	if err := s.record(ctx, &ferry.Event{Action: "sshkey.add", Outcome: ferry.OutcomeOK, Actor: p.Email, ActorID: p.UserID, OrgID: p.OrgID,
		Session: p.SessionID, Token: p.TokenID, Remote: p.Remote, Object: k.ID, Detail: "own key " + pub.Type() + " " + k.Fingerprint}); err != nil {
		return nil, err
	}
	return k, nil
}

// RemoveOwnSSHKey deletes one of the principal's own SSH keys; another
// user's key is NotExist. Audited as "sshkey.remove".
func (s *Service) RemoveOwnSSHKey(ctx context.Context, p *ferry.Principal, id string) error {
	if err := s.db.DeleteSSHKey(ctx, id, p.UserID); err != nil {
		if ferry.KindOf(err) == ferry.NotExist {
			return ferry.E("auth.RemoveOwnSSHKey", ferry.NotExist, "no such key")
		}
		return err
	}
	return s.record(ctx, &ferry.Event{Action: "sshkey.remove", Outcome: ferry.OutcomeOK, Actor: p.Email, ActorID: p.UserID, OrgID: p.OrgID,
		Session: p.SessionID, Token: p.TokenID, Remote: p.Remote, Object: id})
}
