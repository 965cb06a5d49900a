package audit

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
)

func TestCheckCanonical(t *testing.T) {
	tm := time.Date(2025, 6, 1, 9, 0, 0, 123456000, time.UTC)
	row := func(ev *ferry.Event) *db.AuditRow {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		return &db.AuditRow{Seq: ev.Seq, Time: ev.Time, Action: ev.Action, Actor: ev.Actor, Org: ev.Org, OrgID: ev.OrgID,
			Party: ev.Party, PartyID: ev.PartyID, Path: ev.Path, Data: b}
	}
	full := &ferry.Event{Seq: 42, Time: tm, Action: "file.read", Outcome: ferry.OutcomeOK, Actor: "a@x.test", ActorID: "u1",
		Org: "acme", OrgID: "o1", Party: "Globex <&>", PartyID: "p1", Object: "f1", Path: "/a/\"quoted\"/ü/\u2028",
		Remote: "1.2.3.4:5", Bytes: 1 << 40, Offset: -1, SHA256: "ab", Detail: "tab\there", Protocol: "sftp"}
	for _, ev := range []*ferry.Event{
		full,
		{Seq: 0, Time: tm, Action: "user.login", Outcome: ferry.OutcomeDenied, Actor: "anonymous"},
		{Seq: 7},
	} {
		if why := checkCanonical(row(ev)); why != "" {
			t.Errorf("canonical event %+v rejected: %s", ev, why)
		}
	}

	for _, tc := range []struct {
		name string
		edit func(r *db.AuditRow)
		want string
	}{
		{"seq", func(r *db.AuditRow) { r.Seq = 41 }, "says it is record 42"},
		{"time column", func(r *db.AuditRow) { r.Time = r.Time.Add(time.Microsecond) }, "column time"},
		{"actor column", func(r *db.AuditRow) { r.Actor = "b@x.test" }, "column actor"},
		{"party column", func(r *db.AuditRow) { r.Party = "Globex" }, "column party"},
		{"path column", func(r *db.AuditRow) { r.Path = "/a" }, "column path"},
		{"org cleared", func(r *db.AuditRow) { r.Org = "" }, "column org"},
		{"space", func(r *db.AuditRow) { r.Data = []byte(strings.Replace(string(r.Data), `"seq":42`, `"seq": 42`, 1)) }, "canonical"},
		{"duplicate", func(r *db.AuditRow) {
			r.Data = []byte(strings.Replace(string(r.Data), `,"protocol"`, `,"actor":"b@x.test","protocol"`, 1))
		}, "unexpected or repeated field"},
		{"case variant", func(r *db.AuditRow) {
			r.Data = []byte(strings.Replace(string(r.Data), `,"protocol"`, `,"Actor":"b@x.test","protocol"`, 1))
		}, "unexpected"},
		{"unknown", func(r *db.AuditRow) { r.Data = []byte(strings.Replace(string(r.Data), `}`, `,"x":"y"}`, 1)) }, "unexpected"},
		{"reordered", func(r *db.AuditRow) {
			r.Data = []byte(strings.Replace(string(r.Data), `"action":"file.read","outcome":"ok"`, `"outcome":"ok","action":"file.read"`, 1))
		}, "lacks field \"action\""},
		{"missing actor", func(r *db.AuditRow) {
			r.Data = []byte(strings.Replace(string(r.Data), `"actor":"a@x.test",`, ``, 1))
		}, "lacks field \"actor\""},
		{"float", func(r *db.AuditRow) {
			r.Data = []byte(strings.Replace(string(r.Data), `"offset":-1`, `"offset":-1.0`, 1))
		}, "canonical"},
		{"leading zero", func(r *db.AuditRow) {
			r.Data = []byte(strings.Replace(string(r.Data), `"offset":-1`, `"offset":-01`, 1))
		}, "offset"},
		{"string number", func(r *db.AuditRow) {
			r.Data = []byte(strings.Replace(string(r.Data), `"offset":-1`, `"offset":"-1"`, 1))
		}, "offset"},
		{"bad utf8", func(r *db.AuditRow) { r.Data = []byte(strings.Replace(string(r.Data), `"u1"`, "\"u\xff\"", 1)) }, "actor_id"},
		{"bad escape", func(r *db.AuditRow) { r.Data = []byte(strings.Replace(string(r.Data), `"u1"`, `"u\x"`, 1)) }, "actor_id"},
		{"trailing", func(r *db.AuditRow) { r.Data = append(r.Data, ' ') }, "not a JSON object"},
		{"bad time", func(r *db.AuditRow) {
			r.Data = []byte(strings.Replace(string(r.Data), `"2025-06-01T09:00:00.123456Z"`, `"2025-06-01 09:00:00Z"`, 1))
		}, "not a time"},
	} {
		r := row(full)
		tc.edit(r)
		if why := checkCanonical(r); !strings.Contains(why, tc.want) {
			t.Errorf("%s: checkCanonical = %q, want it to mention %q", tc.name, why, tc.want)
		}
	}
}
