package admin

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/mail"
)

// The impact report (docs/IMPACT.md) for the admin UI, the admin API and
// `ferry audit impact`: whose files were read in a scope, computed by
// audit.Impact against a freshly signed checkpoint, and the notifications
// drafted from it, which an administrator reviews, edits and sends through
// the mail outbox. Running a report is a read of the audit log by an
// administrator: it is itself audited ("impact.report"), and so is every
// notification sent ("impact.notify") or edited ("impact.edit").

// ImpactNoticeKind is the mail kind (and template, impact_notice.<locale>.txt)
// of an impact notification.
const ImpactNoticeKind = "impact.notice"

// ImpactToEdit starts the paragraph of a drafted notification that the
// administrator must replace (what the organisation is doing about it); a
// draft still holding it is not sent.
const ImpactToEdit = "[TO EDIT"

// impactMailer is what drafting and sending need of the mail outbox
// (*mail.Outbox, given with SetMail).
type impactMailer interface {
	Render(kind, locale string, to []string, data any) (mail.Message, error)
	Enqueue(ctx context.Context, m mail.Message) (string, error)
}

func (s *Service) impactMailer(op string) (impactMailer, error) {
	m, ok := s.mailer.(impactMailer)
	if !ok || m == nil {
		return nil, ferry.E(op, ferry.Unavailable, "mail is not configured on this server")
	}
	return m, nil
}

// impactScope checks that p may see the reads of scope and narrows an
// organisation administrator's scope to their organisation.
func (s *Service) impactScope(op string, p *ferry.Principal, scope audit.ImpactScope) (audit.ImpactScope, error) {
	switch {
	case p.Operator || p.ServerAdmin:
	case p.Role == ferry.RoleAdmin && p.OrgID != "":
		if scope.OrgID != "" && scope.OrgID != p.OrgID {
			return scope, ferry.E(op, ferry.Permission, "not an administrator of that organisation")
		}
		scope.OrgID = p.OrgID
	default:
		return scope, ferry.E(op, ferry.Permission, "not an administrator")
	}
	return scope, scope.Validate()
}

// ImpactOrg resolves an organisation name for a scope: its id, or "" for
// every organisation when name is empty.
func (s *Service) ImpactOrg(ctx context.Context, p *ferry.Principal, name string) (string, error) {
	if name == "" {
		return "", nil
	}
	o, err := s.org(ctx, "admin.ImpactOrg", p, name)
	if err != nil {
		return "", err
	}
	return o.ID, nil
}

func describeScope(sc audit.ImpactScope) string {
	parts := []string{"from " + sc.From.UTC().Format(time.RFC3339), "to " + sc.To.UTC().Format(time.RFC3339)}
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+" "+v)
		}
	}
	add("org", sc.OrgID)
	add("actor", sc.Actor)
	add("token", sc.Token)
	add("session", sc.Session)
	if sc.CIDR.IsValid() {
		add("ip", sc.CIDR.Masked().String())
	}
	return strings.Join(parts, " ")
}

// ImpactReport computes the impact report of scope for p: a checkpoint is
// signed first, so that the report covers every record appended so far. With
// verify, the whole log is verified too (every record read once). Audited as
// "impact.report".
func (s *Service) ImpactReport(ctx context.Context, p *ferry.Principal, scope audit.ImpactScope, verify bool) (*audit.ImpactReport, error) {
	rep, _, err := s.impact(ctx, "admin.ImpactReport", p, scope, verify, false)
	return rep, err
}

// DraftImpactNotices computes the report of scope as ImpactReport does and
// drafts one notification per party, addressed to its contacts, stored for
// review (ImpactDrafts); nothing is sent. Parties without contacts get a
// draft with no recipients, to be completed before sending.
func (s *Service) DraftImpactNotices(ctx context.Context, p *ferry.Principal, scope audit.ImpactScope, verify bool) (*audit.ImpactReport, []*db.ImpactDraft, error) {
	return s.impact(ctx, "admin.DraftImpactNotices", p, scope, verify, true)
}

