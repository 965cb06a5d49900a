// Package admin holds the administrative operations of a Ferry server —
// organisations, parties, users, folders, grants, tokens and SSH keys — for
// the admin API (and through it the `ferry admin` CLI). Every call checks that
// the principal may administer the organisation concerned and is audited,
// denials included.
package admin

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/mod/sumdb/note"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/keys"
	"ferry.dev/ferry/internal/transfer"
)

// Service performs administrative operations.
type Service struct {
	db     *db.DB
	auth   *auth.Service
	tr     *transfer.Service
	keks   keys.KEKProvider
	log    *audit.Log
	now    func() time.Time
	rand   io.Reader
	logger *slog.Logger

	verifier       note.Verifier // audit checkpoint key (SetAuditVerifier)
	mailer         Mailer        // invitation mails (SetMail, invite.go)
	checkpointFile string
}

// New returns an admin service.
func New(d *db.DB, a *auth.Service, tr *transfer.Service, keks keys.KEKProvider, log *audit.Log, now func() time.Time, rand io.Reader, logger *slog.Logger) *Service {
	return &Service{db: d, auth: a, tr: tr, keks: keks, log: log, now: now, rand: rand, logger: logger}
}

func (s *Service) event(p *ferry.Principal, action string) *ferry.Event {
	return &ferry.Event{Action: action, Outcome: ferry.OutcomeOK, Actor: p.Name(), ActorID: p.UserID, OrgID: p.OrgID,
		Remote: p.Remote, Session: p.SessionID, Token: p.TokenID, Protocol: p.Protocol}
}

// done appends ev with the outcome err implies and returns err (or the audit
// error when the action succeeded but could not be recorded).
func (s *Service) done(ctx context.Context, ev *ferry.Event, err error) error {
	if err != nil {
		ev.Outcome = ferry.OutcomeError
		if k := ferry.KindOf(err); k == ferry.Permission || k == ferry.Unauthenticated {
			ev.Outcome = ferry.OutcomeDenied
		}
		if ev.Detail != "" {
			ev.Detail += "; "
		}
		ev.Detail += ferry.Message(err)
	}
	if ev.OrgID != "" && ev.Org == "" {
		if o, oerr := s.db.OrgByID(ctx, ev.OrgID); oerr == nil {
			ev.Org = o.Name
		}
	}
	if ev.PartyID != "" && ev.Party == "" {
		if pt, perr := s.db.PartyByID(ctx, ev.PartyID); perr == nil {
			ev.Party = pt.Name
		}
	}
	aerr := s.log.Append(context.WithoutCancel(ctx), ev)
	if err != nil {
		if aerr != nil {
			s.logger.Error("audit append failed", "action", ev.Action, "err", aerr)
		}
		return err
	}
	return aerr
}

// org resolves an organisation by name and checks that p may administer it.
func (s *Service) org(ctx context.Context, op string, p *ferry.Principal, name string) (*ferry.Org, error) {
	if name == "" {
		return nil, ferry.E(op, ferry.Invalid, "an organisation name is required (--org)")
	}
	o, err := s.db.OrgByName(ctx, name)
	if ferry.KindOf(err) == ferry.NotExist {
		if !p.Operator && !p.ServerAdmin {
			return nil, ferry.E(op, ferry.Permission, "not an administrator of that organisation")
		}
		return nil, ferry.Errorf(op, ferry.NotExist, "organisation %q does not exist", name)
	} else if err != nil {
		return nil, err
	}
	if p.Operator || p.ServerAdmin || (p.Role == ferry.RoleAdmin && p.OrgID == o.ID) {
		return o, nil
	}
	return nil, ferry.E(op, ferry.Permission, "not an administrator of that organisation")
}

// scoped returns a principal acting inside org with admin rights, for
// operations delegated to the transfer service.
func scoped(p *ferry.Principal, o *ferry.Org) *ferry.Principal {
	q := *p
	q.OrgID = o.ID
	if !q.Operator {
		q.Role = ferry.RoleAdmin
	}
	return &q
}

// normalizeEmail validates an address and lower-cases it.
func normalizeEmail(op, email string) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || len(email) > 254 {
		return "", ferry.Errorf(op, ferry.Invalid, "%q is not a valid email address", email)
	}
	return email, nil
}

