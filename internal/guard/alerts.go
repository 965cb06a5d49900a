package guard

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
)

// Alerts are audit records whose action starts with "alert.". Whoever raises
// one only appends it to the audit log; Run delivers every one, in log
// order, by email to the organisation's administrators (the server
// administrators for alerts outside any organisation) and to the
// organisation's webhook. The dispatcher's position in the log is stored, so
// an alert raised just before a crash is delivered after the restart.

// alertCursor names the dispatcher's position in the audit log.
const alertCursor = "alerts"

// quietAlerts are not delivered: brute-force lockouts come by the hundred
// during an attack and are already audited and rate-limited.
var quietAlerts = map[string]bool{"alert.lockout": true}

// mailKinds are the alerts with a mail template of their own
// (internal/mail/templates/alert_KIND.en.txt); others use alert_other.
var mailKinds = map[string]bool{"freeze": true, "canary": true, "admin": true, "newaddr": true, "tokenranges": true, "audit": true, "monitor": true, "threshold": true}

// Run delivers alerts and webhooks, reloads freezes and canaries, records
// peaks and verifies the audit log periodically, until ctx is done.
func (g *Guard) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastRefresh, lastFlush, lastVerify time.Time
	lastVerify = time.Now()
	for {
		select {
		case <-ctx.Done():
			g.flushPeaks(context.WithoutCancel(ctx))
			return
		case <-tick.C:
		}
		now := time.Now()
		if err := g.Dispatch(ctx); err != nil && ctx.Err() == nil {
			g.cfg.Logger.Error("guard: dispatch alerts", "err", err)
		}
		if err := g.DeliverWebhooks(ctx); err != nil && ctx.Err() == nil {
			g.cfg.Logger.Error("guard: deliver webhooks", "err", err)
		}
		if now.Sub(lastRefresh) >= 5*time.Second {
			lastRefresh = now
			if err := g.Refresh(ctx); err != nil && ctx.Err() == nil {
				g.cfg.Logger.Error("guard: refresh", "err", err)
			}
		}
		if now.Sub(lastFlush) >= time.Minute {
			lastFlush = now
			g.flushPeaks(ctx)
		}
		if g.cfg.VerifyAudit != nil && now.Sub(lastVerify) >= g.cfg.VerifyEvery {
			lastVerify = now
			g.VerifyAudit(ctx)
		}
	}
}

// VerifyAudit runs the configured audit verification once and raises
// "alert.audit" if it fails.
func (g *Guard) VerifyAudit(ctx context.Context) {
	if g.cfg.VerifyAudit == nil {
		return
	}
	err := g.cfg.VerifyAudit(ctx)
	if err == nil || ctx.Err() != nil {
		return
	}
	g.cfg.Logger.Error("guard: audit verification failed", "err", err)
	g.alert(ctx, &ferry.Event{Action: "alert.audit", Actor: "system", Detail: "audit log verification failed: " + ferry.Message(err)})
}

// Dispatch delivers the alerts appended since the last call: each is mailed
// and queued for the webhook. With several nodes, each range of the log is
// claimed by one.
func (g *Guard) Dispatch(ctx context.Context) error {
	size, err := g.cfg.DB.AuditSize(ctx)
	if err != nil {
		return err
	}
	cur, err := g.cfg.DB.GuardCursor(ctx, alertCursor)
	if ferry.KindOf(err) == ferry.NotExist {
		// First start: alerts from before the guard existed are history.
		_, err = g.cfg.DB.MoveGuardCursor(ctx, alertCursor, 0, size, true)
		return err
	} else if err != nil {
		return err
	}
	if cur >= size {
		return nil
	}
	to := min(size, cur+10000)
	if ok, err := g.cfg.DB.MoveGuardCursor(ctx, alertCursor, cur, to, false); err != nil || !ok {
		return err
	}
	var evs []*ferry.Event
	err = g.cfg.DB.GuardAlerts(ctx, cur, to, func(r *db.AuditRow) error {
		var ev ferry.Event
		if err := json.Unmarshal(r.Data, &ev); err != nil {
			g.cfg.Logger.Error("guard: undecodable alert record", "seq", r.Seq, "err", err)
			return nil
		}
		ev.Seq = r.Seq
		evs = append(evs, &ev)
		return nil
	})
	if err != nil {
		return err
	}
	for _, ev := range evs {
		if !quietAlerts[ev.Action] {
			g.deliver(ctx, ev)
		}
	}
	return nil
}

// Payload is the JSON body of a webhook delivery.
type Payload struct {
	Alert     string        `json:"alert"`     // "freeze", "canary", "admin", …
	Org       string        `json:"org"`       // organisation name ("" for server-wide alerts)
	Principal string        `json:"principal"` // who caused it, as audit records name them
	Time      time.Time     `json:"time"`
	Detail    PayloadDetail `json:"detail"`
}

// PayloadDetail is the detail of a webhook delivery.
type PayloadDetail struct {
	Message  string `json:"message"`
	Seq      int64  `json:"seq"` // the alert's audit record
	Remote   string `json:"remote,omitempty"`
	Path     string `json:"path,omitempty"`
	Token    string `json:"token,omitempty"`
	Session  string `json:"session,omitempty"`
	Subject  string `json:"subject,omitempty"`
	Protocol string `json:"protocol,omitempty"`
}

