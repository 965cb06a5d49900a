package admin

import (
	"context"
	"strings"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
)

// SSOSpec is an organisation's new single-sign-on (OpenID Connect)
// configuration, as an administrator gives it.
type SSOSpec struct {
	Org          string
	Issuer       string
	ClientID     string
	ClientSecret string
	Domains      []string
	Provision    string // user, external or off
	Party        string // the party of provisioned external users
	Disabled     bool
}

// SetSSO creates or replaces an organisation's single-sign-on configuration.
// The client secret is sealed under the organisation's KEK and never
// returned; the change is audited as sso.set (without the secret).
func (s *Service) SetSSO(ctx context.Context, p *ferry.Principal, spec SSOSpec) error {
	const op = "admin.SetSSO"
	ev := s.event(p, "sso.set")
	ev.Detail = "issuer " + spec.Issuer + " client " + spec.ClientID + " domains " + strings.Join(spec.Domains, ",") + " provision " + spec.Provision
	if spec.Party != "" {
		ev.Detail += " party " + spec.Party
	}
	if spec.Disabled {
		ev.Detail += " disabled"
	}
	err := func() error {
		o, err := s.org(ctx, op, p, spec.Org)
		if err != nil {
			return err
		}
		ev.OrgID, ev.Object = o.ID, o.ID
		as := auth.SSOSpec{OrgID: o.ID, Issuer: spec.Issuer, ClientID: spec.ClientID, ClientSecret: spec.ClientSecret,
			Domains: spec.Domains, Provision: spec.Provision, Enabled: !spec.Disabled}
		if spec.Party != "" {
			if spec.Provision != auth.ProvisionExternal {
				return ferry.E(op, ferry.Invalid, "--party is for --provision external")
			}
			pt, err := s.db.PartyByName(ctx, o.ID, spec.Party)
			if ferry.KindOf(err) == ferry.NotExist {
				return ferry.Errorf(op, ferry.NotExist, "party %q does not exist in %s", spec.Party, o.Name)
			} else if err != nil {
				return err
			}
			as.PartyID = pt.ID
			ev.PartyID, ev.Party = pt.ID, pt.Name
		}
		if err := auth.CheckSSOSpec(&as); err != nil {
			return err
		}
		ev.Detail = "issuer " + as.Issuer + " client " + as.ClientID + " domains " + strings.Join(as.Domains, ",") + " provision " + as.Provision
		if spec.Party != "" {
			ev.Detail += " party " + spec.Party
		}
		if spec.Disabled {
			ev.Detail += " disabled"
		}
		return s.auth.SetSSO(ctx, as)
	}()
	return s.done(ctx, ev, err)
}

// SSO returns an organisation's single-sign-on configuration, without its
// client secret.
func (s *Service) SSO(ctx context.Context, p *ferry.Principal, orgName string) (*auth.SSOSettings, error) {
	o, err := s.org(ctx, "admin.SSO", p, orgName)
	if err != nil {
		return nil, err
	}
	return s.auth.SSO(ctx, o.ID)
}