// validName checks an organisation or party name.
func validName(op, what, name string) error {
	if strings.TrimSpace(name) != name || name == "" || len(name) > 100 {
		return ferry.Errorf(op, ferry.Invalid, "%s name must be 1-100 characters without surrounding spaces", what)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == '/' {
			return ferry.Errorf(op, ferry.Invalid, "%s name may not contain control characters or '/'", what)
		}
	}
	return nil
}

// CreateOrg creates an organisation, its root folder and its key-encryption
// key. Only the operator and server administrators may.
func (s *Service) CreateOrg(ctx context.Context, p *ferry.Principal, name string) (*ferry.Org, error) {
	const op = "admin.CreateOrg"
	ev := s.event(p, "org.create")
	ev.Detail = "name " + name
	o, err := s.createOrg(ctx, op, p, name)
	if o != nil {
		ev.OrgID, ev.Object = o.ID, o.ID
	}
	return o, s.done(ctx, ev, err)
}

func (s *Service) createOrg(ctx context.Context, op string, p *ferry.Principal, name string) (*ferry.Org, error) {
	if !p.Operator && !p.ServerAdmin {
		return nil, ferry.E(op, ferry.Permission, "only server administrators create organisations")
	}
	if err := validName(op, "organisation", name); err != nil {
		return nil, err
	}
	o := &ferry.Org{ID: ferry.NewID(s.rand), Name: name, RetentionDays: ferry.DefaultRetentionDays, Created: s.now().UTC()}
	if err := s.keks.Ensure(ctx, o.ID); err != nil {
		return nil, err
	}
	if err := s.db.CreateOrg(ctx, o, ferry.NewID(s.rand)); err != nil {
		if ferry.KindOf(err) == ferry.Exist {
			return nil, ferry.Errorf(op, ferry.Exist, "organisation %q already exists", name)
		}
		return nil, err
	}
	return o, nil
}

// CreateParty creates a party of an organisation with its contacts.
func (s *Service) CreateParty(ctx context.Context, p *ferry.Principal, orgName, name string, contacts []string) (*ferry.Party, error) {
	const op = "admin.CreateParty"
	ev := s.event(p, "party.create")
	ev.Party = name
	pt, err := func() (*ferry.Party, error) {
		o, err := s.org(ctx, op, p, orgName)
		if err != nil {
			return nil, err
		}
		ev.OrgID = o.ID
		if err := validName(op, "party", name); err != nil {
			return nil, err
		}
		pt := &ferry.Party{ID: ferry.NewID(s.rand), OrgID: o.ID, Name: name, Created: s.now().UTC()}
		for _, c := range contacts {
			e, err := normalizeEmail(op, c)
			if err != nil {
				return nil, err
			}
			pt.Contacts = append(pt.Contacts, e)
		}
		ev.Detail = "contacts " + strings.Join(pt.Contacts, ",")
		if err := s.db.CreateParty(ctx, pt); err != nil {
			if ferry.KindOf(err) == ferry.Exist {
				return nil, ferry.Errorf(op, ferry.Exist, "party %q already exists (or a contact is repeated)", name)
			}
			return nil, err
		}
		ev.Object, ev.PartyID = pt.ID, pt.ID
		return pt, nil
	}()
	return pt, s.done(ctx, ev, err)
}

// UserSpec describes a new user.
type UserSpec struct {
	Org      string
	Email    string
	Role     string
	Party    string
	Password string // optional; hashed with argon2id, never stored in clear
}