func (s *Service) impact(ctx context.Context, op string, p *ferry.Principal, scope audit.ImpactScope, verify, draft bool) (*audit.ImpactReport, []*db.ImpactDraft, error) {
	ev := s.event(p, "impact.report")
	ev.Detail = describeScope(scope)
	scope, err := s.impactScope(op, p, scope)
	if err != nil {
		return nil, nil, s.done(ctx, ev, err)
	}
	if s.verifier == nil {
		return nil, nil, s.done(ctx, ev, ferry.E(op, ferry.Unavailable, "the audit verification key is not loaded"))
	}
	var m impactMailer
	if draft {
		if m, err = s.impactMailer(op); err != nil {
			return nil, nil, s.done(ctx, ev, err)
		}
	}
	if _, err := s.log.Checkpoint(ctx); err != nil {
		return nil, nil, s.done(ctx, ev, err)
	}
	opt := audit.ImpactOptions{Verify: verify, Now: s.now}
	if verify && s.checkpointFile != "" {
		opt.LatestFile = readOptional(s.checkpointFile)
	}
	rep, err := audit.Impact(ctx, s.db, s.verifier, scope, opt)
	if err != nil {
		return nil, nil, s.done(ctx, ev, err)
	}
	ev.Detail = fmt.Sprintf("%s: %d parties, %d files, %d reads, %d bytes; checkpoint %d", describeScope(scope),
		rep.Totals.Parties, rep.Totals.Files, rep.Totals.Reads, rep.Totals.Bytes, rep.Check.Size)
	var drafts []*db.ImpactDraft
	if draft {
		if drafts, err = s.draftNotices(ctx, m, p, rep); err != nil {
			return nil, nil, s.done(ctx, ev, err)
		}
		if len(drafts) > 0 {
			ev.Object = drafts[0].Report
		}
		ev.Detail += fmt.Sprintf("; %d notifications drafted", len(drafts))
	}
	if err := s.done(ctx, ev, nil); err != nil {
		return nil, nil, err
	}
	return rep, drafts, nil
}

// ImpactNotice is the data of the impact_notice template.
type ImpactNotice struct {
	Party, Org string
	From, To   string // the scope, RFC 3339
	Files      []ImpactNoticeFile
	Reads      int64
	Bytes      int64
	First      string
	Last       string
	Checkpoint int64
	ToEdit     string // ImpactToEdit
}

// ImpactNoticeFile is one file of an ImpactNotice.
type ImpactNoticeFile struct {
	Path   string
	SHA256 string
	Bytes  int64
	Reads  int64
	First  string
	Last   string
}

