package audit

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
)

// Filter selects audit events. Zero fields match everything.
type Filter struct {
	Since time.Time // events at or after
	Until time.Time // events before
	Actor string    // exact actor name (email, "operator", "system")
	// Path selects events on the path or below it: "/a/b" matches "/a/b"
	// and "/a/b/c", not "/a/bc".
	Path   string
	Party  string // party name or id
	Action string // exact action, or a prefix ending in "*": "file.*"
	Org    string // organisation name or id
}

// Query calls fn, in log order, for each event matching f. It selects rows by
// their indexed columns, then decodes each record and checks the filter again
// against the decoded event, which is what fn receives. Query trusts the
// database: run Verify to know that it was not altered.
func Query(ctx context.Context, d *db.DB, f Filter, fn func(*ferry.Event) error) error {
	const op = "audit.Query"
	df := db.AuditFilter{Since: f.Since, Until: f.Until, Actor: f.Actor, Org: f.Org, Party: f.Party, PathPrefix: f.Path}
	if p, ok := strings.CutSuffix(f.Action, "*"); ok {
		df.ActionPrefix = p
	} else {
		df.Action = f.Action
	}
	return d.AuditQuery(ctx, df, func(r *db.AuditRow) error {
		ev := new(ferry.Event)
		if err := json.Unmarshal(r.Data, ev); err != nil {
			return ferry.E(op, ferry.Integrity, "record "+itoa(r.Seq)+" is not a valid event (run ferry audit verify)", err)
		}
		if ev.Seq != r.Seq {
			return ferry.E(op, ferry.Integrity, "record "+itoa(r.Seq)+" says it is record "+itoa(ev.Seq)+" (run ferry audit verify)")
		}
		if !f.match(ev) {
			return nil
		}
		return fn(ev)
	})
}

func (f *Filter) match(ev *ferry.Event) bool {
	if !f.Since.IsZero() && ev.Time.Before(f.Since) || !f.Until.IsZero() && !ev.Time.Before(f.Until) {
		return false
	}
	if f.Actor != "" && ev.Actor != f.Actor {
		return false
	}
	if f.Org != "" && ev.Org != f.Org && ev.OrgID != f.Org {
		return false
	}
	if f.Party != "" && ev.Party != f.Party && ev.PartyID != f.Party {
		return false
	}
	if p, ok := strings.CutSuffix(f.Action, "*"); ok {
		if !strings.HasPrefix(ev.Action, p) {
			return false
		}
	} else if f.Action != "" && ev.Action != f.Action {
		return false
	}
	if f.Path != "" && ev.Path != f.Path && !strings.HasPrefix(ev.Path, strings.TrimSuffix(f.Path, "/")+"/") {
		return false
	}
	return true
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