// CreateUser creates a user.
func (s *Service) CreateUser(ctx context.Context, p *ferry.Principal, spec UserSpec) (*ferry.User, error) {
	const op = "admin.CreateUser"
	ev := s.event(p, "user.create")
	u, err := func() (*ferry.User, error) {
		o, err := s.org(ctx, op, p, spec.Org)
		if err != nil {
			return nil, err
		}
		ev.OrgID = o.ID
		email, err := normalizeEmail(op, spec.Email)
		if err != nil {
			return nil, err
		}
		ev.Detail = "email " + email
		if spec.Role == "" {
			spec.Role = string(ferry.RoleUser)
		}
		role, err := ferry.ParseRole(spec.Role)
		if err != nil {
			return nil, err
		}
		ev.Detail += " role " + string(role)
		u := &ferry.User{ID: ferry.NewID(s.rand), OrgID: o.ID, Email: email, Role: role, Created: s.now().UTC()}
		if spec.Party != "" {
			pt, err := s.db.PartyByName(ctx, o.ID, spec.Party)
			if ferry.KindOf(err) == ferry.NotExist {
				return nil, ferry.Errorf(op, ferry.NotExist, "party %q does not exist in %s", spec.Party, o.Name)
			} else if err != nil {
				return nil, err
			}
			u.PartyID = pt.ID
			ev.PartyID, ev.Party = pt.ID, pt.Name
		}
		if role == ferry.RoleExternal && u.PartyID == "" {
			return nil, ferry.E(op, ferry.Invalid, "an external user needs a party (--party)")
		}
		if spec.Password != "" {
			if err := s.auth.CheckNewPassword(ctx, o.ID, email, spec.Password); err != nil {
				return nil, err
			}
			u.PasswordHash, err = auth.HashPassword(spec.Password, auth.DefaultPasswordParams, s.rand)
			if err != nil {
				return nil, err
			}
		}
		if err := s.db.CreateUser(ctx, u); err != nil {
			if ferry.KindOf(err) == ferry.Exist {
				return nil, ferry.Errorf(op, ferry.Exist, "a user with email %s already exists", email)
			}
			return nil, err
		}
		ev.Object = u.ID
		return u, nil
	}()
	if err = s.done(ctx, ev, err); err == nil && u.Role == ferry.RoleAdmin {
		err = s.alertAdmin(ctx, ev, "administrator created: "+u.Email)
	}
	return u, err
}

// user resolves a user by email and checks p may administer them.
func (s *Service) user(ctx context.Context, op string, p *ferry.Principal, email string) (*ferry.User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	u, err := s.db.UserByEmail(ctx, email)
	if ferry.KindOf(err) == ferry.NotExist {
		if !p.Operator && !p.ServerAdmin && p.Role != ferry.RoleAdmin {
			return nil, ferry.E(op, ferry.Permission, "not an administrator")
		}
		return nil, ferry.Errorf(op, ferry.NotExist, "no user with email %q", email)
	} else if err != nil {
		return nil, err
	}
	if p.Operator || p.ServerAdmin || (p.Role == ferry.RoleAdmin && p.OrgID == u.OrgID) {
		return u, nil
	}
	if p.Role == ferry.RoleAdmin {
		return nil, ferry.Errorf(op, ferry.NotExist, "no user with email %q", email)
	}
	return nil, ferry.E(op, ferry.Permission, "not an administrator")
}

// SetRole changes a user's role. The user's sessions end (they sign in again
// under the new role: a session never carries a privilege it was not
// created with), and a raise to administrator is also an "alert.admin"
// event.
func (s *Service) SetRole(ctx context.Context, p *ferry.Principal, email string, role ferry.Role) error {
	const op = "admin.SetRole"
	ev := s.event(p, "user.role")
	ev.Detail = "email " + email
	u, err := s.user(ctx, op, p, email)
	if err == nil {
		ev.Object, ev.OrgID = u.ID, u.OrgID
		ev.Detail += ": " + string(u.Role) + " → " + string(role)
		if err = s.db.SetUserRole(ctx, u.ID, role); err == nil {
			var n int64
			n, err = s.db.RevokeUserSessions(ctx, u.ID)
			ev.Detail += fmt.Sprintf("; %d sessions ended", n)
		}
	}
	if err := s.done(ctx, ev, err); err != nil {
		return err
	}
	if role == ferry.RoleAdmin && u.Role != ferry.RoleAdmin {
		return s.alertAdmin(ctx, ev, "user raised to administrator: "+u.Email)
	}
	return nil
}

// DisableUser disables a user; their tokens stop working at once.
func (s *Service) DisableUser(ctx context.Context, p *ferry.Principal, email string) error {
	const op = "admin.DisableUser"
	ev := s.event(p, "user.disable")
	ev.Detail = "email " + email
	u, err := s.user(ctx, op, p, email)
	if err == nil {
		ev.Object, ev.OrgID = u.ID, u.OrgID
		err = s.db.SetUserDisabled(ctx, u.ID, true)
	}
	return s.done(ctx, ev, err)
}

