package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"ferry.dev/ferry/internal/db"
)

// smtpTarget is a parsed --smtp-url.
type smtpTarget struct {
	host           string
	port           int
	implicitTLS    bool // smtps://
	requireTLS     bool // smtp://…?starttls=required
	user, password string
	hasAuth        bool
}

// parseSMTPURL parses smtp://[user:pass@]host[:port] (port 25 by default,
// STARTTLS when the server offers it; with ?starttls=required, no mail to a
// server that does not) or smtps://… (port 465, implicit TLS).
func parseSMTPURL(s string) (*smtpTarget, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("mail: smtp-url: not a URL")
	}
	t := &smtpTarget{}
	switch u.Scheme {
	case "smtp":
		t.port = 25
	case "smtps":
		t.port, t.implicitTLS = 465, true
	default:
		return nil, fmt.Errorf("mail: smtp-url: want smtp://[user:pass@]host:port or smtps://…")
	}
	if u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return nil, fmt.Errorf("mail: smtp-url: want smtp://[user:pass@]host:port or smtps://…")
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil || len(q) != 1 || len(q["starttls"]) != 1 || u.Scheme != "smtp" {
			return nil, fmt.Errorf("mail: smtp-url: the only option is ?starttls=required or ?starttls=opportunistic, on smtp://")
		}
		switch q.Get("starttls") {
		case "required":
			t.requireTLS = true
		case "opportunistic":
		default:
			return nil, fmt.Errorf("mail: smtp-url: starttls is required or opportunistic, not %q", q.Get("starttls"))
		}
	}
	t.host = u.Hostname()
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("mail: smtp-url: bad port %q", p)
		}
		t.port = n
	}
	if u.User != nil {
		t.user = u.User.Username()
		t.password, t.hasAuth = u.User.Password()
		t.hasAuth = t.hasAuth || t.user != ""
	}
	return t, nil
}

// String returns the target without its password, for logs.
func (t *smtpTarget) String() string {
	scheme := "smtp"
	if t.implicitTLS {
		scheme = "smtps"
	}
	s := scheme + "://" + net.JoinHostPort(t.host, strconv.Itoa(t.port))
	if t.requireTLS {
		s += "?starttls=required"
	}
	return s
}

// SMTPTimeout bounds connecting to the SMTP server and each command.
const SMTPTimeout = 30 * time.Second

