package audit

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
)

// The impact report: whose files were read, by whom, in a scope of the log.
// It is computed from the read records (db.ReadAction) found through the
// indexes of migration 0012, only among the records a signed checkpoint
// covers, and cites that checkpoint so that it can be checked later against
// the log (docs/IMPACT.md).

// ImpactSchema names the version of the report's JSON form. A change that
// removes or redefines a field gets a new version.
const ImpactSchema = "ferry.impact/1"

// ImpactScope selects the reads a report covers. From and To are required;
// the other fields narrow the scope when set.
type ImpactScope struct {
	From, To time.Time    // reads at or after From and before To
	OrgID    string       // one organisation; empty: all of them
	Actor    string       // exact actor (email, share or package visitor)
	Token    string       // API token id
	Session  string       // session id as recorded
	CIDR     netip.Prefix // remote addresses in this prefix; invalid (zero): any
}

// Validate checks the scope.
func (s *ImpactScope) Validate() error {
	const op = "audit.ImpactScope"
	if s.From.IsZero() || s.To.IsZero() {
		return ferry.E(op, ferry.Invalid, "a scope needs a start and an end (--from, --to)")
	}
	if !s.From.Before(s.To) {
		return ferry.E(op, ferry.Invalid, "the scope's start must be before its end")
	}
	return nil
}

// ImpactReport is the result of Impact; its JSON form is the documented
// schema ImpactSchema (docs/IMPACT.md).
type ImpactReport struct {
	Schema    string            `json:"schema"`
	Generated time.Time         `json:"generated"`
	Scope     ImpactScopeJSON   `json:"scope"`
	Check     ImpactCheckpoint  `json:"checkpoint"`
	Verify    *ImpactVerify     `json:"verification"`
	Pending   int64             `json:"reads_after_checkpoint"`
	Totals    ImpactTotals      `json:"totals"`
	Parties   []*PartyImpact    `json:"parties"`
	NoParty   *PartyImpact      `json:"no_party"`
	Denied    int64             `json:"denied_reads"`
	names     map[string]string // remote address → as listed
}

// ImpactScopeJSON is the scope as the report states it.
type ImpactScopeJSON struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	OrgID   string    `json:"org_id,omitempty"`
	Actor   string    `json:"actor,omitempty"`
	Token   string    `json:"token,omitempty"`
	Session string    `json:"session,omitempty"`
	CIDR    string    `json:"cidr,omitempty"`
}

// ImpactCheckpoint is the signed checkpoint a report was computed against:
// only records 0…Size-1 were considered.
type ImpactCheckpoint struct {
	Origin string    `json:"origin"`
	Size   int64     `json:"size"`
	Root   string    `json:"root"` // base64, as in the note
	Time   time.Time `json:"time"`
	Note   string    `json:"note"` // the signed note, to save and check with ferry audit verify --checkpoint
	// MatchesLog says that the root hash of the first Size records, as
	// stored, equals the signed one.
	MatchesLog bool `json:"matches_log"`
}

// ImpactVerify is the outcome of a full audit.Verify run with the report.
type ImpactVerify struct {
	OK      bool   `json:"ok"`
	Records int64  `json:"records"`
	Problem string `json:"problem,omitempty"`
}

// ImpactTotals sums a report.
type ImpactTotals struct {
	Parties int   `json:"parties"` // not counting "no party"
	Files   int   `json:"files"`
	Reads   int64 `json:"reads"`
	Bytes   int64 `json:"bytes"`
}

// PartyImpact is what was read of one party's files (or of files with no
// party, PartyID empty).
type PartyImpact struct {
	PartyID  string        `json:"party_id"`
	Party    string        `json:"party"`
	OrgID    string        `json:"org_id"`
	Org      string        `json:"org"`
	Contacts []string      `json:"contacts"`
	Files    []*FileImpact `json:"files"`
	Reads    int64         `json:"reads"`
	Bytes    int64         `json:"bytes"`
	First    time.Time     `json:"first"`
	Last     time.Time     `json:"last"`
	Actors   []string      `json:"actors"`
	Remotes  []string      `json:"remotes"`

	files   map[fileKey]*FileImpact
	actors  map[string]bool
	remotes map[string]bool
}