// CreateFolder creates a folder (and missing parents) in an organisation,
// optionally owned by a party.
func (s *Service) CreateFolder(ctx context.Context, p *ferry.Principal, orgName, path, partyName string) (*ferry.Folder, error) {
	const op = "admin.CreateFolder"
	o, err := s.org(ctx, op, p, orgName)
	if err != nil {
		ev := s.event(p, "folder.create")
		ev.Path = path
		return nil, s.done(ctx, ev, err)
	}
	partyID := ""
	if partyName != "" {
		pt, err := s.db.PartyByName(ctx, o.ID, partyName)
		if ferry.KindOf(err) == ferry.NotExist {
			return nil, ferry.Errorf(op, ferry.NotExist, "party %q does not exist in %s", partyName, o.Name)
		} else if err != nil {
			return nil, err
		}
		partyID = pt.ID
	}
	return s.tr.CreateFolder(ctx, scoped(p, o), path, partyID)
}

// folderParty is the party whose data a folder holds, for the audit record
// of a change to who may reach it ("" for none, or when it cannot be told).
func (s *Service) folderParty(ctx context.Context, fo *ferry.Folder) string {
	if s.tr == nil {
		return ""
	}
	id, err := s.tr.FolderParty(ctx, fo)
	if err != nil {
		return ""
	}
	return id
}

// Grant sets a user's permissions on a folder of their organisation
// (inherited by sub-folders). Empty perms ("none") removes the grant.
func (s *Service) Grant(ctx context.Context, p *ferry.Principal, orgName, email, path, perms string) error {
	const op = "admin.Grant"
	ev := s.event(p, "grant.set")
	ev.Path = path
	ev.Detail = "user " + email + " perms " + perms
	err := func() error {
		o, err := s.org(ctx, op, p, orgName)
		if err != nil {
			return err
		}
		ev.OrgID = o.ID
		var perm ferry.Perm
		if perms != "none" {
			if perm, err = ferry.ParsePerms(perms); err != nil {
				return err
			}
		}
		u, err := s.user(ctx, op, p, email)
		if err != nil {
			return err
		}
		if u.OrgID != o.ID {
			return ferry.Errorf(op, ferry.Invalid, "%s is not a user of %s", u.Email, o.Name)
		}
		clean, err := ferry.CleanPath(path)
		if err != nil {
			return err
		}
		ev.Path = clean
		fo, err := s.db.FolderByPath(ctx, o.ID, clean)
		if ferry.KindOf(err) == ferry.NotExist {
			return ferry.Errorf(op, ferry.NotExist, "folder %s does not exist in %s", clean, o.Name)
		} else if err != nil {
			return err
		}
		ev.Object = fo.ID
		ev.PartyID = s.folderParty(ctx, fo)
		return s.db.SetGrant(ctx, ferry.Grant{FolderID: fo.ID, UserID: u.ID, Perms: perm})
	}()
	return s.done(ctx, ev, err)
}

// CreateToken mints an API token for a user; the token string is returned
// once and never stored.
func (s *Service) CreateToken(ctx context.Context, p *ferry.Principal, email string, ttl time.Duration) (string, *ferry.Token, error) {
	const op = "admin.CreateToken"
	ev := s.event(p, "token.create")
	ev.Detail = "user " + email
	var tok string
	var t *ferry.Token
	err := func() error {
		if ttl < 0 {
			return ferry.E(op, ferry.Invalid, "--expires must be positive")
		}
		u, err := s.user(ctx, op, p, email)
		if err != nil {
			return err
		}
		if u.Disabled {
			return ferry.Errorf(op, ferry.Invalid, "user %s is disabled", u.Email)
		}
		ev.OrgID = u.OrgID
		tok, t, err = s.auth.CreateToken(ctx, u.ID, ttl)
		if err != nil {
			return err
		}
		ev.Object, ev.Token = t.ID, t.ID
		if !t.Expires.IsZero() {
			ev.Detail += " expires " + t.Expires.Format(time.RFC3339)
		}
		return nil
	}()
	return tok, t, s.done(ctx, ev, err)
}