func (s *Service) draftNotices(ctx context.Context, m impactMailer, p *ferry.Principal, rep *audit.ImpactReport) ([]*db.ImpactDraft, error) {
	report := ferry.NewID(s.rand)
	now := s.now()
	var out []*db.ImpactDraft
	for _, pi := range rep.Parties {
		data := ImpactNotice{Party: pi.Party, Org: pi.Org, From: rep.Scope.From.Format(time.RFC3339), To: rep.Scope.To.Format(time.RFC3339),
			Reads: pi.Reads, Bytes: pi.Bytes, First: pi.First.UTC().Format(time.RFC3339), Last: pi.Last.UTC().Format(time.RFC3339),
			Checkpoint: rep.Check.Size, ToEdit: ImpactToEdit}
		for _, f := range pi.Files {
			data.Files = append(data.Files, ImpactNoticeFile{Path: f.Path, SHA256: f.SHA256, Bytes: f.Bytes, Reads: f.Reads,
				First: f.First.UTC().Format(time.RFC3339), Last: f.Last.UTC().Format(time.RFC3339)})
		}
		msg, err := m.Render(ImpactNoticeKind, "en", pi.Contacts, data)
		if err != nil {
			return nil, err
		}
		out = append(out, &db.ImpactDraft{ID: ferry.NewID(s.rand), Report: report, OrgID: pi.OrgID, PartyID: pi.PartyID, Party: pi.Party,
			Recipients: pi.Contacts, Subject: msg.Subject, Body: msg.Text, State: db.DraftOpen, Checkpoint: rep.Check.Size,
			Created: now, CreatedBy: p.Name()})
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, s.db.CreateImpactDrafts(ctx, out)
}

// ImpactDrafts lists the drafted notifications p may see: of one report
// when report is not empty.
func (s *Service) ImpactDrafts(ctx context.Context, p *ferry.Principal, report string) ([]*db.ImpactDraft, error) {
	const op = "admin.ImpactDrafts"
	org := ""
	if !p.Operator && !p.ServerAdmin {
		if p.Role != ferry.RoleAdmin || p.OrgID == "" {
			return nil, ferry.E(op, ferry.Permission, "not an administrator")
		}
		org = p.OrgID
	}
	return s.db.ImpactDrafts(ctx, org, report)
}

// ImpactDraft returns one draft p may see; another organisation's is
// NotExist.
func (s *Service) ImpactDraft(ctx context.Context, p *ferry.Principal, id string) (*db.ImpactDraft, error) {
	const op = "admin.ImpactDraft"
	if !p.Operator && !p.ServerAdmin && (p.Role != ferry.RoleAdmin || p.OrgID == "") {
		return nil, ferry.E(op, ferry.Permission, "not an administrator")
	}
	x, err := s.db.ImpactDraftByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if !p.Operator && !p.ServerAdmin && x.OrgID != p.OrgID {
		return nil, ferry.E(op, ferry.NotExist, "no such draft")
	}
	return x, nil
}

// EditImpactDraft replaces the recipients, subject and text of a draft not
// yet sent. Audited as "impact.edit".
func (s *Service) EditImpactDraft(ctx context.Context, p *ferry.Principal, id string, to []string, subject, body string) error {
	const op = "admin.EditImpactDraft"
	ev := s.event(p, "impact.edit")
	ev.Object = id
	x, err := s.ImpactDraft(ctx, p, id)
	if err != nil {
		return s.done(ctx, ev, err)
	}
	ev.OrgID, ev.PartyID, ev.Party = x.OrgID, x.PartyID, x.Party
	to, err = mail.ParseRecipients(to)
	if err == nil {
		err = checkNotice(op, subject, body)
	}
	if err != nil {
		return s.done(ctx, ev, ferry.E(op, ferry.Invalid, err))
	}
	ev.Detail = "to " + strings.Join(to, ", ")
	return s.done(ctx, ev, s.db.UpdateImpactDraft(ctx, id, to, subject, body))
}

func checkNotice(op, subject, body string) error {
	switch {
	case strings.TrimSpace(subject) == "":
		return ferry.E(op, ferry.Invalid, "a subject is required")
	case strings.ContainsAny(subject, "\r\n"):
		return ferry.E(op, ferry.Invalid, "the subject must be one line")
	case len(subject) > mail.MaxSubjectLen:
		return ferry.E(op, ferry.Invalid, "the subject is too long")
	case strings.TrimSpace(body) == "":
		return ferry.E(op, ferry.Invalid, "the text is empty")
	case len(body) > mail.MaxBodyLen:
		return ferry.E(op, ferry.Invalid, "the text is too long")
	}
	return nil
}

// SendImpactDraft sends a draft through the mail outbox, once: it must have
// recipients and no "[TO EDIT" paragraph left. Audited as "impact.notify",
// naming the party and the recipients.
func (s *Service) SendImpactDraft(ctx context.Context, p *ferry.Principal, id string) error {
	const op = "admin.SendImpactDraft"
	ev := s.event(p, "impact.notify")
	ev.Object = id
	x, err := s.ImpactDraft(ctx, p, id)
	if err != nil {
		return s.done(ctx, ev, err)
	}
	ev.OrgID, ev.PartyID, ev.Party = x.OrgID, x.PartyID, x.Party
	ev.Detail = "to " + strings.Join(x.Recipients, ", ")
	m, err := s.impactMailer(op)
	if err != nil {
		return s.done(ctx, ev, err)
	}
	switch {
	case x.State != db.DraftOpen:
		return s.done(ctx, ev, ferry.E(op, ferry.Exist, "this notification was already sent"))
	case len(x.Recipients) == 0:
		return s.done(ctx, ev, ferry.E(op, ferry.Invalid, "the draft has no recipients: add the party's contacts first"))
	case strings.Contains(x.Body, ImpactToEdit) || strings.Contains(x.Subject, ImpactToEdit):
		return s.done(ctx, ev, ferry.E(op, ferry.Invalid, "the draft still has a "+ImpactToEdit+"…] paragraph: edit it first"))
	}
	if err := checkNotice(op, x.Subject, x.Body); err != nil {
		return s.done(ctx, ev, err)
	}
	// Claim the draft first, so that two administrators cannot both send it.
	if err := s.db.MarkImpactDraftSent(ctx, id, p.Name(), s.now()); err != nil {
		return s.done(ctx, ev, err)
	}
	if _, err := m.Enqueue(ctx, mail.Message{To: x.Recipients, Subject: x.Subject, Text: x.Body, Kind: ImpactNoticeKind}); err != nil {
		if rerr := s.db.ReopenImpactDraft(context.WithoutCancel(ctx), id); rerr != nil {
			s.logger.Error("impact draft marked sent but not queued", "draft", id, "err", rerr)
		}
		return s.done(ctx, ev, err)
	}
	return s.done(ctx, ev, nil)
}

// readOptional returns a file's content, nil if it cannot be read (Verify
// then relies on the checkpoint in the database).
func readOptional(name string) []byte {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil
	}
	return b
}
