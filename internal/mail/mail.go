package mail

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
)

// Limits on what one message may hold.
const (
	MaxRecipients = 100
	MaxSubjectLen = 998 // RFC 5322 line limit
	MaxBodyLen    = 1 << 20
)

// Message is one email to send. Text is the plain-text body; HTML, when not
// empty, is sent as its alternative. Kind says what the mail is about (e.g.
// "package.received", "otp", "alert.freeze") for logs and metrics.
type Message struct {
	To      []string
	Subject string
	Text    string
	HTML    string
	Kind    string
}

// Config configures an Outbox.
type Config struct {
	DB *db.DB
	// SMTPURL is smtp://[user:pass@]host[:port] (STARTTLS when offered) or
	// smtps://… (implicit TLS). Empty: mail is queued but not sent.
	SMTPURL string
	// From is the sender address; required with SMTPURL.
	From string
	// PublicURL is the base of links in mails (https://host:port); see
	// SetPublicURL.
	PublicURL string
	Now       func() time.Time
	Logger    *slog.Logger
	// Keep is how long a finished (sent or failed) row, bodies included, is
	// kept; 0 means DefaultKeep.
	Keep time.Duration
	// OnResult, if set, is called after each delivery outcome with the
	// message's kind and "sent", "retry" or "failed" (for metrics).
	OnResult func(kind, result string)
}

// DefaultKeep is how long finished rows are kept by default.
const DefaultKeep = 7 * 24 * time.Hour

// Outbox stores and delivers email.
type Outbox struct {
	db       *db.DB
	smtp     *smtpTarget // nil: not configured
	from     *mail.Address
	now      func() time.Time
	log      *slog.Logger
	keep     time.Duration
	onResult func(kind, result string)
	owner    string // this process's lease owner id
	wake     chan struct{}
	tmpl     *templates

	mu        sync.RWMutex
	publicURL string

	// retry policy, adjustable by tests in this package
	backoffMin, backoffMax, giveUp, lease time.Duration
}

// New returns an Outbox. It fails on a malformed SMTP URL or sender, or on a
// template that does not parse.
func New(c Config) (*Outbox, error) {
	if c.DB == nil {
		return nil, fmt.Errorf("mail: no database")
	}
	o := &Outbox{db: c.DB, now: c.Now, log: c.Logger, keep: c.Keep, onResult: c.OnResult,
		owner: ferry.NewID(rand.Reader), wake: make(chan struct{}, 1),
		backoffMin: 30 * time.Second, backoffMax: time.Hour, giveUp: 72 * time.Hour, lease: 5 * time.Minute}
	if o.now == nil {
		o.now = time.Now
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.keep <= 0 {
		o.keep = DefaultKeep
	}
	if c.SMTPURL != "" {
		t, err := parseSMTPURL(c.SMTPURL)
		if err != nil {
			return nil, err
		}
		o.smtp = t
		if c.From == "" {
			return nil, fmt.Errorf("mail: mail-from is required with smtp-url")
		}
	}
	if c.From != "" {
		if strings.ContainsAny(c.From, "\r\n") {
			return nil, fmt.Errorf("mail: mail-from %q: line breaks are not allowed", c.From)
		}
		a, err := mail.ParseAddress(c.From)
		if err != nil {
			return nil, fmt.Errorf("mail: mail-from %q: %v", c.From, err)
		}
		o.from = a
	}
	if err := o.SetPublicURLChecked(c.PublicURL); err != nil {
		return nil, err
	}
	t, err := o.loadTemplates()
	if err != nil {
		return nil, err
	}
	o.tmpl = t
	return o, nil
}

// Configured reports whether an SMTP server is configured (mail is sent, not
// only queued).
func (o *Outbox) Configured() bool { return o.smtp != nil }

// SetPublicURL sets the base URL of links in mails (serve calls it with the
// public listener's URL when --public-url is not given). An invalid URL is
// ignored and logged.
func (o *Outbox) SetPublicURL(u string) {
	if err := o.SetPublicURLChecked(u); err != nil {
		o.log.Warn("mail: ignoring public URL", "err", err)
	}
}

// SetPublicURLChecked is SetPublicURL, returning the error for an invalid
// URL (not http or https, or with a query or fragment).
func (o *Outbox) SetPublicURLChecked(u string) error {
	if u != "" {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || p.RawQuery != "" || p.Fragment != "" || p.User != nil {
			return fmt.Errorf("mail: public URL %q: want https://host[:port][/path]", u)
		}
	}
	o.mu.Lock()
	o.publicURL = strings.TrimRight(u, "/")
	o.mu.Unlock()
	return nil
}

// PublicURL returns the base URL of links in mails.
func (o *Outbox) PublicURL() string {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.publicURL
}

// Link returns the public URL followed by path, for links in mails:
// Link("/p/abc") = "https://files.example.com/p/abc".
func (o *Outbox) Link(path string) string {
	return o.PublicURL() + "/" + strings.TrimLeft(path, "/")
}

// ParseRecipients normalises a list of email addresses to their bare form
// ("Ann <ann@example.com>" becomes "ann@example.com") and rejects, naming
// it, an empty list, an address that does not parse, one with a line break,
// or one given twice (compared without regard to case). Blank entries are
// skipped.
func ParseRecipients(in []string) ([]string, error) {
	const op = "mail.ParseRecipients"
	var out []string
	seen := map[string]bool{}
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.ContainsAny(s, "\r\n") {
			return nil, ferry.Errorf(op, ferry.Invalid, "recipient %q: line breaks are not allowed in an address", s)
		}
		a, err := mail.ParseAddress(s)
		if err != nil || !strings.Contains(a.Address, "@") || strings.ContainsAny(a.Address, " \t\"<>") {
			return nil, ferry.Errorf(op, ferry.Invalid, "recipient %q is not a valid email address", s)
		}
		key := strings.ToLower(a.Address)
		if seen[key] {
			return nil, ferry.Errorf(op, ferry.Invalid, "recipient %q is given more than once", a.Address)
		}
		seen[key] = true
		out = append(out, a.Address)
	}
	if len(out) == 0 {
		return nil, ferry.Errorf(op, ferry.Invalid, "no recipients")
	}
	if len(out) > MaxRecipients {
		return nil, ferry.Errorf(op, ferry.Invalid, "too many recipients (%d, at most %d)", len(out), MaxRecipients)
	}
	return out, nil
}

