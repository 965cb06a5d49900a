package ferrytest

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// MailpitVersion is the Mailpit release the tests run (the test command
// builds and caches it).
const MailpitVersion = "v1.33.1"

// Mailpit is a running Mailpit: a real SMTP server that keeps every message
// it receives and shows them through an HTTP API.
type Mailpit struct {
	SMTPURL  string // smtp://127.0.0.1:PORT
	SMTPAddr string // 127.0.0.1:PORT
	APIURL   string // http://127.0.0.1:PORT

	t    testing.TB
	bin  string
	args []string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *lockedBuffer
}

// MailpitMessage is one message Mailpit received.
type MailpitMessage struct {
	ID        string
	MessageID string
	Subject   string
	From      string
	To        []string // addresses
	Text      string
	HTML      string
	Headers   map[string][]string
}

// mailpitBinary finds Mailpit: $FERRY_MAILPIT, else the test command's
// cache, else PATH. Missing, it fails the test under CI and skips it
// elsewhere.
func mailpitBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("FERRY_MAILPIT"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "ferry-tools", "mailpit-"+MailpitVersion, "mailpit")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("mailpit"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("mailpit not found ($FERRY_MAILPIT, ~/.cache/ferry-tools/mailpit-%s/mailpit or PATH)", MailpitVersion)
	}
	t.Skipf("mailpit not found ($FERRY_MAILPIT, ~/.cache/ferry-tools/mailpit-%s/mailpit or PATH); `go install github.com/axllent/mailpit@%s`", MailpitVersion, MailpitVersion)
	return ""
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// StartMailpit runs Mailpit on free loopback ports until the test ends.
// It accepts plain SMTP, with or without any username and password. Extra
// flags (say --smtp-allowed-recipients REGEXP) are passed on.
func StartMailpit(t testing.TB, extra ...string) *Mailpit {
	t.Helper()
	bin := mailpitBinary(t)
	smtpAddr, apiAddr := freePort(t), freePort(t)
	m := &Mailpit{SMTPURL: "smtp://" + smtpAddr, SMTPAddr: smtpAddr, APIURL: "http://" + apiAddr, t: t, bin: bin, log: &lockedBuffer{}}
	m.args = append([]string{"--listen", apiAddr, "--smtp", smtpAddr, "--disable-version-check",
		"--database", filepath.Join(t.TempDir(), "mailpit.db"),
		"--smtp-auth-accept-any", "--smtp-auth-allow-insecure", "--smtp-disable-rdns"}, extra...)
	m.start()
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			t.Logf("mailpit log:\n%s", m.log.String())
		}
	})
	return m
}

func (m *Mailpit) start() {
	t := m.t
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		cmd := exec.Command(m.bin, m.args...)
		cmd.Stdout, cmd.Stderr = m.log, m.log
		if err := cmd.Start(); err != nil {
			t.Fatalf("start mailpit: %v", err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		for {
			select {
			case <-done:
				// Exited: probably a port still in TIME_WAIT or taken
				// by someone else since; try again for a while.
				if time.Now().After(deadline) {
					t.Fatalf("mailpit exited at start:\n%s", m.log.String())
				}
				time.Sleep(200 * time.Millisecond)
			case <-time.After(50 * time.Millisecond):
				resp, err := http.Get(m.APIURL + "/api/v1/info")
				if err == nil {
					resp.Body.Close()
				}
				c, err2 := net.DialTimeout("tcp", m.SMTPAddr, time.Second)
				if err2 == nil {
					c.Close()
				}
				if err == nil && resp.StatusCode == 200 && err2 == nil {
					m.cmd, m.done = cmd, done
					return
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					<-done
					t.Fatalf("mailpit not ready after 20s:\n%s", m.log.String())
				}
				continue
			}
			break
		}
	}
}

// Stop stops Mailpit (an SMTP outage); Restart starts it again on the same
// ports with the messages it had.
func (m *Mailpit) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Signal(os.Interrupt)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		m.cmd.Process.Kill()
		<-m.done
	}
	m.cmd = nil
}

// Restart starts a stopped Mailpit again.
func (m *Mailpit) Restart() { m.start() }

type mailpitAddr struct{ Name, Address string }

// Messages returns every message received so far, oldest first.
func (m *Mailpit) Messages(t testing.TB) []MailpitMessage {
	t.Helper()
	var list struct {
		Messages []struct{ ID string }
	}
	m.getJSON(t, "/api/v1/messages?limit=1000", &list)
	out := make([]MailpitMessage, 0, len(list.Messages))
	for i := len(list.Messages) - 1; i >= 0; i-- { // the API lists newest first
		out = append(out, m.Message(t, list.Messages[i].ID))
	}
	return out
}

// Message returns one message by its Mailpit ID.
func (m *Mailpit) Message(t testing.TB, id string) MailpitMessage {
	t.Helper()
	var msg struct {
		ID, MessageID, Subject, Text, HTML string
		From                               mailpitAddr
		To                                 []mailpitAddr
	}
	m.getJSON(t, "/api/v1/message/"+url.PathEscape(id), &msg)
	out := MailpitMessage{ID: msg.ID, MessageID: msg.MessageID, Subject: msg.Subject, From: msg.From.Address, Text: msg.Text, HTML: msg.HTML}
	for _, a := range msg.To {
		out.To = append(out.To, a.Address)
	}
	m.getJSON(t, "/api/v1/message/"+url.PathEscape(id)+"/headers", &out.Headers)
	return out
}

// WaitFor waits up to timeout for a message to the address to whose subject
// contains subject, and returns the first such message; it fails the test
// if none arrives.
func (m *Mailpit) WaitFor(t testing.TB, to, subject string, timeout time.Duration) MailpitMessage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, msg := range m.Messages(t) {
			if strings.Contains(msg.Subject, subject) && containsFold(msg.To, to) {
				return msg
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail to %s with subject containing %q within %v", to, subject, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// DeleteAll deletes every message Mailpit holds.
func (m *Mailpit) DeleteAll(t testing.TB) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, m.APIURL+"/api/v1/messages", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func (m *Mailpit) getJSON(t testing.TB, path string, v any) {
	t.Helper()
	resp, err := http.Get(m.APIURL + path)
	if err != nil {
		t.Fatalf("mailpit API: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("mailpit API %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("mailpit API %s: %v", path, err)
	}
}

// WithMail makes the server send mail through Mailpit (--smtp-url and
// --mail-from ferry@example.test).
func WithMail(mp *Mailpit) Option {
	return func(s *Server) {
		s.args = append(s.args, "--smtp-url", mp.SMTPURL, "--mail-from", "Ferry <ferry@example.test>")
	}
}

// lockedBuffer collects a process's output for the test log.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
