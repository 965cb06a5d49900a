package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// policyView is an organisation's policy as the admin API returns it.
type policyView struct {
	Org            string     `json:"org"`
	MinPasswordLen int        `json:"min_password_len"`
	MFARequired    bool       `json:"mfa_required"`
	Passkeys       string     `json:"passkeys"`
	SSORequired    bool       `json:"sso_required"`
	SessionIdle    string     `json:"session_idle"`
	SessionMax     string     `json:"session_max"`
	AllowedCIDRs   []string   `json:"allowed_cidrs"`
	SFTPKeysOnly   bool       `json:"sftp_keys_only"`
	Updated        *time.Time `json:"updated"`
}

func printPolicy(w io.Writer, p policyView) {
	cidrs := strings.Join(p.AllowedCIDRs, ",")
	if cidrs == "" {
		cidrs = "any"
	}
	updated := "never (defaults)"
	if p.Updated != nil {
		updated = p.Updated.Format(time.RFC3339)
	}
	fmt.Fprintf(w, "organisation      %s\nmin-password-len  %d\nmfa-required      %t\npasskeys          %s\nsso-required      %t\n"+
		"session-idle      %s\nsession-max       %s\nallowed-cidrs     %s\nsftp-keys-only    %t\nupdated           %s\n",
		p.Org, p.MinPasswordLen, p.MFARequired, p.Passkeys, p.SSORequired, p.SessionIdle, p.SessionMax, cidrs, p.SFTPKeysOnly, updated)
}

// adminPolicy runs `ferry admin policy show|set`.
func adminPolicy(ctx context.Context, c *adminClient, cmd string, sub *flag.FlagSet, args []string, env Env) error {
	org := sub.String("org", "", "organisation")
	var (
		minLen   = sub.Int("min-password-len", 0, "shortest password accepted (at least 12)")
		mfa      = sub.Bool("mfa-required", false, "require a second factor (--mfa-required=false to stop)")
		passkeys = sub.String("passkeys", "", "allowed, required or off")
		sso      = sub.Bool("sso-required", false, "sign in through single sign-on only")
		idle     = sub.String("session-idle", "", "end sessions idle this long, e.g. 30m")
		maxAge   = sub.String("session-max", "", "end sessions this long after sign-in, e.g. 12h")
		cidrs    = sub.String("allowed-cidrs", "", "comma-separated address ranges allowed to sign in (none: any)")
		keysOnly = sub.Bool("sftp-keys-only", false, "SFTP with public keys only, no passwords")
	)
	pos, err := parseInterspersed(sub, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *org == "" {
		return usagef("usage: ferry admin %s --org ORG [flags]", cmd)
	}
	path := "/admin/v1/policies?org=" + url.QueryEscape(*org)
	var resp policyView
	if cmd == "policy show" {
		if err := c.do(ctx, http.MethodGet, path, nil, &resp); err != nil {
			return err
		}
		printPolicy(env.Stdout, resp)
		return nil
	}
	req := map[string]any{}
	var bad error
	sub.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "min-password-len":
			req["min_password_len"] = *minLen
		case "mfa-required":
			req["mfa_required"] = *mfa
		case "passkeys":
			req["passkeys"] = *passkeys
		case "sso-required":
			req["sso_required"] = *sso
		case "session-idle", "session-max":
			v := *idle
			if f.Name == "session-max" {
				v = *maxAge
			}
			if _, err := time.ParseDuration(v); err != nil && bad == nil {
				bad = usagef("--%s %q: want a duration such as 30m or 12h", f.Name, v)
			}
			req[strings.ReplaceAll(f.Name, "-", "_")] = v
		case "allowed-cidrs":
			list := []string{}
			for _, s := range strings.Split(*cidrs, ",") {
				if s = strings.TrimSpace(s); s != "" && s != "none" {
					list = append(list, s)
				}
			}
			req["allowed_cidrs"] = list
		case "sftp-keys-only":
			req["sftp_keys_only"] = *keysOnly
		}
	})
	if bad != nil {
		return bad
	}
	if len(req) == 0 {
		return usagef("ferry admin policy set: nothing to change (give at least one flag besides --org)")
	}
	if err := c.do(ctx, http.MethodPost, path, req, &resp); err != nil {
		return err
	}
	printPolicy(env.Stdout, resp)
	return nil
}
