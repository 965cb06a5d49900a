package admin

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/transfer"
)

// What the admin UI shows: read-only views of organisations, and the one
// second-factor reset. Views check the principal like every other call (an
// organisation administrator sees their own organisation only); reading is
// not audited, except exporting the audit log.

// SetAuditVerifier gives the service the audit log's verification key and
// the path of its checkpoint file, for AuditStatus.
func (s *Service) SetAuditVerifier(v note.Verifier, checkpointFile string) {
	s.verifier, s.checkpointFile = v, checkpointFile
}

// Orgs lists the organisations p may administer: every one for the operator
// and server administrators, their own for an organisation administrator.
func (s *Service) Orgs(ctx context.Context, p *ferry.Principal) ([]*ferry.Org, error) {
	const op = "admin.Orgs"
	if p.Operator || p.ServerAdmin {
		return s.db.Orgs(ctx)
	}
	if p.Role != ferry.RoleAdmin {
		return nil, ferry.E(op, ferry.Permission, "not an administrator")
	}
	o, err := s.db.OrgByID(ctx, p.OrgID)
	if err != nil {
		return nil, err
	}
	return []*ferry.Org{o}, nil
}

// UserView is a user as the admin UI lists them.
type UserView struct {
	*ferry.User
	Party    string // party name, for external users
	TOTP     bool
	Passkeys int
	Password bool // a password is set
}

// OrgView is everything the admin UI shows of one organisation.
type OrgView struct {
	Org     *ferry.Org
	Users   []*UserView
	Parties []*ferry.Party
	Folders []*ferry.Folder
	Grants  []ferry.Grant
	Tokens  []*ferry.Token
	Policy  *ferry.Policy
	party   map[string]string // party id → name
	email   map[string]string // user id → email
}

// PartyName returns the name of a party of the organisation by id.
func (v *OrgView) PartyName(id string) string { return v.party[id] }

// Email returns the email of a user of the organisation by id.
func (v *OrgView) Email(id string) string { return v.email[id] }

// Org returns the view of an organisation p may administer.
func (s *Service) Org(ctx context.Context, p *ferry.Principal, orgName string) (*OrgView, error) {
	const op = "admin.Org"
	o, err := s.org(ctx, op, p, orgName)
	if err != nil {
		return nil, err
	}
	v := &OrgView{Org: o, party: map[string]string{}, email: map[string]string{}}
	if v.Parties, err = s.db.PartiesOfOrg(ctx, o.ID); err != nil {
		return nil, err
	}
	for _, pt := range v.Parties {
		v.party[pt.ID] = pt.Name
	}
	users, err := s.db.UsersOfOrg(ctx, o.ID)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		uv := &UserView{User: u, Party: v.party[u.PartyID], Password: u.PasswordHash != ""}
		if uv.TOTP, uv.Passkeys, err = s.db.SecondFactors(ctx, u.ID); err != nil {
			return nil, err
		}
		v.Users = append(v.Users, uv)
		v.email[u.ID] = u.Email
	}
	folders, err := s.db.FoldersOfOrg(ctx, o.ID)
	if err != nil {
		return nil, err
	}
	// Package folders are the system's, reached only through their
	// packages (docs/PACKAGES.md): they get no grants, so no row here.
	for _, f := range folders {
		if f.Path != transfer.PackagesRoot && !strings.HasPrefix(f.Path, transfer.PackagesRoot+"/") {
			v.Folders = append(v.Folders, f)
		}
	}
	if v.Grants, err = s.db.GrantsOfOrg(ctx, o.ID); err != nil {
		return nil, err
	}
	if v.Tokens, err = s.db.TokensOfOrg(ctx, o.ID); err != nil {
		return nil, err
	}
	if v.Policy, err = s.db.Policy(ctx, o.ID); err != nil {
		return nil, err
	}
	return v, nil
}

// ResetSecondFactors removes a user's TOTP authenticator, recovery codes
// and passkeys, and ends their sessions: the help-desk answer to a lost
// phone. If their organisation requires a second factor, they enrol a new
// one at their next sign-in. Audited as "user.mfa.reset".
func (s *Service) ResetSecondFactors(ctx context.Context, p *ferry.Principal, email string) error {
	const op = "admin.ResetSecondFactors"
	ev := s.event(p, "user.mfa.reset")
	ev.Detail = "email " + email
	u, err := s.user(ctx, op, p, email)
	if err == nil {
		ev.Object, ev.OrgID = u.ID, u.OrgID
		err = func() error {
			totp, err := s.db.DeleteTOTP(ctx, u.ID)
			if err != nil {
				return err
			}
			pk, err := s.db.DeletePasskeys(ctx, u.ID)
			if err != nil {
				return err
			}
			n, err := s.db.RevokeUserSessions(ctx, u.ID)
			if err != nil {
				return err
			}
			ev.Detail += fmt.Sprintf(": authenticator app %t, %d passkeys removed; %d sessions ended", totp, pk, n)
			return nil
		}()
	}
	return s.done(ctx, ev, err)
}