// RevokeToken revokes an API token by id.
func (s *Service) RevokeToken(ctx context.Context, p *ferry.Principal, id string) error {
	const op = "admin.RevokeToken"
	ev := s.event(p, "token.revoke")
	ev.Object, ev.Token = id, id
	err := func() error {
		t, err := s.db.TokenByID(ctx, id)
		if ferry.KindOf(err) == ferry.NotExist {
			return ferry.Errorf(op, ferry.NotExist, "no token with id %q", id)
		} else if err != nil {
			return err
		}
		u, err := s.db.UserByID(ctx, t.UserID)
		if err != nil {
			return err
		}
		if _, err := s.user(ctx, op, p, u.Email); err != nil {
			return err
		}
		ev.OrgID = u.OrgID
		return s.db.RevokeToken(ctx, id)
	}()
	return s.done(ctx, ev, err)
}

// AddSSHKey registers an SSH public key (one authorized_keys line) for a user.
func (s *Service) AddSSHKey(ctx context.Context, p *ferry.Principal, email, authorizedKey string) (*ferry.SSHKey, error) {
	const op = "admin.AddSSHKey"
	ev := s.event(p, "sshkey.add")
	ev.Detail = "user " + email
	var k *ferry.SSHKey
	err := func() error {
		u, err := s.user(ctx, op, p, email)
		if err != nil {
			return err
		}
		ev.OrgID = u.OrgID
		var pub ssh.PublicKey
		if k, pub, err = s.auth.ParseSSHKey(u.ID, authorizedKey); err != nil {
			return err
		}
		ev.Object = k.ID
		ev.Detail += " " + pub.Type() + " " + k.Fingerprint
		if err := s.db.AddSSHKey(ctx, k); err != nil {
			if ferry.KindOf(err) == ferry.Exist {
				return ferry.E(op, ferry.Exist, "that key is already registered")
			}
			return err
		}
		return nil
	}()
	return k, s.done(ctx, ev, err)
}

// SetHold puts a file on legal hold or releases it.
func (s *Service) SetHold(ctx context.Context, p *ferry.Principal, orgName, path string, hold bool) error {
	o, err := s.org(ctx, "admin.SetHold", p, orgName)
	if err != nil {
		ev := s.event(p, "file.hold")
		ev.Path = path
		return s.done(ctx, ev, err)
	}
	return s.tr.SetHold(ctx, scoped(p, o), path, hold)
}

// Setup creates the first server administrator (and their organisation) with
// a single-use setup code. It refuses once any server administrator exists.
func (s *Service) Setup(ctx context.Context, code, remote, orgName, email, password string) (*ferry.User, error) {
	const op = "admin.Setup"
	p := &ferry.Principal{Remote: remote}
	ev := s.event(p, "admin.setup")
	var u *ferry.User
	err := func() error {
		email, err := normalizeEmail(op, email)
		if err != nil {
			return err
		}
		ev.Actor, ev.Detail = email, "first administrator "+email+" of "+orgName
		if err := validName(op, "organisation", orgName); err != nil {
			return err
		}
		if err := auth.CheckPassword(ferry.DefaultPolicy(""), email, orgName, password); err != nil {
			return err
		}
		hash, err := auth.HashPassword(password, auth.DefaultPasswordParams, s.rand)
		if err != nil {
			return err
		}
		now := s.now().UTC()
		err = s.db.UseSetupCode(ctx, auth.SetupCodeHash(code), now, func(tx *db.Tx) error {
			o, err := tx.OrgByName(orgName)
			if ferry.KindOf(err) == ferry.NotExist {
				o = &ferry.Org{ID: ferry.NewID(s.rand), Name: orgName, RetentionDays: ferry.DefaultRetentionDays, Created: now}
				if err := s.keks.Ensure(ctx, o.ID); err != nil {
					return err
				}
				if err := tx.CreateOrg(o, ferry.NewID(s.rand)); err != nil {
					return err
				}
			} else if err != nil {
				return err
			}
			u = &ferry.User{ID: ferry.NewID(s.rand), OrgID: o.ID, Email: email, Role: ferry.RoleAdmin, ServerAdmin: true, PasswordHash: hash, Created: now}
			ev.OrgID, ev.ActorID, ev.Object = o.ID, u.ID, u.ID
			return tx.CreateUser(u)
		})
		if ferry.KindOf(err) == ferry.NotExist {
			return ferry.E(op, ferry.Unauthenticated, "the setup code is unknown, already used or expired")
		}
		return err
	}()
	if err = s.done(ctx, ev, err); err == nil {
		err = s.alertAdmin(ctx, ev, "server administrator created: "+u.Email)
	}
	return u, err
}
