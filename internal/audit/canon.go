package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
)

// Verify must read a million records in seconds, and encoding/json decodes
// an event in about 5µs. Since every record the Log writes is the canonical
// encoding of a ferry.Event (json.Marshal: fields in declaration order,
// omitempty fields left out when empty), Verify instead walks the record as
// that canonical form, in a fraction of the time: anything else (unknown,
// repeated or reordered keys, other value types, invalid UTF-8) is rejected,
// which is also what makes the values it reads the ones json.Unmarshal
// would produce for Query.

// eventField is one JSON field of ferry.Event, in encoding order.
type eventField struct {
	name      string
	kind      reflect.Kind // reflect.String, reflect.Int64, or reflect.Struct for time.Time
	omitEmpty bool
	column    int // which indexed column it is (colNone if none)
}

// The indexed columns of an audit row.
const (
	colNone = iota
	colSeq
	colTime
	colAction
	colActor
	colOrg
	colOrgID
	colParty
	colPartyID
	colPath
	numCols
)

var eventFields = func() []eventField {
	cols := map[string]int{
		"seq": colSeq, "time": colTime, "action": colAction, "actor": colActor,
		"org": colOrg, "org_id": colOrgID, "party": colParty, "party_id": colPartyID, "path": colPath,
	}
	t := reflect.TypeFor[ferry.Event]()
	var fs []eventField
	for i := range t.NumField() {
		sf := t.Field(i)
		name, opts, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "-" || !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		k := sf.Type.Kind()
		switch {
		case sf.Type == reflect.TypeFor[time.Time]():
			k = reflect.Struct
		case k == reflect.String, k == reflect.Int64:
		default:
			panic("audit: ferry.Event field " + sf.Name + " has a type the canonical check does not know")
		}
		fs = append(fs, eventField{name: name, kind: k, omitEmpty: opts == "omitempty", column: cols[name]})
	}
	if fs[0].column != colSeq {
		panic("audit: ferry.Event's first JSON field must be seq")
	}
	return fs
}()

// checkCanonical checks that r.Data is the canonical JSON of an event whose
// seq and indexed fields equal r's columns. It returns a description of the
// first difference, or "".
func checkCanonical(r *db.AuditRow) string {
	d := r.Data
	var vals [numCols][]byte // raw JSON values of the indexed fields
	if len(d) < 2 || d[0] != '{' || d[len(d)-1] != '}' {
		return "data is not a JSON object"
	}
	p := 1
	next := 0 // index in eventFields of the next field allowed
	for first := true; p < len(d)-1; first = false {
		if !first {
			if d[p] != ',' {
				return "data is not canonical JSON (at byte " + strconv.Itoa(p) + ")"
			}
			p++
		}
		// Key: one of the event's field names, after the previous one.
		if p >= len(d) || d[p] != '"' {
			return "data is not canonical JSON (at byte " + strconv.Itoa(p) + ")"
		}
		end := bytes.IndexByte(d[p+1:], '"')
		if end < 0 || p+1+end+1 >= len(d) || d[p+1+end+1] != ':' {
			return "data is not canonical JSON (at byte " + strconv.Itoa(p) + ")"
		}
		key := d[p+1 : p+1+end]
		p += end + 3
		i := next
		for i < len(eventFields) && eventFields[i].name != string(key) {
			if !eventFields[i].omitEmpty {
				return "data lacks field " + strconv.Quote(eventFields[i].name)
			}
			i++
		}
		if i == len(eventFields) {
			return "data has an unexpected or repeated field " + strconv.Quote(string(key))
		}
		f := &eventFields[i]
		next = i + 1
		// Value.
		var n int
		var ok bool
		if f.kind == reflect.Int64 {
			n, ok = scanInt(d[p:])
		} else {
			n, ok = scanString(d[p:])
		}
		if !ok {
			return "field " + strconv.Quote(f.name) + " is not canonical JSON"
		}
		if f.column != colNone {
			vals[f.column] = d[p : p+n]
		}
		p += n
	}
	for _, f := range eventFields[next:] {
		if !f.omitEmpty {
			return "data lacks field " + strconv.Quote(f.name)
		}
	}

	if string(vals[colSeq]) != strconv.FormatInt(r.Seq, 10) {
		return fmt.Sprintf("data says it is record %s", vals[colSeq])
	}
	var t time.Time
	if err := t.UnmarshalJSON(vals[colTime]); err != nil {
		return "field \"time\" is not a time"
	}
	if micro(t) != micro(r.Time) {
		return "column time does not match the record's data"
	}
	for _, c := range []struct {
		col  int
		name string
		val  string
	}{
		{colAction, "action", r.Action}, {colActor, "actor", r.Actor},
		{colOrg, "org", r.Org}, {colOrgID, "org_id", r.OrgID},
		{colParty, "party", r.Party}, {colPartyID, "party_id", r.PartyID},
		{colPath, "path", r.Path},
	} {
		if !equalJSONString(vals[c.col], c.val) {
			return "column " + c.name + " does not match the record's data"
		}
	}
	return ""
}

func micro(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// scanInt returns the length of the canonical JSON integer (an int64) at the
// start of b.
func scanInt(b []byte) (int, bool) {
	n := 0
	if n < len(b) && b[n] == '-' {
		n++
	}
	start := n
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	if n == start || b[start] == '0' && n > start+1 {
		return 0, false
	}
	if _, err := strconv.ParseInt(string(b[:n]), 10, 64); err != nil {
		return 0, false
	}
	return n, true
}

// scanString returns the length of the JSON string at the start of b,
// quotes included. A string with escapes is validated by encoding/json;
// one without must be valid UTF-8 without control characters, as
// json.Marshal writes it.
func scanString(b []byte) (int, bool) {
	if len(b) == 0 || b[0] != '"' {
		return 0, false
	}
	escaped := false
	for n := 1; n < len(b); n++ {
		switch c := b[n]; {
		case c == '\\':
			escaped = true
			n++
		case c == '"':
			s := b[:n+1]
			if escaped {
				return n + 1, json.Valid(s)
			}
			return n + 1, utf8.Valid(s)
		case c < 0x20:
			return 0, false
		}
	}
	return 0, false
}

// equalJSONString reports whether the raw JSON string raw (nil when the field
// was omitted) decodes to s.
func equalJSONString(raw []byte, s string) bool {
	if raw == nil {
		return s == ""
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1:len(raw)-1]) == s
	}
	var v string
	return json.Unmarshal(raw, &v) == nil && v == s
}