// fileKey names one file version: its id and content hash.
type fileKey struct{ id, sha256 string }

// FileImpact is what was read of one file version.
type FileImpact struct {
	Path   string    `json:"path"`
	FileID string    `json:"file_id"`
	SHA256 string    `json:"sha256"`
	Bytes  int64     `json:"bytes"`
	Reads  int64     `json:"reads"`
	First  time.Time `json:"first"`
	Last   time.Time `json:"last"`
	Actors []string  `json:"actors"`

	actors map[string]bool
}

// ImpactOptions are the optional parts of Impact.
type ImpactOptions struct {
	// Verify runs a full audit.Verify of the log (every record read once)
	// and states its outcome in the report; latestFile is the checkpoint
	// file's content, as for Verify.
	Verify     bool
	LatestFile []byte
	Now        func() time.Time
}

// Impact computes the impact report of scope from the log in d, against the
// newest checkpoint stored in d, which must be signed by v: reads in records
// past that checkpoint are counted in Pending, not reported. Callers holding
// the Log sign a fresh checkpoint first (Log.Checkpoint).
//
// Like Query, Impact decodes each record and checks the scope against the
// decoded event, which the log's hashes cover; Verify proves the records
// were not altered.
func Impact(ctx context.Context, d *db.DB, v note.Verifier, scope ImpactScope, opt ImpactOptions) (*ImpactReport, error) {
	const op = "audit.Impact"
	if err := scope.Validate(); err != nil {
		return nil, err
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	// Records written before migration 0012 get their columns first, so
	// that the filters see them.
	if _, err := d.BackfillAuditImpact(ctx); err != nil {
		return nil, ferry.E(op, err)
	}
	rep := &ImpactReport{
		Schema: ImpactSchema, Generated: opt.Now().UTC().Truncate(time.Second),
		Scope: ImpactScopeJSON{From: scope.From.UTC(), To: scope.To.UTC(), OrgID: scope.OrgID,
			Actor: scope.Actor, Token: scope.Token, Session: scope.Session},
		Parties: []*PartyImpact{}, names: map[string]string{},
	}
	if scope.CIDR.IsValid() {
		rep.Scope.CIDR = scope.CIDR.Masked().String()
	}
	// The checkpoint.
	var ck *Checkpoint
	switch c, err := d.LatestAuditCheckpoint(ctx); {
	case err == nil:
		if ck, err = ParseCheckpoint([]byte(c.Note), v); err != nil {
			return nil, ferry.E(op, err)
		}
	case ferry.KindOf(err) == ferry.NotExist:
		return nil, ferry.E(op, ferry.Unavailable, "the audit log has no signed checkpoint yet")
	default:
		return nil, ferry.E(op, err)
	}
	rep.Check = ImpactCheckpoint{Origin: ck.Origin, Size: ck.N, Root: ck.Hash.String(), Time: ck.Time.UTC(), Note: string(ck.Note)}
	if ck.N > 0 {
		h, err := tlog.TreeHash(ck.N, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			hs, err := d.AuditHashes(ctx, idx)
			if err != nil {
				return nil, err
			}
			out := make([]tlog.Hash, len(hs))
			for i, b := range hs {
				if len(b) != tlog.HashSize {
					return nil, ferry.Errorf(op, ferry.Integrity, "stored hash %d has %d bytes", idx[i], len(b))
				}
				out[i] = tlog.Hash(b)
			}
			return out, nil
		}))
		if err != nil && ferry.KindOf(err) != ferry.Integrity && ferry.KindOf(err) != ferry.NotExist {
			return nil, ferry.E(op, err)
		}
		rep.Check.MatchesLog = err == nil && h == ck.Hash
	} else {
		rep.Check.MatchesLog = true
	}
	if opt.Verify {
		vr, err := Verify(ctx, d, v, nil, opt.LatestFile)
		switch {
		case err == nil:
			// Verify has checked the read columns too (VerifyReadColumns).
			rep.Verify = &ImpactVerify{OK: true, Records: vr.Records}
		case ferry.KindOf(err) == ferry.Integrity:
			rep.Verify = &ImpactVerify{Problem: err.Error()}
		default:
			return nil, ferry.E(op, err)
		}
	}

	// The reads.
	f := db.ImpactFilter{Since: scope.From, Until: scope.To, OrgID: scope.OrgID,
		Actor: scope.Actor, Token: scope.Token, Session: scope.Session}
	if scope.CIDR.IsValid() {
		f.IPLo, f.IPHi = db.PrefixRange(scope.CIDR)
	}
	parties := map[string]*PartyImpact{}
	ev := new(ferry.Event) // reused: the report keeps only its strings
	err := d.AuditReads(ctx, f, func(r *db.AuditRow) error {
		*ev = ferry.Event{}
		if err := json.Unmarshal(r.Data, ev); err != nil {
			return ferry.E(op, ferry.Integrity, "record "+itoa(r.Seq)+" is not a valid event (run ferry audit verify)", err)
		}
		if ev.Seq != r.Seq {
			return ferry.E(op, ferry.Integrity, "record "+itoa(r.Seq)+" says it is record "+itoa(ev.Seq)+" (run ferry audit verify)")
		}
		if !scope.match(ev) {
			return nil
		}
		if ev.Seq >= ck.N {
			if ev.Outcome == ferry.OutcomeOK {
				rep.Pending++
			}
			return nil
		}
		rep.add(parties, ev)
		return nil
	})
	if err != nil {
		return nil, ferry.E(op, err)
	}
	// Contacts and order.
	known, err := d.PartyNames(ctx, scope.OrgID)
	if err != nil {
		return nil, ferry.E(op, err)
	}
	for _, p := range parties {
		p.finish()
		p.Contacts = []string{}
		if p.PartyID == "" {
			rep.NoParty = p
			continue
		}
		// A party deleted since keeps its name from the records, with
		// no contacts.
		if pt := known[p.PartyID]; pt != nil {
			p.Contacts = append(p.Contacts, pt.Contacts...)
			if p.Party == "" {
				p.Party = pt.Name
			}
		}
		rep.Parties = append(rep.Parties, p)
	}
	slices.SortFunc(rep.Parties, func(a, b *PartyImpact) int {
		return cmp.Or(strings.Compare(a.Org, b.Org), strings.Compare(a.Party, b.Party), strings.Compare(a.PartyID, b.PartyID))
	})
	for _, p := range append(slices.Clone(rep.Parties), rep.NoParty) {
		if p == nil {
			continue
		}
		rep.Totals.Files += len(p.Files)
		rep.Totals.Reads += p.Reads
		rep.Totals.Bytes += p.Bytes
	}
	rep.Totals.Parties = len(rep.Parties)
	return rep, nil
}

