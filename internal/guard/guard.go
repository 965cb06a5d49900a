package guard

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
)

// The default policy: what applies to an organisation that set none. A
// partner that syncs 50 new files every 5 minutes reads at most 150 distinct
// files in any 10 minutes; a thief reading everything is frozen after 180,
// which is under 1 % of an organisation with 20,000 files. See
// docs/GUARD.md.
const (
	DefaultWindow       = 10 * time.Minute
	DefaultMaxFiles     = 180
	DefaultMaxBytes     = 100 << 30
	DefaultAddrMaxFiles = 400
	DefaultOrgMaxFiles  = 2000
	DefaultPeakFactor   = 10
)

// The history rule (PeakFactor × the principal's 30-day peak) applies only
// to principals with peaks recorded on at least historyDays days, and only
// above historyFloor files in the window.
const (
	historyDays  = 7
	historyFloor = 60
	peakDays     = 30
)

// ErrFrozen is the error of every read, session and token of a frozen
// principal.
var ErrFrozen = ferry.E("guard", ferry.Permission, "frozen by the guard; ask an administrator")

// DefaultPolicy returns the policy of an organisation that set none.
func DefaultPolicy(orgID string) *db.GuardPolicy {
	return &db.GuardPolicy{OrgID: orgID, Window: DefaultWindow, MaxFiles: DefaultMaxFiles, MaxBytes: DefaultMaxBytes,
		AddrMaxFiles: DefaultAddrMaxFiles, OrgMaxFiles: DefaultOrgMaxFiles, PeakFactor: DefaultPeakFactor}
}

// Config holds a Guard's dependencies.
type Config struct {
	DB     *db.DB
	Audit  *audit.Log
	Now    func() time.Time
	Rand   io.Reader
	Logger *slog.Logger
	// Mail queues an alert email of a kind such as "alert.freeze" (the
	// template internal/mail/templates/alert_freeze.en.txt) to the given
	// addresses: mail.Outbox.Notify. Nil: alerts are not mailed.
	Mail func(ctx context.Context, kind string, to []string, data map[string]string) error
	// HTTP posts webhooks. It must refuse loopback, private and link-local
	// targets unless allow-listed (internal/outbound). Nil: webhooks stay
	// queued.
	HTTP *http.Client
	// VerifyAudit verifies the whole audit log; Run calls it every
	// VerifyEvery and raises "alert.audit" when it fails. Nil: never.
	VerifyAudit func(ctx context.Context) error
	VerifyEvery time.Duration
}

// Guard is the exfiltration circuit breaker. Its methods are safe for
// concurrent use; a nil *Guard allows everything.
type Guard struct {
	cfg Config

	mu       sync.Mutex
	trackers map[string]*tracker
	frozen   map[string]*db.GuardFreeze // subject → freeze
	canaries map[string]string          // file id → org id
	orgCan   map[string]int             // org id → number of canaries
	policies map[string]*cachedPolicy
	peaks    map[string]*peak
	tokens   map[string]tokenSeen // token id → where it was last used from
	pending  []peakRec            // peaks of past days not yet stored
	// gen counts changes to frozen and canaries made here; Refresh does
	// not replace them with what it read if one happened meanwhile.
	gen uint64
}

// peakRec is a daily peak to store.
type peakRec struct {
	subj  string
	day   int64
	today int
}

type cachedPolicy struct {
	p      *db.GuardPolicy
	loaded time.Time
}

// peak is a principal's history: its 30-day peak (the most distinct files it
// read in one window, per day) and today's, flushed to the database by Run.
type peak struct {
	past  int   // highest daily peak of the last 30 days, today excluded
	days  int   // days with a recorded peak
	day   int64 // the Unix day today's count is for
	today int
	dirty bool
	// unloaded: reading the history failed; it is read again on the next
	// use, so that one database error does not leave the principal without
	// a history (which would turn the history rule off) until it goes idle.
	unloaded bool
}

// policyTTL is how long a cached policy is used before it is read again (a
// change made through this node applies at once).
const policyTTL = 30 * time.Second

