package httpd

import (
	"encoding/csv"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"ferry.dev/ferry/internal/admin"
	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/ferry"
)

// The admin UI's audit log view (filters, verification status, the latest
// signed checkpoint, CSV and JSON export) and dashboard.

// auditShown is how many of the newest matching events the page shows;
// exports have no limit.
const auditShown = 500

// auditPageData is the audit page's data.
type auditPageData struct {
	Form    url.Values   // the filter as given, to refill the form
	Query   template.URL // the filter as a query string (url.Values.Encode), for export links
	Events  []*ferry.Event
	Matched int // events matching, of which the newest auditShown are shown
	Status  *admin.AuditStatus
	Verify  bool // verification was asked for
	AllOrgs bool // the filter may name an organisation
}

// parseAuditFilter reads the filter form: since/until (a date, or date and
// time, UTC), actor, party, path, action (a "prefix*" allowed), org.
func parseAuditFilter(q url.Values) (audit.Filter, error) {
	const op = "httpd.auditFilter"
	f := audit.Filter{Actor: strings.TrimSpace(q.Get("actor")), Party: strings.TrimSpace(q.Get("party")),
		Path: strings.TrimSpace(q.Get("path")), Action: strings.TrimSpace(q.Get("action")), Org: strings.TrimSpace(q.Get("org"))}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		v := strings.TrimSpace(q.Get(t.name))
		if v == "" {
			continue
		}
		var err error
		for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339, "2006-01-02"} {
			var tm time.Time
			if tm, err = time.Parse(layout, v); err == nil {
				*t.dst = tm.UTC()
				break
			}
		}
		if err != nil {
			return f, ferry.Errorf(op, ferry.Invalid, "%s: want a date (2026-01-31) or a date and time (2026-01-31T13:45), UTC", t.name)
		}
	}
	if f.Path != "" && !strings.HasPrefix(f.Path, "/") {
		f.Path = "/" + f.Path
	}
	return f, nil
}

