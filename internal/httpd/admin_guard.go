package httpd

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"ferry.dev/ferry/internal/admin"
	"ferry.dev/ferry/internal/ferry"
)

// The exfiltration guard on the admin plane (docs/GUARD.md): the admin API
// under /admin/v1/guard (routes.go) and the admin UI page
// /admin/orgs/{org}/guard (adminGuardRoutes). Everything goes through
// internal/admin, which checks and audits.

// guardJSON is an organisation's guard state on the admin API.
type guardJSON struct {
	Org      string          `json:"org"`
	Policy   guardPolicyJSON `json:"policy"`
	Default  bool            `json:"default_policy"`
	Frozen   []frozenJSON    `json:"frozen"`
	Canaries []canaryJSON    `json:"canaries"`
	Webhook  string          `json:"webhook"`
	Outbox   []outboxJSON    `json:"webhook_deliveries"`
}

type guardPolicyJSON struct {
	Window       string `json:"window"`
	MaxFiles     int    `json:"max_files"`
	MaxBytes     int64  `json:"max_bytes"`
	AddrMaxFiles int    `json:"addr_max_files"`
	OrgMaxFiles  int    `json:"org_max_files"`
	PeakFactor   int    `json:"peak_factor"`
	Monitor      bool   `json:"monitor"`
}

type frozenJSON struct {
	Subject string    `json:"subject"`
	Name    string    `json:"name"`
	Reason  string    `json:"reason"`
	Detail  string    `json:"detail"`
	Frozen  time.Time `json:"frozen"`
}

type canaryJSON struct {
	Path  string `json:"path"`
	Size  int64  `json:"size"`
	Decoy bool   `json:"decoy"`
}

type outboxJSON struct {
	ID        string     `json:"id"`
	Created   time.Time  `json:"created"`
	Attempts  int        `json:"attempts"`
	Delivered *time.Time `json:"delivered,omitempty"`
	LastError string     `json:"last_error,omitempty"`
}

func toGuardJSON(v *admin.GuardView) guardJSON {
	p := v.Policy
	j := guardJSON{Org: v.Org, Default: v.Default, Webhook: v.Webhook, Frozen: []frozenJSON{}, Canaries: []canaryJSON{}, Outbox: []outboxJSON{},
		Policy: guardPolicyJSON{Window: p.Window.String(), MaxFiles: p.MaxFiles, MaxBytes: p.MaxBytes, AddrMaxFiles: p.AddrMaxFiles,
			OrgMaxFiles: p.OrgMaxFiles, PeakFactor: p.PeakFactor, Monitor: p.Monitor}}
	for _, f := range v.Freezes {
		j.Frozen = append(j.Frozen, frozenJSON{Subject: f.Subject, Name: f.Name, Reason: f.Reason, Detail: f.Detail, Frozen: f.Frozen})
	}
	for _, c := range v.Canaries {
		j.Canaries = append(j.Canaries, canaryJSON{Path: c.Path, Size: c.Size, Decoy: c.Decoy})
	}
	for _, it := range v.Outbox {
		o := outboxJSON{ID: it.ID, Created: it.Created, Attempts: it.Attempts, LastError: it.LastError}
		if !it.Delivered.IsZero() {
			d := it.Delivered
			o.Delivered = &d
		}
		j.Outbox = append(j.Outbox, o)
	}
	return j
}

// guardStatusAPI handles GET /admin/v1/guard?org=NAME.
func (h *adminPlane) guardStatusAPI(w http.ResponseWriter, r *http.Request) error {
	org, err := policyOrg(r)
	if err != nil {
		return err
	}
	v, err := h.admin.GuardStatus(r.Context(), principalFrom(r.Context()), org)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toGuardJSON(v))
	return nil
}