// deliver mails one alert and queues its webhook. Failures are logged: the
// alert stays in the audit log either way.
func (g *Guard) deliver(ctx context.Context, ev *ferry.Event) {
	kind := strings.TrimPrefix(ev.Action, "alert.")
	if g.cfg.Mail != nil {
		to, err := g.cfg.DB.AdminEmails(ctx, ev.OrgID)
		if err != nil {
			g.cfg.Logger.Error("guard: alert recipients", "err", err)
		}
		if len(to) > 0 {
			tmpl := "alert." + kind
			if !mailKinds[kind] {
				tmpl = "alert.other"
			}
			org := ev.Org
			if org == "" {
				org = "(server)"
			}
			data := map[string]string{"Alert": kind, "Org": org, "Principal": ev.Actor, "Time": ev.Time.UTC().Format(time.RFC3339),
				"Detail": ev.Detail, "Remote": ev.Remote, "Path": ev.Path, "Seq": strconv.FormatInt(ev.Seq, 10)}
			if err := g.cfg.Mail(ctx, tmpl, to, data); err != nil {
				g.cfg.Logger.Error("guard: mail alert", "alert", ev.Action, "err", err)
			}
		}
	}
	if ev.OrgID == "" {
		return
	}
	if _, err := g.cfg.DB.GuardWebhookOf(ctx, ev.OrgID); ferry.KindOf(err) == ferry.NotExist {
		return
	} else if err != nil {
		g.cfg.Logger.Error("guard: webhook", "err", err)
		return
	}
	body, err := json.Marshal(Payload{Alert: kind, Org: ev.Org, Principal: ev.Actor, Time: ev.Time.UTC(),
		Detail: PayloadDetail{Message: ev.Detail, Seq: ev.Seq, Remote: ev.Remote, Path: ev.Path, Token: ev.Token, Session: ev.Session, Subject: ev.Object, Protocol: ev.Protocol}})
	if err != nil {
		g.cfg.Logger.Error("guard: webhook body", "err", err)
		return
	}
	now := g.cfg.Now().UTC()
	if err := g.cfg.DB.AddGuardOutbox(ctx, &db.GuardOutboxItem{ID: g.newID(), OrgID: ev.OrgID, Body: body, Created: now, NextTry: now}); err != nil {
		g.cfg.Logger.Error("guard: queue webhook", "err", err)
	}
}

func (g *Guard) newID() string {
	r := g.cfg.Rand
	if r == nil {
		r = rand.Reader
	}
	return ferry.NewID(r)
}

// Webhook retries: 10 s, 20 s, 40 s … at most an hour apart, at most
// maxAttempts times; then the delivery is given up (and stays listed).
const (
	maxAttempts  = 20
	firstBackoff = 10 * time.Second
	maxBackoff   = time.Hour
	webhookLease = 2 * time.Minute
)

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body,
// keyed with the webhook's secret; TimestampHeader the Unix time it was
// sent.
const (
	SignatureHeader = "X-Ferry-Signature"
	TimestampHeader = "X-Ferry-Timestamp"
	DeliveryHeader  = "X-Ferry-Delivery"
)