func (h *adminPlane) auditPage(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	ctx := r.Context()
	q := r.URL.Query()
	d := ar.data("Audit log", "audit")
	pd := &auditPageData{Form: q, Verify: q.Get("verify") != "", AllOrgs: ar.p.ServerAdmin}
	d.Data = pd
	var err error
	if d.Orgs, err = h.admin.Orgs(ctx, ar.p); err != nil {
		return err
	}
	if pd.Status, err = h.admin.AuditStatus(ctx, ar.p, pd.Verify); err != nil {
		return err
	}
	f, err := parseAuditFilter(q)
	if err != nil {
		d.Error = ferry.Message(err)
		return h.show(w, http.StatusBadRequest, "audit", d)
	}
	exp := url.Values{}
	for _, k := range []string{"since", "until", "actor", "party", "path", "action", "org"} {
		if v := q.Get(k); v != "" {
			exp.Set(k, v)
		}
	}
	pd.Query = template.URL(exp.Encode())
	// The newest auditShown matches, newest first.
	ring := make([]*ferry.Event, 0, auditShown)
	err = h.admin.AuditEvents(ctx, ar.p, f, func(ev *ferry.Event) error {
		if len(ring) == auditShown {
			ring = ring[1:]
		}
		ring = append(ring, ev)
		pd.Matched++
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(ring) - 1; i >= 0; i-- {
		pd.Events = append(pd.Events, ring[i])
	}
	return h.show(w, http.StatusOK, "audit", d)
}

// auditCSVHeader is the header row of the CSV export.
var auditCSVHeader = []string{"seq", "time", "action", "outcome", "actor", "actor_id", "org", "org_id", "party", "party_id",
	"object", "path", "remote", "session", "token", "bytes", "offset", "sha256", "detail", "protocol"}

func auditCSVRow(ev *ferry.Event) []string {
	return []string{strconv.FormatInt(ev.Seq, 10), ev.Time.UTC().Format(time.RFC3339Nano), ev.Action, string(ev.Outcome), ev.Actor, ev.ActorID,
		ev.Org, ev.OrgID, ev.Party, ev.PartyID, ev.Object, ev.Path, ev.Remote, ev.Session, ev.Token,
		strconv.FormatInt(ev.Bytes, 10), strconv.FormatInt(ev.Offset, 10), ev.SHA256, csvSafe(ev.Detail), ev.Protocol}
}

// csvSafe keeps a spreadsheet from taking a field for a formula (a user can
// choose what some fields say, e.g. a file name in a detail).
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// auditExport streams the matching events as CSV (format=csv) or as a JSON
// array (format=json), as a download. The export is audited.
func (h *adminPlane) auditExport(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	q := r.URL.Query()
	format := q.Get("format")
	if format != "csv" && format != "json" {
		return ferry.E("httpd.auditExport", ferry.Invalid, "format must be csv or json")
	}
	f, err := parseAuditFilter(q)
	if err != nil {
		return err
	}
	name := "ferry-audit-" + time.Now().UTC().Format("20060102T150405Z") + "." + format
	started := false
	start := func(ct string) {
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		started = true
	}
	flusher := http.NewResponseController(w)
	n := 0
	if format == "csv" {
		cw := csv.NewWriter(w)
		err = h.admin.ExportAudit(r.Context(), ar.p, f, format, func(ev *ferry.Event) error {
			if !started {
				start("text/csv; charset=utf-8")
				cw.Write(auditCSVHeader)
			}
			cw.Write(auditCSVRow(ev))
			if n++; n%1000 == 0 {
				cw.Flush()
				flusher.Flush()
			}
			return cw.Error()
		})
		if err == nil && !started {
			start("text/csv; charset=utf-8")
			cw.Write(auditCSVHeader)
		}
		cw.Flush()
		if err == nil {
			err = cw.Error()
		}
		return err
	}
	err = h.admin.ExportAudit(r.Context(), ar.p, f, format, func(ev *ferry.Event) error {
		sep := ",\n"
		if !started {
			start("application/json")
			sep = "[\n"
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if _, err := w.Write(append([]byte(sep), b...)); err != nil {
			return err
		}
		if n++; n%1000 == 0 {
			flusher.Flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !started {
		start("application/json")
		_, err = w.Write([]byte("[]\n"))
		return err
	}
	_, err = w.Write([]byte("\n]\n"))
	return err
}

// ---------------------------------------------------------------- dashboard

// dashboardData is the dashboard's data: the numbers and their charts.
type dashboardData struct {
	*admin.Dashboard
	Days       int
	BytesChart *barChart
	FilesChart *barChart
	FailChart  *barChart
	OrgChart   *hbarChart
	PartyChart *hbarChart
	UserChart  *hbarChart
}

func (h *adminPlane) dashboard(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	days := 14
	if v := r.URL.Query().Get("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return ferry.E("httpd.dashboard", ferry.Invalid, "days must be a number from 1 to 90")
		}
		days = n
	}
	dash, err := h.admin.Dashboard(r.Context(), ar.p, days)
	if err != nil {
		return err
	}
	d := ar.data("Dashboard", "dashboard")
	if d.Orgs, err = h.admin.Orgs(r.Context(), ar.p); err != nil {
		return err
	}
	dd := &dashboardData{Dashboard: dash, Days: days}
	var labels []string
	var bin, bout, fin, fout, fail []int64
	for _, day := range dash.Days {
		labels = append(labels, day.Day.Format("01-02"))
		bin, bout = append(bin, day.BytesIn), append(bout, day.BytesOut)
		fin, fout = append(fin, day.FilesIn), append(fout, day.FilesOut)
		fail = append(fail, day.FailedLogins)
	}
	dd.BytesChart = newBarChart("Bytes in and out per day", labels, humanSize, series{"in", "Bytes in", bin}, series{"out", "Bytes out", bout})
	count := func(n int64) string { return strconv.FormatInt(n, 10) }
	dd.FilesChart = newBarChart("Files in and out per day", labels, count, series{"in", "Files in", fin}, series{"out", "Files out", fout})
	dd.FailChart = newBarChart("Failed sign-ins per day", labels, count, series{"fail", "Failed sign-ins", fail})
	dd.OrgChart = newHBarChart("Bytes in and out per organisation", dash.Orgs)
	dd.PartyChart = newHBarChart("Bytes in and out per party", dash.Parties)
	dd.UserChart = newHBarChart("Top users by bytes in and out", dash.TopUsers)
	d.Data = dd
	return h.show(w, http.StatusOK, "dashboard", d)
}