// guardUnfreezeAPI handles POST /admin/v1/guard/unfreeze.
func (h *adminPlane) guardUnfreezeAPI(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Org string `json:"org"`
		Who string `json:"who"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	if err := h.admin.Unfreeze(r.Context(), principalFrom(r.Context()), req.Org, req.Who); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, okJSON{OK: true})
	return nil
}

// guardCanariesAPI handles POST /admin/v1/guard/canaries: mark, unmark or
// generate.
func (h *adminPlane) guardCanariesAPI(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Org    string   `json:"org"`
		Action string   `json:"action"`
		Paths  []string `json:"paths"`
		Folder string   `json:"folder"`
		Count  int      `json:"count"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	p := principalFrom(r.Context())
	var resp struct {
		OK    bool     `json:"ok"`
		Paths []string `json:"paths"`
	}
	switch req.Action {
	case "mark", "unmark":
		if err := h.admin.MarkCanary(r.Context(), p, req.Org, req.Paths, req.Action == "unmark"); err != nil {
			return err
		}
		resp.Paths = req.Paths
	case "generate":
		paths, err := h.admin.GenerateDecoys(r.Context(), p, req.Org, req.Folder, req.Count)
		if err != nil {
			return err
		}
		resp.Paths = paths
	default:
		return ferry.E("httpd.guardCanaries", ferry.Invalid, `action must be "mark", "unmark" or "generate"`)
	}
	resp.OK = true
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// guardPolicyAPI handles POST /admin/v1/guard/policy?org=NAME: fields
// present change, the others stay.
func (h *adminPlane) guardPolicyAPI(w http.ResponseWriter, r *http.Request) error {
	org, err := policyOrg(r)
	if err != nil {
		return err
	}
	var req struct {
		Window       *string `json:"window"`
		MaxFiles     *int    `json:"max_files"`
		MaxBytes     *int64  `json:"max_bytes"`
		AddrMaxFiles *int    `json:"addr_max_files"`
		OrgMaxFiles  *int    `json:"org_max_files"`
		PeakFactor   *int    `json:"peak_factor"`
		Monitor      *bool   `json:"monitor"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	ch := admin.GuardPolicyChange{MaxFiles: req.MaxFiles, MaxBytes: req.MaxBytes, AddrMaxFiles: req.AddrMaxFiles,
		OrgMaxFiles: req.OrgMaxFiles, PeakFactor: req.PeakFactor, Monitor: req.Monitor}
	if req.Window != nil {
		d, err := time.ParseDuration(*req.Window)
		if err != nil {
			return ferry.Errorf("httpd.guardPolicy", ferry.Invalid, "window %q: want a duration such as 10m", *req.Window)
		}
		ch.Window = &d
	}
	if _, err := h.admin.SetGuardPolicy(r.Context(), principalFrom(r.Context()), org, ch); err != nil {
		return err
	}
	v, err := h.admin.GuardStatus(r.Context(), principalFrom(r.Context()), org)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toGuardJSON(v))
	return nil
}

// guardWebhookAPI handles POST /admin/v1/guard/webhook.
func (h *adminPlane) guardWebhookAPI(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Org    string `json:"org"`
		URL    string `json:"url"`
		Secret string `json:"secret"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	if err := h.admin.SetGuardWebhook(r.Context(), principalFrom(r.Context()), req.Org, req.URL, req.Secret); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, okJSON{OK: true})
	return nil
}

// ---------------------------------------------------------------- admin UI

// adminGuardRoutes is the admin UI's guard page and its forms.
func (h *adminPlane) adminGuardRoutes() []route {
	return []route{
		{"GET /admin/orgs/{org}/guard", h.page(signedIn, h.guardPage)},
		{"POST /admin/orgs/{org}/guard/unfreeze", h.page(signedIn, h.guardUnfreeze)},
		{"POST /admin/orgs/{org}/guard/canaries", h.page(signedIn, h.guardCanaries)},
		{"POST /admin/orgs/{org}/guard/policy", h.page(signedIn, h.guardPolicy)},
		{"POST /admin/orgs/{org}/guard/webhook", h.page(signedIn, h.guardWebhook)},
	}
}

const guardPageName = "admin-guard"

// showGuard renders the guard page, with an error or a flash message.
func (h *adminPlane) showGuard(w http.ResponseWriter, r *http.Request, ar *adminReq, status int, msg, flash string) error {
	d, err := h.orgData(r, ar, "Guard", "guard")
	if err != nil {
		return err
	}
	v, err := h.admin.GuardStatus(r.Context(), ar.p, r.PathValue("org"))
	if err != nil {
		return err
	}
	d.Data, d.Error, d.Flash = v, msg, flash
	if d.Flash == "" {
		d.Flash = r.URL.Query().Get("done")
		if len(d.Flash) > 200 {
			d.Flash = ""
		}
	}
	return h.show(w, status, guardPageName, d)
}

func (h *adminPlane) guardPage(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	return h.showGuard(w, r, ar, http.StatusOK, "", "")
}

// guardDone redirects back to the guard page after a change, or shows the
// page again with a refusal the administrator can fix.
func (h *adminPlane) guardDone(w http.ResponseWriter, r *http.Request, ar *adminReq, err error, flash string) error {
	if err != nil {
		switch ferry.KindOf(err) {
		case ferry.Invalid, ferry.Exist, ferry.NotExist, ferry.Permission:
			return h.showGuard(w, r, ar, statusOf(ferry.KindOf(err)), ferry.Message(err), "")
		}
		return err
	}
	http.Redirect(w, r, "/admin/orgs/"+url.PathEscape(r.PathValue("org"))+"/guard?done="+url.QueryEscape(flash), http.StatusSeeOther)
	return nil
}

func (h *adminPlane) guardUnfreeze(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	who := r.PostForm.Get("who")
	err := h.admin.Unfreeze(r.Context(), ar.p, r.PathValue("org"), who)
	return h.guardDone(w, r, ar, err, "Unfrozen.")
}

func (h *adminPlane) guardCanaries(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	f := r.PostForm
	org := r.PathValue("org")
	switch f.Get("action") {
	case "mark", "unmark":
		paths := strings.Fields(f.Get("paths"))
		err := h.admin.MarkCanary(r.Context(), ar.p, org, paths, f.Get("action") == "unmark")
		msg := "Marked as canary."
		if f.Get("action") == "unmark" {
			msg = "No longer a canary."
		}
		return h.guardDone(w, r, ar, err, msg)
	case "generate":
		n, err := strconv.Atoi(f.Get("count"))
		if err != nil {
			return h.guardDone(w, r, ar, ferry.E("httpd.guardCanaries", ferry.Invalid, "the number of decoys must be a number"), "")
		}
		paths, err := h.admin.GenerateDecoys(r.Context(), ar.p, org, f.Get("folder"), n)
		return h.guardDone(w, r, ar, err, "Generated "+strconv.Itoa(len(paths))+" decoys.")
	}
	return h.guardDone(w, r, ar, ferry.E("httpd.guardCanaries", ferry.Invalid, "unknown action"), "")
}

func (h *adminPlane) guardPolicy(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	const op = "httpd.guardPolicy"
	f := r.PostForm
	num := func(name string) (int, error) {
		n, err := strconv.Atoi(f.Get(name))
		if err != nil {
			return 0, ferry.Errorf(op, ferry.Invalid, "%s must be a whole number", strings.ReplaceAll(name, "_", " "))
		}
		return n, nil
	}
	var ch admin.GuardPolicyChange
	vals := map[string]*int{}
	for _, name := range []string{"window_minutes", "max_files", "max_gib", "addr_max_files", "org_max_files", "peak_factor"} {
		n, err := num(name)
		if err != nil {
			return h.guardDone(w, r, ar, err, "")
		}
		vals[name] = &n
	}
	win := time.Duration(*vals["window_minutes"]) * time.Minute
	bytes := int64(*vals["max_gib"]) << 30
	monitor := f.Get("monitor") != ""
	ch.Window, ch.MaxFiles, ch.MaxBytes, ch.AddrMaxFiles, ch.OrgMaxFiles, ch.PeakFactor, ch.Monitor =
		&win, vals["max_files"], &bytes, vals["addr_max_files"], vals["org_max_files"], vals["peak_factor"], &monitor
	_, err := h.admin.SetGuardPolicy(r.Context(), ar.p, r.PathValue("org"), ch)
	return h.guardDone(w, r, ar, err, "Guard policy saved.")
}

func (h *adminPlane) guardWebhook(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	f := r.PostForm
	err := h.admin.SetGuardWebhook(r.Context(), ar.p, r.PathValue("org"), strings.TrimSpace(f.Get("url")), f.Get("secret"))
	return h.guardDone(w, r, ar, err, "Webhook saved.")
}