// Enqueue validates m and stores it for delivery, then wakes the delivery
// loop; it never sends inline and works without an SMTP server configured.
// Invalid input (bad or duplicate addresses, CR/LF in the subject or an
// address, an empty body, a message too large) is a ferry.Invalid error and
// nothing is stored. It returns the outbox row's id.
func (o *Outbox) Enqueue(ctx context.Context, m Message) (string, error) {
	const op = "mail.Enqueue"
	to, err := ParseRecipients(m.To)
	if err != nil {
		return "", err
	}
	subject := strings.TrimSpace(m.Subject)
	switch {
	case strings.ContainsAny(m.Subject, "\r\n"):
		return "", ferry.Errorf(op, ferry.Invalid, "line breaks are not allowed in a subject")
	case subject == "":
		return "", ferry.Errorf(op, ferry.Invalid, "empty subject")
	case len(subject) > MaxSubjectLen:
		return "", ferry.Errorf(op, ferry.Invalid, "subject too long")
	case strings.TrimSpace(m.Text) == "" && strings.TrimSpace(m.HTML) == "":
		return "", ferry.Errorf(op, ferry.Invalid, "empty message")
	case len(m.Text)+len(m.HTML) > MaxBodyLen:
		return "", ferry.Errorf(op, ferry.Invalid, "message too large")
	case strings.ContainsAny(m.Kind, "\r\n"):
		return "", ferry.Errorf(op, ferry.Invalid, "bad kind")
	}
	kind := m.Kind
	if kind == "" {
		kind = "other"
	}
	id := ferry.NewID(rand.Reader)
	domain := "ferry.invalid"
	if o.from != nil {
		if _, d, ok := strings.Cut(o.from.Address, "@"); ok && d != "" {
			domain = d
		}
	}
	row := &db.OutboxMail{ID: id, Kind: kind, Recipients: to, Subject: subject, Text: m.Text, HTML: m.HTML,
		MessageID: id + "@" + domain, Created: o.now()}
	if err := o.db.EnqueueMail(ctx, row); err != nil {
		return "", ferry.E(op, err)
	}
	o.log.Info("mail queued", "id", id, "kind", kind, "recipients", len(to))
	o.result(kind, "queued")
	o.Wake()
	return id, nil
}

// Wake makes the delivery loop look for due mail now.
func (o *Outbox) Wake() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *Outbox) result(kind, r string) {
	if o.onResult != nil {
		o.onResult(kind, r)
	}
}
