package httpd

import (
	"encoding/csv"
	"encoding/json"
	"html/template"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/ferry"
)

// The impact report on the admin plane (docs/IMPACT.md): the admin UI's
// Impact page (scope form, report, checkpoint citation, JSON and CSV export,
// "draft notifications"), the review page of drafted notifications (edit,
// send), and the same as admin API calls. Everything goes through
// internal/admin, which checks the principal (an organisation administrator
// sees their own organisation only) and audits the report (impact.report),
// every edit (impact.edit) and every notification sent (impact.notify).

// adminImpactRoutes is the admin UI's route table of this file.
func (h *adminPlane) adminImpactRoutes() []route {
	return []route{
		{"GET /admin/impact", h.page(signedIn, h.impactPage)},
		{"GET /admin/impact/export", h.page(signedIn, h.impactExport)},
		{"POST /admin/impact/drafts", h.page(signedIn, h.impactDraftCreate)},
		{"GET /admin/impact/drafts", h.page(signedIn, h.impactDraftsPage)},
		{"POST /admin/impact/drafts/{id}", h.page(signedIn, h.impactDraftSave)},
		{"POST /admin/impact/drafts/{id}/send", h.page(signedIn, h.impactDraftSend)},
	}
}

// impactScopeKeys are the scope's form and query fields.
var impactScopeKeys = []string{"from", "to", "org", "actor", "token", "session", "ip"}

// parseImpactScope reads a scope: from and to (a date, a date and time, or
// RFC 3339; UTC), org (a name), actor, token, session, ip (an address or a
// CIDR prefix).
func (h *adminPlane) parseImpactScope(r *http.Request, p *ferry.Principal, q url.Values) (audit.ImpactScope, error) {
	const op = "httpd.impactScope"
	sc := audit.ImpactScope{Actor: strings.ToLower(strings.TrimSpace(q.Get("actor"))), Token: strings.TrimSpace(q.Get("token")),
		Session: strings.TrimSpace(q.Get("session"))}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"from", &sc.From}, {"to", &sc.To}} {
		v := strings.TrimSpace(q.Get(t.name))
		if v == "" {
			return sc, ferry.Errorf(op, ferry.Invalid, "%s: a date (2026-01-31) or a date and time (2026-01-31T13:45, UTC) is required", t.name)
		}
		var err error
		for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02"} {
			var tm time.Time
			if tm, err = time.Parse(layout, v); err == nil {
				*t.dst = tm.UTC()
				break
			}
		}
		if err != nil {
			return sc, ferry.Errorf(op, ferry.Invalid, "%s: want a date (2026-01-31) or a date and time (2026-01-31T13:45), UTC", t.name)
		}
	}
	if v := strings.TrimSpace(q.Get("ip")); v != "" {
		pfx, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return sc, ferry.Errorf(op, ferry.Invalid, "ip: %q is not an address or CIDR prefix (203.0.113.0/24)", v)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		sc.CIDR = pfx.Masked()
	}
	var err error
	if sc.OrgID, err = h.admin.ImpactOrg(r.Context(), p, strings.TrimSpace(q.Get("org"))); err != nil {
		return sc, err
	}
	return sc, sc.Validate()
}

// impactPageData is the Impact page's data.
type impactPageData struct {
	Form    url.Values   // the scope as given, to refill the form
	Query   template.URL // the scope as a query string, for export links
	Report  *audit.ImpactReport
	Parties []*audit.PartyImpact // the report's, then "no party"
	Verify  bool
	AllOrgs bool
}

func scopeQuery(q url.Values) template.URL {
	v := url.Values{}
	for _, k := range impactScopeKeys {
		if s := q.Get(k); s != "" {
			v.Set(k, s)
		}
	}
	return template.URL(v.Encode())
}

func (h *adminPlane) impactPage(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	q := r.URL.Query()
	d := ar.data("Impact report", "impact")
	pd := &impactPageData{Form: q, Query: scopeQuery(q), Verify: q.Get("verify") != "", AllOrgs: ar.p.ServerAdmin || ar.p.Operator}
	d.Data = pd
	if q.Get("from") == "" && q.Get("to") == "" {
		return h.show(w, http.StatusOK, "admin-impact", d)
	}
	sc, err := h.parseImpactScope(r, ar.p, q)
	if err == nil {
		pd.Report, err = h.admin.ImpactReport(r.Context(), ar.p, sc, pd.Verify)
	}
	if err != nil {
		switch ferry.KindOf(err) {
		case ferry.Invalid, ferry.NotExist, ferry.Permission:
			d.Error = ferry.Message(err)
			return h.show(w, statusOf(ferry.KindOf(err)), "admin-impact", d)
		}
		return err
	}
	pd.Parties = pd.Report.Parties
	if pd.Report.NoParty != nil {
		pd.Parties = append(pd.Parties[:len(pd.Parties):len(pd.Parties)], pd.Report.NoParty)
	}
	return h.show(w, http.StatusOK, "admin-impact", d)
}