// Sign returns the value of the signature header for body.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// DeliverWebhooks posts the webhook deliveries that are due.
func (g *Guard) DeliverWebhooks(ctx context.Context) error {
	if g.cfg.HTTP == nil {
		return nil
	}
	now := g.cfg.Now().UTC()
	due, err := g.cfg.DB.DueGuardOutbox(ctx, now, 20)
	if err != nil {
		return err
	}
	for _, it := range due {
		if ok, err := g.cfg.DB.ClaimGuardOutbox(ctx, it.ID, it.NextTry, now.Add(webhookLease)); err != nil || !ok {
			if err != nil {
				return err
			}
			continue
		}
		err := g.post(ctx, it)
		it.Attempts++
		if err == nil {
			err = g.cfg.DB.FinishGuardOutbox(ctx, it.ID, it.Attempts, now, g.cfg.Now().UTC(), "")
		} else {
			msg := err.Error()
			next := now.Add(min(firstBackoff<<min(it.Attempts-1, 20), maxBackoff))
			if it.Attempts >= maxAttempts {
				msg = "gave up after " + strconv.Itoa(it.Attempts) + " attempts: " + msg
				next = now.AddDate(100, 0, 0)
			}
			g.cfg.Logger.Warn("guard: webhook delivery failed", "id", it.ID, "attempt", it.Attempts, "err", msg)
			err = g.cfg.DB.FinishGuardOutbox(ctx, it.ID, it.Attempts, next, time.Time{}, clipText(msg, 500))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func clipText(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// post sends one delivery to the organisation's current webhook.
func (g *Guard) post(ctx context.Context, it *db.GuardOutboxItem) error {
	w, err := g.cfg.DB.GuardWebhookOf(ctx, it.OrgID)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(it.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Ferry-Guard/1")
	req.Header.Set(SignatureHeader, Sign(w.Secret, it.Body))
	req.Header.Set(TimestampHeader, strconv.FormatInt(g.cfg.Now().Unix(), 10))
	req.Header.Set(DeliveryHeader, it.ID)
	res, err := g.cfg.HTTP.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return ferry.Errorf("guard.post", ferry.Unavailable, "webhook answered %s", res.Status)
	}
	return nil
}

// SetWebhook configures an organisation's alert webhook: an http or https
// URL, and the secret its deliveries are signed with (at least 16
// characters). An empty URL removes it. Whether the target is reachable
// (not loopback or private unless allow-listed) is decided at delivery.
func (g *Guard) SetWebhook(ctx context.Context, orgID, rawURL, secret string) error {
	const op = "guard.SetWebhook"
	if rawURL == "" {
		return g.cfg.DB.DeleteGuardWebhook(ctx, orgID)
	}
	u, err := url.Parse(rawURL)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || len(rawURL) > 2000:
		return ferry.E(op, ferry.Invalid, "the webhook must be an http:// or https:// URL without credentials")
	case len(secret) < 16 || len(secret) > 200:
		return ferry.E(op, ferry.Invalid, "the webhook secret must have 16 to 200 characters")
	}
	return g.cfg.DB.SetGuardWebhook(ctx, &db.GuardWebhook{OrgID: orgID, URL: rawURL, Secret: secret, Updated: g.cfg.Now().UTC()})
}

// Webhook returns an organisation's webhook (a ferry.NotExist error when
// none) and its latest deliveries.
func (g *Guard) Webhook(ctx context.Context, orgID string) (*db.GuardWebhook, []*db.GuardOutboxItem, error) {
	w, err := g.cfg.DB.GuardWebhookOf(ctx, orgID)
	if err != nil && ferry.KindOf(err) != ferry.NotExist {
		return nil, nil, err
	}
	items, ierr := g.cfg.DB.GuardOutbox(ctx, orgID, 20)
	if ierr != nil {
		return nil, nil, ierr
	}
	return w, items, err
}

// prefixOf returns the address range a sign-in is remembered by: /24 for
// IPv4, /64 for IPv6; ok is false for addresses that are not IPs.
func prefixOf(remote string, v4, v6 int) (netip.Prefix, bool) {
	a, err := netip.ParseAddr(host(remote))
	if err != nil {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	bits := v6
	if a.Is4() {
		bits = v4
	}
	p, err := a.Prefix(bits)
	return p, err == nil
}

// SeenLogin records that u signed in from remote and raises "alert.newaddr"
// when the address range (/24, /64) is new for a user who signed in before
// from elsewhere (a first sign-in ever does not alert).
func (g *Guard) SeenLogin(ctx context.Context, u *ferry.User, remote, protocol string) {
	if g == nil || u == nil {
		return
	}
	pfx, ok := prefixOf(remote, 24, 64)
	if !ok {
		return
	}
	isNew, hadAny, err := g.cfg.DB.SeeGuardAddr(ctx, u.ID, pfx.String(), g.cfg.Now().UTC())
	if err != nil {
		g.cfg.Logger.Error("guard: record sign-in address", "user", u.Email, "err", err)
		return
	}
	if isNew && hadAny {
		g.alert(ctx, &ferry.Event{Action: "alert.newaddr", Actor: u.Email, ActorID: u.ID, OrgID: u.OrgID, Remote: remote, Protocol: protocol,
			Detail: "signed in from " + pfx.String() + ", an address range never seen for this user"})
	}
}

// tokenSeen is where a token was last used from.
type tokenSeen struct {
	prefix netip.Prefix
	remote string
	at     time.Time
}

// tokenRangeWindow is how close in time two uses from distant ranges must be
// to raise "alert.tokenranges".
const tokenRangeWindow = time.Hour

// TokenUse notes that p's token was used from remote (internal/auth calls it
// when a token is seen from a new address) and raises "alert.tokenranges"
// when the same token was used from another /16 (IPv4) or /48 (IPv6) within
// the last hour.
func (g *Guard) TokenUse(ctx context.Context, p *ferry.Principal, remote string) {
	if g == nil || p == nil || p.TokenID == "" {
		return
	}
	pfx, ok := prefixOf(remote, 16, 48)
	if !ok {
		return
	}
	now := g.cfg.Now()
	g.mu.Lock()
	prev, had := g.tokens[p.TokenID]
	if len(g.tokens) > 100000 {
		clear(g.tokens)
	}
	g.tokens[p.TokenID] = tokenSeen{prefix: pfx, remote: remote, at: now}
	g.mu.Unlock()
	if had && prev.prefix != pfx && now.Sub(prev.at) < tokenRangeWindow {
		g.alert(ctx, &ferry.Event{Action: "alert.tokenranges", Actor: p.Name(), ActorID: p.UserID, OrgID: p.OrgID, Remote: remote, Token: p.TokenID, Protocol: p.Protocol,
			Detail: "token used from " + host(prev.remote) + " and, " + now.Sub(prev.at).Round(time.Second).String() + " later, from " + host(remote)})
	}
}
