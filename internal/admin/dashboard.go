package admin

import (
	"context"
	"time"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/ferry"
)

// Traffic is what went in and out: bytes and files written ("file.write")
// and read ("file.read").
type Traffic struct {
	BytesIn, BytesOut int64
	FilesIn, FilesOut int64
}

func (t Traffic) total() int64 { return t.BytesIn + t.BytesOut }

func (t *Traffic) add(ev *ferry.Event) {
	switch ev.Action {
	case "file.write":
		t.BytesIn += ev.Bytes
		t.FilesIn++
	case "file.read":
		t.BytesOut += ev.Bytes
		t.FilesOut++
	}
}

// DayStats is one day (UTC) of the dashboard.
type DayStats struct {
	Day time.Time
	Traffic
	FailedLogins int64
}

// NamedTraffic is the traffic of one organisation, party or user.
type NamedTraffic struct {
	Name string
	Traffic
}

// Dashboard is the admin UI's summary of recent activity, computed from
// the audit log.
type Dashboard struct {
	Since, Until time.Time
	Days         []DayStats // oldest first, one per day
	Total        Traffic
	Orgs         []NamedTraffic // busiest first
	Parties      []NamedTraffic // busiest first
	TopUsers     []NamedTraffic // busiest first, at most 10
	FailedLogins int64
	Alerts       []*ferry.Event // newest first, at most 20
}

// Dashboard summarises the last days days (1-90, UTC) of the audit log that
// p may read: successful file reads and writes per day, organisation, party
// and user; refused sign-ins (password, token, SSH); "alert.*" events.
func (s *Service) Dashboard(ctx context.Context, p *ferry.Principal, days int) (*Dashboard, error) {
	const op = "admin.Dashboard"
	if days < 1 || days > 90 {
		return nil, ferry.E(op, ferry.Invalid, "a dashboard covers 1 to 90 days")
	}
	until := s.now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1)
	since := until.AddDate(0, 0, -days)
	f, err := s.auditFilter(op, p, audit.Filter{Since: since, Until: until})
	if err != nil {
		return nil, err
	}
	d := &Dashboard{Since: since, Until: until, Days: make([]DayStats, days)}
	for i := range d.Days {
		d.Days[i].Day = since.AddDate(0, 0, i)
	}
	orgs, parties, users := map[string]*NamedTraffic{}, map[string]*NamedTraffic{}, map[string]*NamedTraffic{}
	bump := func(m map[string]*NamedTraffic, name string, ev *ferry.Event) {
		if name == "" {
			return
		}
		n := m[name]
		if n == nil {
			n = &NamedTraffic{Name: name}
			m[name] = n
		}
		n.add(ev)
	}
	err = audit.Query(ctx, s.db, f, func(ev *ferry.Event) error {
		i := int(ev.Time.UTC().Sub(since) / (24 * time.Hour))
		if i < 0 || i >= days {
			return nil
		}
		day := &d.Days[i]
		switch {
		case (ev.Action == "file.write" || ev.Action == "file.read") && ev.Outcome == ferry.OutcomeOK:
			day.add(ev)
			d.Total.add(ev)
			org := ev.Org
			if org == "" {
				org = ev.OrgID
			}
			bump(orgs, org, ev)
			bump(parties, ev.Party, ev)
			bump(users, ev.Actor, ev)
		case (ev.Action == "auth.login" || ev.Action == "auth.token" || ev.Action == "auth.ssh") && ev.Outcome == ferry.OutcomeDenied:
			day.FailedLogins++
			d.FailedLogins++
		case len(ev.Action) > 6 && ev.Action[:6] == "alert.":
			d.Alerts = append(d.Alerts, ev)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	list := func(m map[string]*NamedTraffic, max int) []NamedTraffic {
		var out []NamedTraffic
		for _, k := range sortedKeys(m) {
			if max > 0 && len(out) == max {
				break
			}
			out = append(out, *m[k])
		}
		return out
	}
	d.Orgs, d.Parties, d.TopUsers = list(orgs, 0), list(parties, 0), list(users, 10)
	// Newest alerts first, twenty at most.
	for i, j := 0, len(d.Alerts)-1; i < j; i, j = i+1, j-1 {
		d.Alerts[i], d.Alerts[j] = d.Alerts[j], d.Alerts[i]
	}
	if len(d.Alerts) > 20 {
		d.Alerts = d.Alerts[:20]
	}
	return d, nil
}
