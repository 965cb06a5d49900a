package admin

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
)

// PolicyChange is a change to an organisation's policy: nil fields keep
// their current value.
type PolicyChange struct {
	MinPasswordLen *int
	MFARequired    *bool
	Passkeys       *string
	SSORequired    *bool
	SessionIdle    *time.Duration
	SessionMax     *time.Duration
	AllowedCIDRs   *[]netip.Prefix
	SFTPKeysOnly   *bool
}

// Policy bounds.
const (
	maxPasswordLenPolicy = 128
	minSession           = time.Minute
	maxSession           = 30 * 24 * time.Hour
	maxCIDRs             = 100
)

// Policy returns an organisation's authentication policy (the default one
// if it has not set one).
func (s *Service) Policy(ctx context.Context, p *ferry.Principal, orgName string) (*ferry.Policy, error) {
	o, err := s.org(ctx, "admin.Policy", p, orgName)
	if err != nil {
		ev := s.event(p, "policy.show")
		ev.Detail = "org " + orgName
		return nil, s.done(ctx, ev, err)
	}
	return s.db.Policy(ctx, o.ID)
}

// SetPolicy changes an organisation's authentication policy and returns the
// new one. The change is audited as "policy.set" with every changed value as
// old→new; a change that changes nothing is audited too.
func (s *Service) SetPolicy(ctx context.Context, p *ferry.Principal, orgName string, ch PolicyChange) (*ferry.Policy, error) {
	const op = "admin.SetPolicy"
	ev := s.event(p, "policy.set")
	var pol *ferry.Policy
	err := func() error {
		o, err := s.org(ctx, op, p, orgName)
		if err != nil {
			return err
		}
		ev.OrgID, ev.Object = o.ID, o.ID
		old, err := s.db.Policy(ctx, o.ID)
		if err != nil {
			return err
		}
		next := *old
		next.OrgID = o.ID
		if ch.MinPasswordLen != nil {
			next.MinPasswordLen = *ch.MinPasswordLen
		}
		if ch.MFARequired != nil {
			next.MFARequired = *ch.MFARequired
		}
		if ch.Passkeys != nil {
			next.Passkeys = *ch.Passkeys
		}
		if ch.SSORequired != nil {
			next.SSORequired = *ch.SSORequired
		}
		if ch.SessionIdle != nil {
			next.SessionIdle = *ch.SessionIdle
		}
		if ch.SessionMax != nil {
			next.SessionMax = *ch.SessionMax
		}
		if ch.AllowedCIDRs != nil {
			next.AllowedCIDRs = slices.Clone(*ch.AllowedCIDRs)
		}
		if ch.SFTPKeysOnly != nil {
			next.SFTPKeysOnly = *ch.SFTPKeysOnly
		}
		if err := validPolicy(op, &next); err != nil {
			return err
		}
		ev.Detail = policyDiff(old, &next)
		next.Updated = s.now().UTC()
		if err := s.db.SetPolicy(ctx, &next); err != nil {
			return err
		}
		pol = &next
		return nil
	}()
	return pol, s.done(ctx, ev, err)
}

func validPolicy(op string, p *ferry.Policy) error {
	switch {
	case p.MinPasswordLen < auth.MinPasswordLen || p.MinPasswordLen > maxPasswordLenPolicy:
		return ferry.Errorf(op, ferry.Invalid, "the minimum password length must be between %d and %d", auth.MinPasswordLen, maxPasswordLenPolicy)
	case p.Passkeys != ferry.PasskeysAllowed && p.Passkeys != ferry.PasskeysRequired && p.Passkeys != ferry.PasskeysOff:
		return ferry.E(op, ferry.Invalid, "passkeys must be allowed, required or off")
	case p.SessionIdle < minSession || p.SessionIdle > maxSession:
		return ferry.E(op, ferry.Invalid, "the session idle timeout must be between a minute and 30 days")
	case p.SessionMax < minSession || p.SessionMax > maxSession:
		return ferry.E(op, ferry.Invalid, "the session maximum must be between a minute and 30 days")
	case p.SessionIdle > p.SessionMax:
		return ferry.E(op, ferry.Invalid, "the session idle timeout cannot be longer than the session maximum")
	case len(p.AllowedCIDRs) > maxCIDRs:
		return ferry.Errorf(op, ferry.Invalid, "at most %d address ranges", maxCIDRs)
	case p.SSORequired && p.Passkeys == ferry.PasskeysRequired:
		return ferry.E(op, ferry.Invalid, "an organisation cannot require both single sign-on and passkeys")
	}
	for _, c := range p.AllowedCIDRs {
		if !c.IsValid() {
			return ferry.E(op, ferry.Invalid, "an address range is not valid")
		}
	}
	return nil
}

// policyDiff describes the changed fields of a policy as
// "field old→new; …", or "no change".
func policyDiff(a, b *ferry.Policy) string {
	var out []string
	add := func(name, x, y string) {
		if x != y {
			out = append(out, name+" "+x+"→"+y)
		}
	}
	cidrs := func(ps []netip.Prefix) string {
		if len(ps) == 0 {
			return "any"
		}
		s := make([]string, len(ps))
		for i, p := range ps {
			s[i] = p.String()
		}
		return strings.Join(s, ",")
	}
	add("min_password_len", strconv.Itoa(a.MinPasswordLen), strconv.Itoa(b.MinPasswordLen))
	add("mfa_required", strconv.FormatBool(a.MFARequired), strconv.FormatBool(b.MFARequired))
	add("passkeys", a.Passkeys, b.Passkeys)
	add("sso_required", strconv.FormatBool(a.SSORequired), strconv.FormatBool(b.SSORequired))
	add("session_idle", a.SessionIdle.String(), b.SessionIdle.String())
	add("session_max", a.SessionMax.String(), b.SessionMax.String())
	add("allowed_cidrs", cidrs(a.AllowedCIDRs), cidrs(b.AllowedCIDRs))
	add("sftp_keys_only", strconv.FormatBool(a.SFTPKeysOnly), strconv.FormatBool(b.SFTPKeysOnly))
	if len(out) == 0 {
		return "no change"
	}
	return strings.Join(out, "; ")
}

// alertAdmin appends an "alert.admin" event after a successful event ev
// that made someone an administrator (created one, or raised a role), so
// the guard can notify. The alert names the same actor, object and org.
func (s *Service) alertAdmin(ctx context.Context, ev *ferry.Event, what string) error {
	a := *ev
	a.Action, a.Outcome, a.Detail, a.Seq, a.Time = "alert.admin", ferry.OutcomeOK, what, 0, time.Time{}
	return s.log.Append(context.WithoutCancel(ctx), &a)
}
