package guard_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/guard"
	"ferry.dev/ferry/internal/outbound"
)

// receiver is a webhook endpoint on loopback that checks signatures the way
// docs/GUARD.md tells integrators to.
type receiver struct {
	srv    *httptest.Server
	secret string
	mu     sync.Mutex
	got    []guard.Payload
	bad    int
	fail   int // answer 500 to this many deliveries first
}

func newReceiver(t *testing.T, secret string) *receiver {
	r := &receiver{secret: secret}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		sig, ok := strings.CutPrefix(req.Header.Get("X-Ferry-Signature"), "sha256=")
		m := hmac.New(sha256.New, []byte(r.secret))
		m.Write(body)
		want := m.Sum(nil)
		got, err := hex.DecodeString(sig)
		r.mu.Lock()
		defer r.mu.Unlock()
		if !ok || err != nil || !hmac.Equal(got, want) || req.Header.Get("X-Ferry-Timestamp") == "" {
			r.bad++
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if r.fail > 0 {
			r.fail--
			http.Error(w, "try later", http.StatusInternalServerError)
			return
		}
		var p guard.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			r.bad++
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		r.got = append(r.got, p)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) payloads() ([]guard.Payload, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]guard.Payload(nil), r.got...), r.bad
}

// TestGuardWebhook: a freeze is posted to the organisation's webhook,
// signed with HMAC-SHA256 of the body; a failed delivery is retried with
// back-off from the durable outbox; a wrong secret fails verification.
func TestGuardWebhook(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, dbtest.SQLite(t))
	const secret = "s3cret-s3cret-s3cret"
	r := newReceiver(t, secret)
	r.fail = 1
	allow := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	g := e.guard(t, func(c *guard.Config) { c.HTTP = outbound.NewClient(allow, 5*time.Second) })
	if err := g.Dispatch(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.SetWebhook(ctx, e.org.ID, "ftp://x", secret); ferry.KindOf(err) != ferry.Invalid {
		t.Fatalf("ftp webhook: %v", err)
	}
	if err := g.SetWebhook(ctx, e.org.ID, r.srv.URL+"/hook", "short"); ferry.KindOf(err) != ferry.Invalid {
		t.Fatalf("short secret: %v", err)
	}
	if err := g.SetWebhook(ctx, e.org.ID, r.srv.URL+"/hook", secret); err != nil {
		t.Fatal(err)
	}
	thief := e.user("thief@acme.test")
	if err := g.Freeze(ctx, thief, "admin", "test freeze", nil); err != nil {
		t.Fatal(err)
	}
	e.dispatch(t, g)
	if err := g.DeliverWebhooks(ctx); err != nil { // answered 500
		t.Fatal(err)
	}
	if got, _ := r.payloads(); len(got) != 0 {
		t.Fatalf("delivered despite the 500: %+v", got)
	}
	_, items, err := g.Webhook(ctx, e.org.ID)
	if err != nil || len(items) != 1 || items[0].Attempts != 1 || !strings.Contains(items[0].LastError, "500") {
		t.Fatalf("outbox after a failure: %+v, %v", items, err)
	}
	e.clk.add(11 * time.Second) // the first back-off
	if err := g.DeliverWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	got, bad := r.payloads()
	if bad != 0 || len(got) != 1 {
		t.Fatalf("received %d (bad %d), want 1", len(got), bad)
	}
	p := got[0]
	if p.Alert != "freeze" || p.Org != "acme" || p.Principal != "thief@acme.test" || !strings.Contains(p.Detail.Message, "test freeze") || p.Time.IsZero() {
		t.Fatalf("payload %+v", p)
	}
	// Delivered once: nothing more to send.
	e.clk.add(time.Hour)
	if err := g.DeliverWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.payloads(); len(got) != 1 {
		t.Fatalf("delivered %d times", len(got))
	}
	// A receiver with another secret rejects the signature.
	r.secret = "another-secret-of-16"
	g.Freeze(ctx, e.user("second@acme.test"), "admin", "second", nil)
	e.dispatch(t, g)
	g.DeliverWebhooks(ctx)
	if _, bad := r.payloads(); bad != 1 {
		t.Fatalf("a wrong secret was not detected (bad %d)", bad)
	}
}

// TestGuardWebhookSSRF: the same loopback URL without the allow-list is
// refused when the guard connects (no SSRF through webhooks); the receiver
// sees nothing and the outbox says why.
func TestGuardWebhookSSRF(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, dbtest.SQLite(t))
	const secret = "s3cret-s3cret-s3cret"
	r := newReceiver(t, secret)
	g := e.guard(t, func(c *guard.Config) { c.HTTP = outbound.NewClient(nil, 5*time.Second) })
	g.Dispatch(ctx)
	if err := g.SetWebhook(ctx, e.org.ID, r.srv.URL, secret); err != nil {
		t.Fatal(err)
	}
	g.Freeze(ctx, e.user("thief@acme.test"), "admin", "x", nil)
	e.dispatch(t, g)
	if err := g.DeliverWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	if got, bad := r.payloads(); len(got) != 0 || bad != 0 {
		t.Fatalf("the loopback receiver was reached: %d payloads, %d bad", len(got), bad)
	}
	_, items, _ := g.Webhook(ctx, e.org.ID)
	if len(items) != 1 || !strings.Contains(items[0].LastError, "not allow-listed") {
		t.Fatalf("outbox %+v, want a refusal", items)
	}
}