// New returns a guard with the freezes and canaries stored in the database.
func New(ctx context.Context, c Config) (*Guard, error) {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.VerifyEvery <= 0 {
		c.VerifyEvery = time.Hour
	}
	g := &Guard{cfg: c, trackers: map[string]*tracker{}, policies: map[string]*cachedPolicy{}, peaks: map[string]*peak{}, tokens: map[string]tokenSeen{}}
	if err := g.Refresh(ctx); err != nil {
		return nil, err
	}
	// On a database that never had a guard, alerts are delivered from
	// now on (older ones are history); Dispatch starts from here.
	if _, err := c.DB.GuardCursor(ctx, alertCursor); ferry.KindOf(err) == ferry.NotExist {
		size, err := c.DB.AuditSize(ctx)
		if err != nil {
			return nil, err
		}
		if _, err := c.DB.MoveGuardCursor(ctx, alertCursor, 0, size, true); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	return g, nil
}

// SetMail sets Config.Mail (for a mail outbox created after the guard).
// Call it before Run.
func (g *Guard) SetMail(fn func(ctx context.Context, kind string, to []string, data map[string]string) error) {
	g.mu.Lock()
	g.cfg.Mail = fn
	g.mu.Unlock()
}

// Refresh reloads the freezes and canaries from the database, so that those
// set or lifted on another node (or by an older process) apply here.
func (g *Guard) Refresh(ctx context.Context) error {
	g.mu.Lock()
	gen := g.gen
	g.mu.Unlock()
	frs, err := g.cfg.DB.GuardFreezes(ctx, "")
	if err != nil {
		return err
	}
	ids, err := g.cfg.DB.GuardCanaryIDs(ctx)
	if err != nil {
		return err
	}
	frozen := make(map[string]*db.GuardFreeze, len(frs))
	for _, f := range frs {
		frozen[f.Subject] = f
	}
	// Canaries need their organisation: keep what is known, look up the
	// rest once.
	g.mu.Lock()
	known := g.canaries
	g.mu.Unlock()
	canaries := make(map[string]string, len(ids))
	orgCan := map[string]int{}
	for _, id := range ids {
		org, ok := known[id]
		if !ok {
			f, err := g.cfg.DB.FileByID(ctx, id)
			switch {
			case err == nil:
				org = f.OrgID
			case ferry.KindOf(err) != ferry.NotExist:
				return err
			}
		}
		canaries[id] = org
		orgCan[org]++
	}
	g.mu.Lock()
	if g.gen == gen { // else a freeze or canary changed here meanwhile: next time
		g.frozen, g.canaries, g.orgCan = frozen, canaries, orgCan
	}
	g.mu.Unlock()
	return nil
}

// Subject names the principal the guard counts and freezes: a share link, a
// package guest, or a user (with all their tokens and sessions). It is ""
// for the operator and the system, which the guard does not limit.
func Subject(p *ferry.Principal) string {
	switch {
	case p == nil || p.Operator || p.System:
		return ""
	case p.ShareID != "":
		return "share:" + p.ShareID
	case p.Guest != "":
		return "guest:" + p.PackageID + ":" + p.Guest
	case p.UserID != "":
		return "user:" + p.UserID
	}
	return ""
}

// UserSubject is the subject of a user.
func UserSubject(userID string) string { return "user:" + userID }

// host returns the address part of a remote "host:port" or address.
func host(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// Frozen reports whether the subject is frozen.
func (g *Guard) Frozen(subject string) bool {
	if g == nil || subject == "" {
		return false
	}
	g.mu.Lock()
	_, ok := g.frozen[subject]
	g.mu.Unlock()
	return ok
}

// UserFrozen reports whether a user is frozen: internal/auth refuses their
// sessions and tokens while it is.
func (g *Guard) UserFrozen(userID string) bool { return g.Frozen(UserSubject(userID)) }

// CheckRead decides whether p may read n bytes of f now, counting the read.
// It returns ErrFrozen (a ferry.Permission error) when p is frozen, or when
// this read freezes it: a canary file, or a limit of the organisation's
// policy crossed. internal/transfer calls it before every read.
func (g *Guard) CheckRead(ctx context.Context, p *ferry.Principal, f *ferry.File, n int64) error {
	subj := Subject(p)
	if g == nil || subj == "" {
		return nil
	}
	pol := g.policy(ctx, f.OrgID)
	pk := g.peakOf(ctx, subj)
	now := g.cfg.Now()
	minute := now.Unix() / 60
	win := int64(pol.Window / time.Minute)
	if win < 1 {
		win = 1
	}
	if win > buckets {
		win = buckets
	}
	addr := "addr:" + host(p.Remote)

	g.mu.Lock()
	if _, ok := g.frozen[subj]; ok {
		g.mu.Unlock()
		return ErrFrozen
	}
	if _, ok := g.canaries[f.ID]; ok {
		g.mu.Unlock()
		return g.trip(ctx, p, subj, pol, "canary", "read canary file "+f.Path, f)
	}
	files, bytes := g.tracker(subj).add(minute, win, f.ID, n)
	day := now.Unix() / 86400
	if pk.day != day {
		if pk.dirty {
			g.pending = append(g.pending, peakRec{subj, pk.day, pk.today})
			pk.dirty = false
		}
		if pk.today > pk.past && pk.day != 0 {
			pk.past = pk.today
		}
		if pk.today > 0 {
			pk.days++
		}
		pk.day, pk.today = day, 0
	}
	if files > pk.today {
		pk.today, pk.dirty = files, true
	}
	var why string
	switch {
	case pol.MaxFiles > 0 && files > pol.MaxFiles:
		why = "read " + strconv.Itoa(files) + " distinct files in " + pol.Window.String() + " (limit " + strconv.Itoa(pol.MaxFiles) + ")"
	case pol.MaxBytes > 0 && bytes > pol.MaxBytes:
		why = "read " + strconv.FormatInt(bytes, 10) + " bytes in " + pol.Window.String() + " (limit " + strconv.FormatInt(pol.MaxBytes, 10) + ")"
	case pol.PeakFactor > 0 && pk.days >= historyDays && files > historyFloor && files > pol.PeakFactor*pk.past:
		why = "read " + strconv.Itoa(files) + " distinct files in " + pol.Window.String() + ", more than " + strconv.Itoa(pol.PeakFactor) +
			"× its 30-day peak of " + strconv.Itoa(pk.past)
	}
	if why == "" && addr != "addr:" {
		if af, _ := g.tracker(addr).add(minute, win, f.ID, n); pol.AddrMaxFiles > 0 && af > pol.AddrMaxFiles {
			why = "address " + host(p.Remote) + " read " + strconv.Itoa(af) + " distinct files in " + pol.Window.String() + " (limit " + strconv.Itoa(pol.AddrMaxFiles) + ")"
		}
	}
	var orgAlert string
	ot := g.tracker("org:" + f.OrgID)
	if of, _ := ot.add(minute, win, f.ID, n); pol.OrgMaxFiles > 0 && of > pol.OrgMaxFiles && ot.alerted <= minute-win {
		ot.alerted = minute
		orgAlert = "the organisation read " + strconv.Itoa(of) + " distinct files in " + pol.Window.String() + " (limit " + strconv.Itoa(pol.OrgMaxFiles) + ")"
	}
	if why != "" && pol.Monitor {
		// Alert once per window, not on every read past the limit.
		t := g.trackers[subj]
		if t.alerted > minute-win {
			why = ""
		} else {
			t.alerted = minute
		}
	}
	g.mu.Unlock()
	if orgAlert != "" {
		g.alert(ctx, &ferry.Event{Action: "alert.threshold", Actor: p.Name(), ActorID: p.UserID, OrgID: f.OrgID, Remote: p.Remote, Detail: orgAlert})
	}
	if why == "" {
		return nil
	}
	return g.trip(ctx, p, subj, pol, "limit", why, f)
}

func (g *Guard) tracker(key string) *tracker {
	t := g.trackers[key]
	if t == nil {
		t = newTracker()
		g.trackers[key] = t
	}
	return t
}

// trip freezes subj (unless the policy only monitors), audits why, and
// returns the error for the read that tripped it (nil in monitor mode).
func (g *Guard) trip(ctx context.Context, p *ferry.Principal, subj string, pol *db.GuardPolicy, reason, why string, f *ferry.File) error {
	ev := &ferry.Event{Actor: p.Name(), ActorID: p.UserID, OrgID: p.OrgID, Remote: p.Remote, Session: p.SessionID, Token: p.TokenID, Protocol: p.Protocol, Object: subj}
	if f != nil {
		ev.Path, ev.PartyID, ev.OrgID = f.Path, f.PartyID, f.OrgID
	}
	if reason == "canary" || reason == "share" {
		c := *ev
		c.Action, c.Detail = "alert.canary", why
		g.alert(ctx, &c)
	}
	if pol.Monitor {
		c := *ev
		c.Action, c.Detail = "alert.monitor", "monitor only, not frozen: "+why
		g.alert(ctx, &c)
		return nil
	}
	if err := g.Freeze(ctx, p, reason, why, ev); err != nil {
		return err
	}
	return ErrFrozen
}

// Freeze freezes p's subject for reason, and audits "alert.freeze" with
// the fields of ev (which may be nil). Freezing a frozen subject changes
// nothing.
func (g *Guard) Freeze(ctx context.Context, p *ferry.Principal, reason, why string, ev *ferry.Event) error {
	subj := Subject(p)
	if subj == "" {
		return ferry.E("guard.Freeze", ferry.Invalid, "the operator and the system cannot be frozen")
	}
	fr := &db.GuardFreeze{Subject: subj, OrgID: p.OrgID, Name: p.Name(), Reason: reason, Detail: why, Frozen: g.cfg.Now().UTC()}
	if p.ShareID == "" && p.Guest == "" {
		fr.UserID = p.UserID
	}
	g.mu.Lock()
	if _, ok := g.frozen[subj]; ok {
		g.mu.Unlock()
		return nil
	}
	// In memory first, so that concurrent reads are refused from now on.
	g.frozen[subj] = fr
	g.gen++
	g.mu.Unlock()
	created, err := g.cfg.DB.PutGuardFreeze(context.WithoutCancel(ctx), fr)
	g.mu.Lock()
	g.gen++ // a Refresh that read the database before this write must not drop it
	g.mu.Unlock()
	if err != nil {
		return err
	}
	if !created {
		return nil
	}
	if ev == nil {
		ev = &ferry.Event{Actor: p.Name(), ActorID: p.UserID, OrgID: p.OrgID, Remote: p.Remote, Session: p.SessionID, Token: p.TokenID, Protocol: p.Protocol, Object: subj}
	}
	a := *ev
	a.Action, a.Detail = "alert.freeze", reason+": "+why
	g.alert(ctx, &a)
	return nil
}

// Unfreeze lifts the freeze of subject and forgets what it read, so that it
// starts afresh. A subject that is not frozen is a ferry.NotExist error.
// The caller (internal/admin) audits it.
func (g *Guard) Unfreeze(ctx context.Context, subject string) error {
	if err := g.cfg.DB.DeleteGuardFreeze(ctx, subject); err != nil {
		if ferry.KindOf(err) == ferry.NotExist {
			return ferry.E("guard.Unfreeze", ferry.NotExist, "that principal is not frozen")
		}
		return err
	}
	g.mu.Lock()
	delete(g.frozen, subject)
	g.gen++
	if t := g.trackers[subject]; t != nil {
		t.reset()
	}
	g.mu.Unlock()
	return nil
}

// Freezes returns the frozen principals of an organisation ("" for all).
func (g *Guard) Freezes(ctx context.Context, orgID string) ([]*db.GuardFreeze, error) {
	return g.cfg.DB.GuardFreezes(ctx, orgID)
}

// policy returns an organisation's guard policy, cached.
func (g *Guard) policy(ctx context.Context, orgID string) *db.GuardPolicy {
	now := g.cfg.Now()
	g.mu.Lock()
	c := g.policies[orgID]
	g.mu.Unlock()
	if c != nil && now.Sub(c.loaded) < policyTTL && now.Sub(c.loaded) >= 0 {
		return c.p
	}
	p, err := g.cfg.DB.GuardPolicy(ctx, orgID)
	if err != nil {
		if ferry.KindOf(err) != ferry.NotExist {
			g.cfg.Logger.Error("guard: load policy", "org", orgID, "err", err)
			if c != nil {
				return c.p
			}
			// Not cached: the organisation's own policy is read again
			// on the next read.
			return DefaultPolicy(orgID)
		}
		p = DefaultPolicy(orgID)
	}
	g.mu.Lock()
	g.policies[orgID] = &cachedPolicy{p: p, loaded: now}
	g.mu.Unlock()
	return p
}

// Policy returns an organisation's guard policy (the default when it set
// none).
func (g *Guard) Policy(ctx context.Context, orgID string) (*db.GuardPolicy, error) {
	p, err := g.cfg.DB.GuardPolicy(ctx, orgID)
	if ferry.KindOf(err) == ferry.NotExist {
		return DefaultPolicy(orgID), nil
	}
	return p, err
}

// SetPolicy stores an organisation's guard policy after checking it; it
// applies on this node at once.
func (g *Guard) SetPolicy(ctx context.Context, p *db.GuardPolicy) error {
	const op = "guard.SetPolicy"
	switch {
	case p.Window < time.Minute || p.Window > buckets*time.Minute || p.Window%time.Minute != 0:
		return ferry.E(op, ferry.Invalid, "the window must be a whole number of minutes from 1m to 60m")
	case p.MaxFiles < 0 || p.MaxBytes < 0 || p.AddrMaxFiles < 0 || p.OrgMaxFiles < 0 || p.PeakFactor < 0:
		return ferry.E(op, ferry.Invalid, "limits cannot be negative (0 turns a limit off)")
	}
	p.Updated = g.cfg.Now().UTC()
	if err := g.cfg.DB.SetGuardPolicy(ctx, p); err != nil {
		return err
	}
	g.mu.Lock()
	g.policies[p.OrgID] = &cachedPolicy{p: p, loaded: p.Updated}
	g.mu.Unlock()
	return nil
}

// peakOf returns the principal's history, loading its 30-day peak once
// (again on the next use, if loading failed).
func (g *Guard) peakOf(ctx context.Context, subj string) *peak {
	g.mu.Lock()
	pk := g.peaks[subj]
	loaded := pk != nil && !pk.unloaded
	g.mu.Unlock()
	if loaded {
		return pk
	}
	today := g.cfg.Now().Unix() / 86400
	past, days, err := g.cfg.DB.GuardPeak(ctx, subj, today-peakDays)
	if err != nil {
		g.cfg.Logger.Error("guard: load peak", "subject", subj, "err", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if pk = g.peaks[subj]; pk == nil {
		pk = &peak{day: today, unloaded: true}
		g.peaks[subj] = pk
	}
	if pk.unloaded && err == nil {
		pk.past, pk.days, pk.unloaded = past, days, false
	}
	return pk
}

// flushPeaks stores today's peaks that rose, and forgets idle trackers.
func (g *Guard) flushPeaks(ctx context.Context) {
	now := g.cfg.Now()
	minute := now.Unix() / 60
	g.mu.Lock()
	recs := g.pending
	g.pending = nil
	for s, pk := range g.peaks {
		if pk.dirty {
			recs = append(recs, peakRec{s, pk.day, pk.today})
			pk.dirty = false
		}
	}
	for k, t := range g.trackers {
		if t.last < minute-buckets {
			delete(g.trackers, k)
		}
	}
	for k, pk := range g.peaks {
		if _, busy := g.trackers[k]; !busy && !pk.dirty {
			delete(g.peaks, k) // loaded again from the database when needed
		}
	}
	g.mu.Unlock()
	for _, r := range recs {
		if err := g.cfg.DB.RaiseGuardPeak(ctx, r.subj, r.day, r.today, r.day-peakDays); err != nil {
			g.cfg.Logger.Error("guard: record peak", "subject", r.subj, "err", err)
		}
	}
}

// alert appends an alert record; Run delivers it.
func (g *Guard) alert(ctx context.Context, ev *ferry.Event) {
	ev.Outcome, ev.Seq, ev.Time = ferry.OutcomeOK, 0, time.Time{}
	if ev.OrgID != "" && ev.Org == "" {
		if o, err := g.cfg.DB.OrgByID(ctx, ev.OrgID); err == nil {
			ev.Org = o.Name
		}
	}
	if err := g.cfg.Audit.Append(context.WithoutCancel(ctx), ev); err != nil {
		g.cfg.Logger.Error("guard: audit alert", "action", ev.Action, "err", err)
	}
}

// Alert appends an alert.* audit record for delivery (for alerts raised
// outside the guard, such as a failed audit verification).
func (g *Guard) Alert(ctx context.Context, ev *ferry.Event) {
	if g != nil {
		g.alert(ctx, ev)
	}
}