// auditFilter confines f to what p may read: an organisation administrator
// reads their own organisation's events only.
func (s *Service) auditFilter(op string, p *ferry.Principal, f audit.Filter) (audit.Filter, error) {
	switch {
	case p.Operator || p.ServerAdmin:
	case p.Role == ferry.RoleAdmin && p.OrgID != "":
		f.Org = p.OrgID
	default:
		return f, ferry.E(op, ferry.Permission, "not an administrator")
	}
	return f, nil
}

// AuditEvents calls fn, in log order, for each audit event matching f that
// p may read.
func (s *Service) AuditEvents(ctx context.Context, p *ferry.Principal, f audit.Filter, fn func(*ferry.Event) error) error {
	f, err := s.auditFilter("admin.AuditEvents", p, f)
	if err != nil {
		return err
	}
	return audit.Query(ctx, s.db, f, fn)
}

// ExportAudit is AuditEvents for a download: the export itself is audited
// ("audit.export", with the filter and format), before the first event.
func (s *Service) ExportAudit(ctx context.Context, p *ferry.Principal, f audit.Filter, format string, fn func(*ferry.Event) error) error {
	const op = "admin.ExportAudit"
	ev := s.event(p, "audit.export")
	ev.Detail = format + " " + describeFilter(f)
	f, err := s.auditFilter(op, p, f)
	if err := s.done(ctx, ev, err); err != nil {
		return err
	}
	return audit.Query(ctx, s.db, f, fn)
}

func describeFilter(f audit.Filter) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	if !f.Since.IsZero() {
		add("since", f.Since.UTC().Format("2006-01-02T15:04:05Z"))
	}
	if !f.Until.IsZero() {
		add("until", f.Until.UTC().Format("2006-01-02T15:04:05Z"))
	}
	add("actor", f.Actor)
	add("party", f.Party)
	add("path", f.Path)
	add("action", f.Action)
	add("org", f.Org)
	if len(parts) == 0 {
		return "(everything)"
	}
	return strings.Join(parts, " ")
}

// AuditStatus is the state of the audit log: its newest signed checkpoint
// and, when verification ran, its result.
type AuditStatus struct {
	Checkpoint *audit.Checkpoint // newest signed checkpoint; nil if none yet
	Verified   bool              // Verify ran and passed
	Report     *audit.Report
	Problem    string // why verification failed, when it did
}

// AuditStatus returns the newest signed checkpoint and, if verify is set,
// checks the whole log against it (audit.Verify: every record read once).
func (s *Service) AuditStatus(ctx context.Context, p *ferry.Principal, verify bool) (*AuditStatus, error) {
	const op = "admin.AuditStatus"
	if _, err := s.auditFilter(op, p, audit.Filter{}); err != nil {
		return nil, err
	}
	if s.verifier == nil {
		return nil, ferry.E(op, ferry.Unavailable, "the audit verification key is not loaded")
	}
	st := &AuditStatus{}
	if c, err := s.db.LatestAuditCheckpoint(ctx); err == nil {
		if st.Checkpoint, err = audit.ParseCheckpoint([]byte(c.Note), s.verifier); err != nil {
			st.Problem = ferry.Message(err)
		}
	} else if ferry.KindOf(err) != ferry.NotExist {
		return nil, err
	}
	if !verify {
		return st, nil
	}
	var latest []byte
	if s.checkpointFile != "" {
		var err error
		if latest, err = audit.ReadCheckpoint(s.checkpointFile); err != nil {
			return nil, ferry.E(op, ferry.Internal, err)
		}
	}
	rep, err := audit.Verify(ctx, s.db, s.verifier, nil, latest)
	switch {
	case err == nil:
		st.Verified, st.Report = true, rep
	case ferry.KindOf(err) == ferry.Integrity:
		st.Problem = err.Error()
	default:
		return nil, err
	}
	return st, nil
}

// sortedKeys returns m's keys, largest value first.
func sortedKeys(m map[string]*NamedTraffic) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if d := m[b].total() - m[a].total(); d != 0 {
			if d > 0 {
				return 1
			}
			return -1
		}
		return strings.Compare(a, b)
	})
	return keys
}
