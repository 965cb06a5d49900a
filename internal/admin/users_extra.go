package admin

import (
	"context"

	"ferry.dev/ferry/internal/ferry"
)

// EnableUser re-enables a disabled user, audited as "user.enable". Their
// password, second factors, keys and tokens work again as they were; the
// sessions that ended while they were disabled stay ended.
func (s *Service) EnableUser(ctx context.Context, p *ferry.Principal, email string) error {
	const op = "admin.EnableUser"
	ev := s.event(p, "user.enable")
	ev.Detail = "email " + email
	u, err := s.user(ctx, op, p, email)
	if err == nil {
		ev.Object, ev.OrgID = u.ID, u.OrgID
		if !u.Disabled {
			err = ferry.Errorf(op, ferry.Invalid, "%s is not disabled", u.Email)
		} else {
			err = s.db.SetUserDisabled(ctx, u.ID, false)
		}
	}
	return s.done(ctx, ev, err)
}

// RevokeGrant removes a user's grant on a folder of their organisation,
// audited as "grant.revoke" with the permissions it held. Permissions the
// user holds through a grant on a parent folder are not touched. Revoking a
// grant that does not exist is a NotExist error.
func (s *Service) RevokeGrant(ctx context.Context, p *ferry.Principal, orgName, email, path string) error {
	const op = "admin.RevokeGrant"
	ev := s.event(p, "grant.revoke")
	ev.Path = path
	ev.Detail = "user " + email
	err := func() error {
		o, err := s.org(ctx, op, p, orgName)
		if err != nil {
			return err
		}
		ev.OrgID = o.ID
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
		grants, err := s.db.GrantsOfOrg(ctx, o.ID)
		if err != nil {
			return err
		}
		var held ferry.Perm
		for _, g := range grants {
			if g.FolderID == fo.ID && g.UserID == u.ID {
				held = g.Perms
			}
		}
		if held == 0 {
			return ferry.Errorf(op, ferry.NotExist, "%s has no grant on %s", u.Email, clean)
		}
		ev.Detail += " perms " + held.String()
		return s.db.SetGrant(ctx, ferry.Grant{FolderID: fo.ID, UserID: u.ID})
	}()
	return s.done(ctx, ev, err)
}