func (t *smtpTarget) client() (*gomail.Client, error) {
	opts := []gomail.Option{
		gomail.WithPort(t.port),
		gomail.WithTimeout(SMTPTimeout),
		gomail.WithTLSConfig(&tls.Config{ServerName: t.host, MinVersion: tls.VersionTLS12}),
	}
	if t.implicitTLS {
		opts = append(opts, gomail.WithSSL())
	} else if t.requireTLS {
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	} else {
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if t.hasAuth {
		opts = append(opts, gomail.WithSMTPAuthCustom(&chooseAuth{user: t.user, password: t.password, host: t.host}))
	}
	return gomail.NewClient(t.host, opts...)
}

// chooseAuth picks, once the server has said what it offers and whether the
// connection is encrypted, the strongest mechanism it supports: SCRAM
// (SHA-256, SHA-1), CRAM-MD5, then — over TLS, or to a loopback server —
// PLAIN or LOGIN. A password is never sent in clear over the network.
type chooseAuth struct {
	user, password, host string
	chosen               smtp.Auth
}

// Start implements smtp.Auth.
func (a *chooseAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	offered := map[string]bool{}
	for _, m := range server.Auth {
		offered[strings.ToUpper(m)] = true
	}
	clearOK := server.TLS || isLoopbackHost(a.host)
	switch {
	case offered["SCRAM-SHA-256"]:
		a.chosen = smtp.ScramSHA256Auth(a.user, a.password)
	case offered["SCRAM-SHA-1"]:
		a.chosen = smtp.ScramSHA1Auth(a.user, a.password)
	case offered["CRAM-MD5"]:
		a.chosen = smtp.CRAMMD5Auth(a.user, a.password)
	case offered["PLAIN"] && clearOK:
		a.chosen = smtp.PlainAuth("", a.user, a.password, server.Name, true)
	case offered["LOGIN"] && clearOK:
		a.chosen = smtp.LoginAuth(a.user, a.password, server.Name, true)
	default:
		return "", nil, fmt.Errorf("the SMTP server offers no authentication Ferry uses on this connection (offered %v; TLS %v): PLAIN and LOGIN need TLS (smtps://, or STARTTLS)", server.Auth, server.TLS)
	}
	return a.chosen.Start(server)
}

// Next implements smtp.Auth.
func (a *chooseAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	return a.chosen.Next(fromServer, more)
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Run delivers queued mail until ctx is done: it claims due rows, sends
// them, records the outcome, and sleeps until the next row is due, Enqueue
// wakes it, or a minute passes (other nodes may have queued mail). Without
// an SMTP server configured it only purges old rows: mail stays queued.
func (o *Outbox) Run(ctx context.Context) {
	if o.smtp != nil {
		o.log.Info("mail: delivering", "smtp", o.smtp.String(), "from", o.from.Address)
	} else {
		o.log.Info("mail: no smtp-url configured; mail is queued but not sent")
	}
	lastPurge := time.Time{}
	for {
		if o.now().Sub(lastPurge) > time.Hour {
			lastPurge = o.now()
			if n, err := o.db.PurgeMail(ctx, o.now().Add(-o.keep)); err != nil && ctx.Err() == nil {
				o.log.Error("mail: purging old rows", "err", err)
			} else if n > 0 {
				o.log.Info("mail: purged finished rows", "rows", n)
			}
		}
		wait := time.Minute
		if o.smtp != nil {
			more, down, err := o.deliverDue(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				o.log.Error("mail: delivery", "err", err)
				wait = 10 * time.Second
			case down:
				// The server is unreachable: the other due rows wait
				// rather than each trying it now (Enqueue still wakes).
				wait = o.backoffMin
			case more:
				continue
			default:
				if next, err := o.db.NextMailDue(ctx); err == nil && !next.IsZero() {
					if d := next.Sub(o.now()); d < wait {
						wait = max(d, 100*time.Millisecond)
					}
				}
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-o.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// deliverDue delivers due rows one claim at a time (so no claimed row
// waits behind others while its lease runs), at most 50 in a round. It
// reports whether more may be due, and whether the round stopped because
// the server could not be reached.
func (o *Outbox) deliverDue(ctx context.Context) (more, down bool, err error) {
	for n := 0; n < 50; n++ {
		if ctx.Err() != nil {
			return false, false, nil
		}
		rows, err := o.db.ClaimMail(ctx, o.owner, o.now(), o.now().Add(o.lease), 1)
		if err != nil || len(rows) == 0 {
			return false, false, err
		}
		connected, err := o.deliver(ctx, rows[0])
		if err != nil || !connected {
			return false, !connected, err
		}
	}
	return true, false, nil
}

// deliver sends one claimed row to each pending recipient, then finishes it
// or schedules a retry. It reports whether the server could be reached.
func (o *Outbox) deliver(ctx context.Context, m *db.OutboxMail) (connected bool, err error) {
	pending, failed := m.Pending, m.Failed
	var tempErr error
	c, err := o.smtp.client()
	if err == nil {
		dctx, cancel := context.WithTimeout(ctx, SMTPTimeout)
		err = c.DialWithContext(dctx)
		cancel()
	}
	connected = err == nil
	if err != nil {
		tempErr = fmt.Errorf("connect to %s: %w", o.smtp, err)
	} else {
		var still []string
		for i, rcpt := range pending {
			if ctx.Err() != nil {
				still = append(still, pending[i:]...)
				tempErr = ctx.Err()
				break
			}
			msg, err := o.build(m, rcpt)
			if err == nil {
				err = c.Send(msg)
			}
			switch {
			case err == nil:
				o.log.Info("mail sent", "id", m.ID, "kind", m.Kind, "to", rcpt)
			case permanent(err):
				o.log.Warn("mail refused for good", "id", m.ID, "kind", m.Kind, "to", rcpt, "err", err)
				failed = append(failed, rcpt+"\t"+oneLine(err.Error()))
			default:
				still = append(still, rcpt)
				tempErr = err
			}
			// Record each recipient at once, so a crash or a lost
			// connection never makes a retry send to them again.
			rest := append(append([]string(nil), still...), pending[i+1:]...)
			if ok, err := o.db.MailProgress(ctx, m.ID, o.owner, rest, failed, o.now().Add(o.lease)); err != nil {
				c.Close()
				return true, err
			} else if !ok {
				c.Close()
				o.log.Warn("mail: lost the lease on a row; another node continues it", "id", m.ID)
				return true, nil
			}
			if tempErr != nil && !isRcptError(tempErr) {
				// The connection is probably unusable: keep the rest
				// for the next attempt.
				still = append(still, pending[i+1:]...)
				break
			}
		}
		c.Close()
		pending = still
	}
	// The outcome is recorded even when ctx ends meanwhile (shutdown).
	now, bg := o.now(), context.WithoutCancel(ctx)
	switch {
	case len(pending) == 0 && len(failed) < len(m.Recipients):
		o.result(m.Kind, "sent")
		return connected, o.db.FinishMail(bg, m.ID, o.owner, db.MailSent, "", now)
	case len(pending) == 0:
		o.result(m.Kind, "failed")
		o.log.Error("mail failed: every recipient refused", "id", m.ID, "kind", m.Kind)
		return connected, o.db.FinishMail(bg, m.ID, o.owner, db.MailFailed, "every recipient refused", now)
	case ctx.Err() != nil:
		// Shutting down: not the server's fault, not an attempt.
		return connected, o.db.ReleaseMail(bg, m.ID, o.owner)
	case now.Sub(m.Created) >= o.giveUp:
		o.result(m.Kind, "failed")
		o.log.Error("mail failed: giving up", "id", m.ID, "kind", m.Kind, "attempts", m.Attempts+1, "err", tempErr)
		return connected, o.db.FinishMail(bg, m.ID, o.owner, db.MailFailed, oneLine(fmt.Sprint(tempErr)), now)
	default:
		next := now.Add(o.backoff(m.Attempts))
		o.result(m.Kind, "retry")
		o.log.Warn("mail delivery failed; will retry", "id", m.ID, "kind", m.Kind, "attempt", m.Attempts+1, "next", next, "err", tempErr)
		return connected, o.db.RetryMail(bg, m.ID, o.owner, oneLine(fmt.Sprint(tempErr)), next)
	}
}

// backoff returns the wait after attempt number n (0-based): backoffMin
// doubling up to backoffMax, with ±20% jitter.
func (o *Outbox) backoff(n int) time.Duration {
	d := o.backoffMin
	for i := 0; i < n && d < o.backoffMax; i++ {
		d *= 2
	}
	d = min(d, o.backoffMax)
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

// build makes the SMTP message of row m for one recipient.
func (o *Outbox) build(m *db.OutboxMail, rcpt string) (*gomail.Msg, error) {
	msg := gomail.NewMsg()
	if err := msg.From(o.from.String()); err != nil {
		return nil, err
	}
	if err := msg.To(rcpt); err != nil {
		return nil, err
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(m.MessageID)
	msg.SetDateWithValue(m.Created)
	msg.SetUserAgent("Ferry")
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	switch {
	case m.Text != "" && m.HTML != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	case m.Text != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	default:
		msg.SetBodyString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// permanent reports whether err is the server refusing the recipient or the
// message for good (a 5xx answer to RCPT TO or to the end of DATA).
func permanent(err error) bool {
	var se *gomail.SendError
	if !errors.As(err, &se) || se.IsTemp() {
		return false
	}
	return (se.Reason == gomail.ErrSMTPRcptTo || se.Reason == gomail.ErrSMTPDataClose) && se.ErrorCode() >= 500
}

// isRcptError reports whether err is an answer about one recipient (after
// which the connection is still usable).
func isRcptError(err error) bool {
	var se *gomail.SendError
	return errors.As(err, &se) && se.Reason == gomail.ErrSMTPRcptTo
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 500 {
		s = s[:500]
	}
	return s
}
