package httpd

import (
	"net/http"
	"net/netip"
	"time"

	"ferry.dev/ferry/internal/admin"
	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
)

// policyJSON is an organisation's policy on the admin API.
type policyJSON struct {
	Org            string     `json:"org"`
	MinPasswordLen int        `json:"min_password_len"`
	MFARequired    bool       `json:"mfa_required"`
	Passkeys       string     `json:"passkeys"`
	SSORequired    bool       `json:"sso_required"`
	SessionIdle    string     `json:"session_idle"`
	SessionMax     string     `json:"session_max"`
	AllowedCIDRs   []string   `json:"allowed_cidrs"`
	SFTPKeysOnly   bool       `json:"sftp_keys_only"`
	Updated        *time.Time `json:"updated,omitempty"`
}

func toPolicyJSON(org string, p *ferry.Policy) policyJSON {
	j := policyJSON{Org: org, MinPasswordLen: p.MinPasswordLen, MFARequired: p.MFARequired, Passkeys: p.Passkeys, SSORequired: p.SSORequired,
		SessionIdle: p.SessionIdle.String(), SessionMax: p.SessionMax.String(), AllowedCIDRs: []string{}, SFTPKeysOnly: p.SFTPKeysOnly}
	for _, c := range p.AllowedCIDRs {
		j.AllowedCIDRs = append(j.AllowedCIDRs, c.String())
	}
	if !p.Updated.IsZero() {
		j.Updated = &p.Updated
	}
	return j
}

func policyOrg(r *http.Request) (string, error) {
	q := r.URL.Query()
	if len(q["org"]) != 1 || q.Get("org") == "" {
		return "", ferry.E("httpd.policy", ferry.Invalid, "name the organisation: ?org=NAME")
	}
	return q.Get("org"), nil
}

// getPolicy handles GET /admin/v1/policies?org=NAME.
func (h *adminPlane) getPolicy(w http.ResponseWriter, r *http.Request) error {
	org, err := policyOrg(r)
	if err != nil {
		return err
	}
	p, err := h.admin.Policy(r.Context(), principalFrom(r.Context()), org)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toPolicyJSON(org, p))
	return nil
}

// setPolicy handles POST /admin/v1/policies?org=NAME: the fields present in
// the body change, the others stay.
func (h *adminPlane) setPolicy(w http.ResponseWriter, r *http.Request) error {
	const op = "httpd.setPolicy"
	org, err := policyOrg(r)
	if err != nil {
		return err
	}
	var req struct {
		MinPasswordLen *int      `json:"min_password_len"`
		MFARequired    *bool     `json:"mfa_required"`
		Passkeys       *string   `json:"passkeys"`
		SSORequired    *bool     `json:"sso_required"`
		SessionIdle    *string   `json:"session_idle"`
		SessionMax     *string   `json:"session_max"`
		AllowedCIDRs   *[]string `json:"allowed_cidrs"`
		SFTPKeysOnly   *bool     `json:"sftp_keys_only"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	ch := admin.PolicyChange{MinPasswordLen: req.MinPasswordLen, MFARequired: req.MFARequired, Passkeys: req.Passkeys,
		SSORequired: req.SSORequired, SFTPKeysOnly: req.SFTPKeysOnly}
	dur := func(name string, v *string) (*time.Duration, error) {
		if v == nil {
			return nil, nil
		}
		d, err := time.ParseDuration(*v)
		if err != nil {
			return nil, ferry.Errorf(op, ferry.Invalid, "%s %q: want a duration such as 30m or 12h", name, *v)
		}
		return &d, nil
	}
	if ch.SessionIdle, err = dur("session_idle", req.SessionIdle); err != nil {
		return err
	}
	if ch.SessionMax, err = dur("session_max", req.SessionMax); err != nil {
		return err
	}
	if req.AllowedCIDRs != nil {
		cidrs := []netip.Prefix{}
		for _, c := range *req.AllowedCIDRs {
			ps, err := auth.ParseCIDRs(c)
			if err != nil {
				return err
			}
			cidrs = append(cidrs, ps...)
		}
		ch.AllowedCIDRs = &cidrs
	}
	p, err := h.admin.SetPolicy(r.Context(), principalFrom(r.Context()), org, ch)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toPolicyJSON(org, p))
	return nil
}