// match re-checks the scope against a decoded event.
func (s *ImpactScope) match(ev *ferry.Event) bool {
	if ev.Action != db.ReadAction || ev.Time.Before(s.From) || !ev.Time.Before(s.To) {
		return false
	}
	if s.OrgID != "" && ev.OrgID != s.OrgID || s.Actor != "" && ev.Actor != s.Actor ||
		s.Token != "" && ev.Token != s.Token || s.Session != "" && ev.Session != s.Session {
		return false
	}
	if s.CIDR.IsValid() {
		a, ok := remoteAddr(ev.Remote)
		if !ok || !s.CIDR.Masked().Contains(a.Unmap()) && !s.CIDR.Masked().Contains(a) {
			return false
		}
	}
	return true
}

// remoteAddr parses a recorded remote address, with or without a port.
func remoteAddr(remote string) (netip.Addr, bool) {
	k := db.RemoteKey(remote)
	if len(k) != 16 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16([16]byte(k)), true
}

// remoteName is a remote address as a report lists it: the address without
// its port.
func remoteName(remote string) string {
	if a, ok := remoteAddr(remote); ok {
		return a.Unmap().String()
	}
	return remote
}

// add counts one read record.
func (rep *ImpactReport) add(parties map[string]*PartyImpact, ev *ferry.Event) {
	var undelivered int64
	switch ev.Outcome {
	case ferry.OutcomeOK:
	case ferry.OutcomeDenied:
		rep.Denied++
		return
	default:
		// transfer records a read cut short as a second record, an error
		// saying how much of the bytes counted by the first was delivered.
		got, want, ok := interrupted(ev.Detail)
		if !ok {
			return
		}
		undelivered = want - got
	}
	p := parties[ev.PartyID]
	if p == nil {
		p = &PartyImpact{PartyID: ev.PartyID, Party: ev.Party, OrgID: ev.OrgID, Org: ev.Org,
			files: map[fileKey]*FileImpact{}, actors: map[string]bool{}, remotes: map[string]bool{}}
		parties[ev.PartyID] = p
	}
	key := fileKey{ev.Object, ev.SHA256}
	fi := p.files[key]
	if fi == nil {
		fi = &FileImpact{Path: ev.Path, FileID: ev.Object, SHA256: ev.SHA256, First: ev.Time, actors: map[string]bool{}}
		p.files[key] = fi
	}
	if undelivered > 0 {
		d := min(undelivered, fi.Bytes)
		fi.Bytes -= d
		p.Bytes -= d
		return
	}
	fi.Path = ev.Path // the newest name
	fi.Reads++
	fi.Bytes += ev.Bytes
	fi.Last = ev.Time
	fi.actors[ev.Actor] = true
	p.Reads++
	p.Bytes += ev.Bytes
	if p.First.IsZero() {
		p.First = ev.Time
	}
	p.Last = ev.Time
	p.actors[ev.Actor] = true
	if ev.Remote != "" {
		name, ok := rep.names[ev.Remote]
		if !ok {
			name = remoteName(ev.Remote)
			rep.names[ev.Remote] = name
		}
		p.remotes[name] = true
	}
	if ev.Org != "" {
		p.Org = ev.Org
	}
	if ev.Party != "" {
		p.Party = ev.Party
	}
}