// impactCSVHeader is the header of the CSV export: one row per party and
// file.
var impactCSVHeader = []string{"org", "party", "party_id", "contacts", "path", "file_id", "sha256", "bytes", "reads", "first", "last", "actors"}

func (h *adminPlane) impactExport(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	q := r.URL.Query()
	format := q.Get("format")
	if format != "csv" && format != "json" {
		return ferry.E("httpd.impactExport", ferry.Invalid, "format must be csv or json")
	}
	sc, err := h.parseImpactScope(r, ar.p, q)
	if err != nil {
		return err
	}
	rep, err := h.admin.ImpactReport(r.Context(), ar.p, sc, q.Get("verify") != "")
	if err != nil {
		return err
	}
	name := "ferry-impact-" + time.Now().UTC().Format("20060102T150405Z") + "." + format
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	if format == "json" {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	cw := csv.NewWriter(w)
	cw.Write(impactCSVHeader)
	parties := rep.Parties
	if rep.NoParty != nil {
		parties = append(parties[:len(parties):len(parties)], rep.NoParty)
	}
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	for _, p := range parties {
		for _, f := range p.Files {
			cw.Write([]string{csvSafe(p.Org), csvSafe(p.Party), p.PartyID, csvSafe(strings.Join(p.Contacts, " ")), csvSafe(f.Path), f.FileID, f.SHA256,
				strconv.FormatInt(f.Bytes, 10), strconv.FormatInt(f.Reads, 10), ts(f.First), ts(f.Last), csvSafe(strings.Join(f.Actors, " "))})
		}
	}
	cw.Flush()
	return cw.Error()
}

func (h *adminPlane) impactDraftCreate(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	d := ar.data("Impact report", "impact")
	pd := &impactPageData{Form: r.PostForm, Query: scopeQuery(r.PostForm), AllOrgs: ar.p.ServerAdmin || ar.p.Operator}
	d.Data = pd
	sc, err := h.parseImpactScope(r, ar.p, r.PostForm)
	var drafts []*ferry.ImpactDraft
	if err == nil {
		_, drafts, err = h.admin.DraftImpactNotices(r.Context(), ar.p, sc, false)
	}
	if err != nil {
		switch ferry.KindOf(err) {
		case ferry.Invalid, ferry.NotExist, ferry.Permission, ferry.Unavailable:
			d.Error = ferry.Message(err)
			return h.show(w, statusOf(ferry.KindOf(err)), "admin-impact", d)
		}
		return err
	}
	if len(drafts) == 0 {
		d.Flash = "No party's files were read in this scope: nothing to draft."
		return h.show(w, http.StatusOK, "admin-impact", d)
	}
	http.Redirect(w, r, "/admin/impact/drafts?report="+url.QueryEscape(drafts[0].Report), http.StatusSeeOther)
	return nil
}

// impactDraftsData is the review page's data.
type impactDraftsData struct {
	Report string
	Drafts []*ferry.ImpactDraft
}

func (h *adminPlane) impactDraftsPage(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	return h.showDrafts(w, r, ar, http.StatusOK, "", r.URL.Query().Get("flash"))
}

func (h *adminPlane) showDrafts(w http.ResponseWriter, r *http.Request, ar *adminReq, status int, msg, flash string) error {
	report := r.URL.Query().Get("report")
	if report == "" {
		report = r.PostForm.Get("report")
	}
	drafts, err := h.admin.ImpactDrafts(r.Context(), ar.p, report)
	if err != nil {
		return err
	}
	d := ar.data("Impact notifications", "impact")
	d.Error = msg
	switch flash {
	case "sent":
		d.Flash = "The notification was queued for sending."
	case "saved":
		d.Flash = "The draft was saved."
	}
	d.Data = &impactDraftsData{Report: report, Drafts: drafts}
	return h.show(w, status, "admin-impact-drafts", d)
}

func draftsURL(report, flash, id string) string {
	v := url.Values{}
	if report != "" {
		v.Set("report", report)
	}
	v.Set("flash", flash)
	return "/admin/impact/drafts?" + v.Encode() + "#draft-" + url.PathEscape(id)
}

// splitRecipients reads a recipients field: addresses separated by commas,
// spaces or line breaks.
func splitRecipients(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

func (h *adminPlane) impactDraftSave(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	f := r.PostForm
	err := h.admin.EditImpactDraft(r.Context(), ar.p, r.PathValue("id"), splitRecipients(f.Get("to")), f.Get("subject"), f.Get("text"))
	if err != nil {
		return h.draftError(w, r, ar, err)
	}
	http.Redirect(w, r, draftsURL(f.Get("report"), "saved", r.PathValue("id")), http.StatusSeeOther)
	return nil
}

func (h *adminPlane) impactDraftSend(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	if err := h.admin.SendImpactDraft(r.Context(), ar.p, r.PathValue("id")); err != nil {
		return h.draftError(w, r, ar, err)
	}
	http.Redirect(w, r, draftsURL(r.PostForm.Get("report"), "sent", r.PathValue("id")), http.StatusSeeOther)
	return nil
}

// draftError shows the review page again with a refusal the administrator
// can fix; anything else is an error page.
func (h *adminPlane) draftError(w http.ResponseWriter, r *http.Request, ar *adminReq, err error) error {
	switch ferry.KindOf(err) {
	case ferry.Invalid, ferry.Exist, ferry.NotExist, ferry.Permission, ferry.Unavailable:
		return h.showDrafts(w, r, ar, statusOf(ferry.KindOf(err)), ferry.Message(err), "")
	}
	return err
}

// The admin API.

// draftJSON is a drafted notification as the admin API returns it.
type draftJSON struct {
	ID         string    `json:"id"`
	Report     string    `json:"report"`
	OrgID      string    `json:"org_id"`
	PartyID    string    `json:"party_id"`
	Party      string    `json:"party"`
	To         []string  `json:"to"`
	Subject    string    `json:"subject"`
	Text       string    `json:"text"`
	State      string    `json:"state"`
	Checkpoint int64     `json:"checkpoint"`
	Created    time.Time `json:"created"`
	CreatedBy  string    `json:"created_by"`
	Sent       time.Time `json:"sent,omitzero"`
	SentBy     string    `json:"sent_by,omitempty"`
}

func draftsJSON(ds []*ferry.ImpactDraft) []draftJSON {
	out := make([]draftJSON, 0, len(ds))
	for _, x := range ds {
		to := x.Recipients
		if to == nil {
			to = []string{}
		}
		out = append(out, draftJSON{ID: x.ID, Report: x.Report, OrgID: x.OrgID, PartyID: x.PartyID, Party: x.Party, To: to,
			Subject: x.Subject, Text: x.Body, State: x.State, Checkpoint: x.Checkpoint, Created: x.Created, CreatedBy: x.CreatedBy,
			Sent: x.Sent, SentBy: x.SentBy})
	}
	return out
}

// impactAPI is GET /admin/v1/impact?from=…&to=…[&org&actor&token&session&ip&verify=1].
func (h *adminPlane) impactAPI(w http.ResponseWriter, r *http.Request) error {
	p := principalFrom(r.Context())
	q := r.URL.Query()
	sc, err := h.parseImpactScope(r, p, q)
	if err != nil {
		return err
	}
	rep, err := h.admin.ImpactReport(r.Context(), p, sc, q.Get("verify") != "")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// impactDraftCreateAPI is POST /admin/v1/impact/drafts {"from", "to", "org",
// "actor", "token", "session", "ip"}: the report and its drafts.
func (h *adminPlane) impactDraftCreateAPI(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		From    string `json:"from"`
		To      string `json:"to"`
		Org     string `json:"org"`
		Actor   string `json:"actor"`
		Token   string `json:"token"`
		Session string `json:"session"`
		IP      string `json:"ip"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	p := principalFrom(r.Context())
	q := url.Values{"from": {req.From}, "to": {req.To}, "org": {req.Org}, "actor": {req.Actor}, "token": {req.Token}, "session": {req.Session}, "ip": {req.IP}}
	sc, err := h.parseImpactScope(r, p, q)
	if err != nil {
		return err
	}
	rep, drafts, err := h.admin.DraftImpactNotices(r.Context(), p, sc, false)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, struct {
		Report *audit.ImpactReport `json:"report"`
		Drafts []draftJSON         `json:"drafts"`
	}{rep, draftsJSON(drafts)})
	return nil
}

// impactDraftsAPI is GET /admin/v1/impact/drafts[?report=ID].
func (h *adminPlane) impactDraftsAPI(w http.ResponseWriter, r *http.Request) error {
	ds, err := h.admin.ImpactDrafts(r.Context(), principalFrom(r.Context()), r.URL.Query().Get("report"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Drafts []draftJSON `json:"drafts"`
	}{draftsJSON(ds)})
	return nil
}

// impactDraftEditAPI is POST /admin/v1/impact/drafts/{id} {"to", "subject", "text"}.
func (h *adminPlane) impactDraftEditAPI(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		To      []string `json:"to"`
		Subject string   `json:"subject"`
		Text    string   `json:"text"`
	}
	if err := decodeJSON(w, r, 2<<20, &req); err != nil {
		return err
	}
	if err := h.admin.EditImpactDraft(r.Context(), principalFrom(r.Context()), r.PathValue("id"), req.To, req.Subject, req.Text); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, okJSON{OK: true, ID: r.PathValue("id")})
	return nil
}

// impactDraftSendAPI is POST /admin/v1/impact/drafts/{id}/send.
func (h *adminPlane) impactDraftSendAPI(w http.ResponseWriter, r *http.Request) error {
	if err := h.admin.SendImpactDraft(r.Context(), principalFrom(r.Context()), r.PathValue("id")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, okJSON{OK: true, ID: r.PathValue("id")})
	return nil
}
