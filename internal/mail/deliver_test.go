package mail_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferrytest"
	"ferry.dev/ferry/internal/mail"
)

// run starts o's delivery loop until the test ends.
func run(t *testing.T, o *mail.Outbox) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { o.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitRow(t *testing.T, d *db.DB, id string, ok func(*db.OutboxMail) bool, timeout time.Duration) *db.OutboxMail {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m, err := d.Mail(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("row %s never reached the expected state: %+v", id, m)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func countTo(msgs []ferrytest.MailpitMessage, to, subject string) int {
	n := 0
	for _, m := range msgs {
		for _, a := range m.To {
			if strings.EqualFold(a, to) && strings.Contains(m.Subject, subject) {
				n++
			}
		}
	}
	return n
}

// TestDeliveryMailpit: a queued message reaches a real SMTP server, each
// recipient in a personal copy, with text and HTML and a stable Message-ID.
func TestDeliveryMailpit(t *testing.T) {
	mp := ferrytest.StartMailpit(t)
	d := dbtest.SQLite(t)
	o, err := mail.New(mail.Config{DB: d, SMTPURL: mp.SMTPURL, From: "Ferry <ferry@example.test>"})
	if err != nil {
		t.Fatal(err)
	}
	run(t, o)
	id, err := o.Enqueue(context.Background(), mail.Message{To: []string{"ann@example.test", "bob@example.test"}, Subject: "Files for you — ünïcode",
		Text: "Hello Ann,\nhere they are.", HTML: "<p>Hello <b>Ann</b></p>", Kind: "test"})
	if err != nil {
		t.Fatal(err)
	}
	a := mp.WaitFor(t, "ann@example.test", "Files for you", 20*time.Second)
	b := mp.WaitFor(t, "bob@example.test", "Files for you", 20*time.Second)
	if a.Subject != "Files for you — ünïcode" || !strings.Contains(a.Text, "here they are.") || !strings.Contains(a.HTML, "<b>Ann</b>") {
		t.Fatalf("received %+v", a)
	}
	if len(a.To) != 1 || len(b.To) != 1 {
		t.Fatalf("recipients see each other: %v / %v", a.To, b.To)
	}
	if a.MessageID == "" || a.MessageID != b.MessageID || !strings.HasPrefix(a.MessageID, id) {
		t.Fatalf("Message-IDs %q %q for row %s", a.MessageID, b.MessageID, id)
	}
	if a.From != "ferry@example.test" || a.Headers["Auto-Submitted"][0] != "auto-generated" {
		t.Fatalf("from %q, headers %v", a.From, a.Headers)
	}
	row := waitRow(t, d, id, func(m *db.OutboxMail) bool { return m.Status == db.MailSent }, 10*time.Second)
	if len(row.Pending) != 0 || len(row.Failed) != 0 {
		t.Fatalf("row = %+v", row)
	}
}

// TestOutageExactlyOnce: with the SMTP server down, mail stays queued and is
// retried; when the server returns, each recipient gets exactly one copy.
func TestOutageExactlyOnce(t *testing.T) {
	mp := ferrytest.StartMailpit(t)
	mp.Stop()
	d := dbtest.SQLite(t)
	o, err := mail.New(mail.Config{DB: d, SMTPURL: mp.SMTPURL, From: "ferry@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	mail.SetRetry(o, 200*time.Millisecond, time.Second, time.Hour)
	run(t, o)
	id, err := o.Enqueue(context.Background(), mail.Message{To: []string{"ann@example.test", "bob@example.test"}, Subject: "During the outage", Text: "x", Kind: "test"})
	if err != nil {
		t.Fatal(err)
	}
	row := waitRow(t, d, id, func(m *db.OutboxMail) bool { return m.Attempts >= 2 }, 20*time.Second)
	if row.Status != db.MailQueued || len(row.Pending) != 2 || row.LastError == "" {
		t.Fatalf("during the outage: %+v", row)
	}
	mp.Restart()
	mp.WaitFor(t, "ann@example.test", "During the outage", 20*time.Second)
	mp.WaitFor(t, "bob@example.test", "During the outage", 20*time.Second)
	waitRow(t, d, id, func(m *db.OutboxMail) bool { return m.Status == db.MailSent }, 10*time.Second)
	time.Sleep(3 * time.Second) // several more back-off periods: nothing is sent again
	msgs := mp.Messages(t)
	if a, b := countTo(msgs, "ann@example.test", "During the outage"), countTo(msgs, "bob@example.test", "During the outage"); a != 1 || b != 1 {
		t.Fatalf("copies received: ann %d, bob %d; want 1 each", a, b)
	}
}

// TestRecipientRefused: a recipient the server refuses for good (5xx) does
// not hold up the others, and is recorded.
func TestRecipientRefused(t *testing.T) {
	mp := ferrytest.StartMailpit(t, "--smtp-allowed-recipients", `^ok`)
	d := dbtest.SQLite(t)
	o, err := mail.New(mail.Config{DB: d, SMTPURL: mp.SMTPURL, From: "ferry@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	run(t, o)
	id, err := o.Enqueue(context.Background(), mail.Message{To: []string{"nobody@example.test", "ok@example.test"}, Subject: "Partly refused", Text: "x"})
	if err != nil {
		t.Fatal(err)
	}
	mp.WaitFor(t, "ok@example.test", "Partly refused", 20*time.Second)
	row := waitRow(t, d, id, func(m *db.OutboxMail) bool { return m.Status != db.MailQueued }, 10*time.Second)
	if row.Status != db.MailSent || len(row.Failed) != 1 || !strings.HasPrefix(row.Failed[0], "nobody@example.test\t") {
		t.Fatalf("row = %+v", row)
	}
	// Every recipient refused: the row fails at once, without retries.
	id, err = o.Enqueue(context.Background(), mail.Message{To: []string{"nobody@example.test"}, Subject: "All refused", Text: "x"})
	if err != nil {
		t.Fatal(err)
	}
	row = waitRow(t, d, id, func(m *db.OutboxMail) bool { return m.Status != db.MailQueued }, 10*time.Second)
	if row.Status != db.MailFailed || row.Attempts != 1 {
		t.Fatalf("row = %+v", row)
	}
}

// TestGiveUp: after the bounded retry time the row is marked failed.
func TestGiveUp(t *testing.T) {
	mp := ferrytest.StartMailpit(t)
	mp.Stop()
	d := dbtest.SQLite(t)
	o, err := mail.New(mail.Config{DB: d, SMTPURL: mp.SMTPURL, From: "ferry@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	mail.SetRetry(o, 100*time.Millisecond, 200*time.Millisecond, time.Second)
	run(t, o)
	id, err := o.Enqueue(context.Background(), mail.Message{To: []string{"ann@example.test"}, Subject: "Never", Text: "x"})
	if err != nil {
		t.Fatal(err)
	}
	row := waitRow(t, d, id, func(m *db.OutboxMail) bool { return m.Status != db.MailQueued }, 20*time.Second)
	if row.Status != db.MailFailed || row.Attempts < 2 || !strings.Contains(row.LastError, "connect") {
		t.Fatalf("row = %+v", row)
	}
}

// TestTwoNodesSendOnce: two outboxes (two nodes) on one database deliver
// every message exactly once.
func TestTwoNodesSendOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, _ *db.DB) {
		mp := ferrytest.StartMailpit(t)
		var d1, d2 *db.DB
		if strings.HasSuffix(t.Name(), "postgres") {
			u := dbtest.PostgresDSN(t)
			d1, d2 = openDB(t, u), openDB(t, u)
		} else {
			f := t.TempDir() + "/ferry.db"
			d1, d2 = openDB(t, f), openDB(t, f)
		}
		var nodes []*mail.Outbox
		for _, d := range []*db.DB{d1, d2} {
			o, err := mail.New(mail.Config{DB: d, SMTPURL: mp.SMTPURL, From: "ferry@example.test"})
			if err != nil {
				t.Fatal(err)
			}
			nodes = append(nodes, o)
		}
		const n = 20
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := nodes[i%2].Enqueue(context.Background(), mail.Message{To: []string{"ann@example.test"}, Subject: fmt.Sprintf("Message %03d", i), Text: "x"}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		for _, o := range nodes {
			run(t, o)
			o.Wake()
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, _ := d1.MailCounts(context.Background())
			if c[db.MailSent] == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("counts = %v", c)
			}
			time.Sleep(100 * time.Millisecond)
		}
		msgs := mp.Messages(t)
		for i := 0; i < n; i++ {
			if c := countTo(msgs, "ann@example.test", fmt.Sprintf("Message %03d", i)); c != 1 {
				t.Errorf("message %d arrived %d times", i, c)
			}
		}
	})
}

func openDB(t *testing.T, dsn string) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestDeliveryWithAuth: a user and password in the SMTP URL authenticate
// (Mailpit here accepts any; without TLS only a challenge-response
// mechanism is used, never the password in clear).
func TestDeliveryWithAuth(t *testing.T) {
	mp := ferrytest.StartMailpit(t)
	d := dbtest.SQLite(t)
	u := strings.Replace(mp.SMTPURL, "smtp://", "smtp://ferry:p%40ss@", 1)
	o, err := mail.New(mail.Config{DB: d, SMTPURL: u, From: "ferry@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	run(t, o)
	id, err := o.Enqueue(context.Background(), mail.Message{To: []string{"ann@example.test"}, Subject: "With auth", Text: "x"})
	if err != nil {
		t.Fatal(err)
	}
	row := waitRow(t, d, id, func(m *db.OutboxMail) bool { return m.Status != db.MailQueued || m.Attempts > 0 }, 20*time.Second)
	if row.Status != db.MailSent {
		t.Fatalf("row = %+v", row)
	}
	mp.WaitFor(t, "ann@example.test", "With auth", 20*time.Second)
}

// TestSMTPRefusesUnsafeServers: Ferry sends nothing — not the message in
// clear — to a server that offers STARTTLS with a certificate it does not
// trust, nor, with ?starttls=required, to one that does not offer STARTTLS;
// the message stays queued with the reason.
func TestSMTPRefusesUnsafeServers(t *testing.T) {
	for _, c := range []struct {
		name, query, reason string
		tls                 bool
	}{
		{"untrusted STARTTLS certificate", "", "certificate", true},
		{"no STARTTLS, starttls=required", "?starttls=required", "starttls", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var args []string
			if c.tls {
				certFile, keyFile := selfSigned(t, t.TempDir())
				args = []string{"--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile}
			}
			mp := ferrytest.StartMailpit(t, args...)
			d := dbtest.SQLite(t)
			o, err := mail.New(mail.Config{DB: d, SMTPURL: mp.SMTPURL + c.query, From: "ferry@example.test"})
			if err != nil {
				t.Fatal(err)
			}
			run(t, o)
			id, err := o.Enqueue(context.Background(), mail.Message{To: []string{"ann@example.test"}, Subject: "Secret", Text: "x"})
			if err != nil {
				t.Fatal(err)
			}
			row := waitRow(t, d, id, func(m *db.OutboxMail) bool { return m.Attempts > 0 }, 20*time.Second)
			if row.Status != db.MailQueued || !strings.Contains(strings.ToLower(row.LastError), c.reason) {
				t.Fatalf("row = %+v", row)
			}
			if n := len(mp.Messages(t)); n != 0 {
				t.Fatalf("%d messages reached the server", n)
			}
		})
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