// interrupted parses the detail of an interrupted read, "interrupted: GOT of
// WANT bytes delivered".
func interrupted(detail string) (got, want int64, ok bool) {
	s, ok := strings.CutPrefix(detail, "interrupted: ")
	if !ok {
		return 0, 0, false
	}
	f := strings.Fields(s)
	if len(f) < 3 || f[1] != "of" {
		return 0, 0, false
	}
	g, err1 := strconv.ParseInt(f[0], 10, 64)
	w, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || g < 0 || w < g {
		return 0, 0, false
	}
	return g, w, true
}

// finish turns the sets into sorted lists and drops files whose every read
// was an interrupted one outside the scope.
func (p *PartyImpact) finish() {
	p.Files = p.Files[:0]
	for _, f := range p.files {
		if f.Reads == 0 {
			continue
		}
		f.Actors = sortedSet(f.actors)
		p.Files = append(p.Files, f)
	}
	slices.SortFunc(p.Files, func(a, b *FileImpact) int {
		return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(a.FileID, b.FileID), strings.Compare(a.SHA256, b.SHA256))
	})
	p.Actors, p.Remotes = sortedSet(p.actors), sortedSet(p.remotes)
	if p.Files == nil {
		p.Files = []*FileImpact{}
	}
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// VerifyReadColumns checks that the token, session and address columns of
// every read record (migration 0012) agree with the record's JSON, which
// Verify has checked against the tree: the report's filters run on those
// columns. Records not yet backfilled (NULL address) are skipped; the report
// backfills them from the JSON first. Verify runs it after the tree
// verification; a failure is a ferry.Integrity error wrapping a
// *VerifyError.
func VerifyReadColumns(ctx context.Context, d *db.DB) error {
	return d.AuditReadColumns(ctx, func(seq int64, token, session string, ip, data []byte) error {
		if ip == nil {
			return nil
		}
		var ev struct{ Token, Session, Remote string }
		if err := json.Unmarshal(data, &ev); err != nil {
			return ferry.E("audit.VerifyReadColumns", ferry.Integrity, &VerifyError{Seq: seq, End: seq, Reason: "not a valid event"})
		}
		if ev.Token != token || ev.Session != session || !bytes.Equal(db.RemoteKey(ev.Remote), ip) {
			return ferry.E("audit.VerifyReadColumns", ferry.Integrity, &VerifyError{Seq: seq, End: seq,
				Reason: "its token, session or address column does not match the record"})
		}
		return nil
	})
}
