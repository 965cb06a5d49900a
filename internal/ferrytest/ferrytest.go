// Package ferrytest starts the whole Ferry server for tests, through the same
// cli.Run that the ferry binary runs, on 127.0.0.1 port 0 with a temporary
// data directory, and waits until it is ready.
package ferrytest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry.dev/ferry/internal/cli"
	"ferry.dev/ferry/internal/db/dbtest"
)

// Server is a running Ferry server.
type Server struct {
	Data      string // data directory
	PublicURL string // https://127.0.0.1:PORT
	AdminURL  string
	SFTPAddr  string // 127.0.0.1:PORT
	SetupURL  string // printed setup link, if any
	DSN       string // database DSN ("" for SQLite in Data)
	Client    *http.Client

	t      testing.TB
	args   []string
	binary bool      // run the built binary as a child process (WithBinary)
	cmd    *exec.Cmd // the child process, with WithBinary
	cancel context.CancelFunc
	done   chan error
	mu     sync.Mutex
	log    bytes.Buffer
}

// Option configures Start.
type Option func(*Server)

// WithPostgres runs the server on a fresh PostgreSQL database.
func WithPostgres() Option {
	return func(s *Server) { s.DSN = dbtest.PostgresDSN(s.t) }
}

// WithArgs adds flags to `ferry serve`.
func WithArgs(args ...string) Option {
	return func(s *Server) { s.args = append(s.args, args...) }
}

// WithData uses an existing data directory.
func WithData(dir string) Option {
	return func(s *Server) { s.Data = dir }
}

// WithBinary runs `ferry serve` as the real binary (Binary: not
// race-instrumented) in a child process instead of in this one, for tests
// that watch the process itself (its children, its memory: Pid). The child
// gets only PATH and a temporary HOME from the environment; call RemoveBinary
// from TestMain.
func WithBinary() Option {
	return func(s *Server) { s.binary = true }
}

// Pid returns the server's process id: the child's with WithBinary,
// otherwise this process's.
func (s *Server) Pid() int {
	if s.cmd != nil {
		return s.cmd.Process.Pid
	}
	return os.Getpid()
}

// Start runs `ferry serve` and stops it when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{t: t}
	for _, o := range opts {
		o(s)
	}
	if s.Data == "" {
		s.Data = filepath.Join(t.TempDir(), "data")
	}
	s.start()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			s.mu.Lock()
			t.Logf("server log:\n%s", s.log.String())
			s.mu.Unlock()
		}
	})
	return s
}

func (s *Server) start() {
	t := s.t
	t.Helper()
	args := []string{"serve", "--data", s.Data, "--public-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--sftp-addr", "127.0.0.1:0",
		"--shutdown-timeout", "5s", "--log-level", "debug"}
	if s.DSN != "" {
		args = append(args, "--db", s.DSN)
	}
	args = append(args, s.args...)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s.cancel, s.done = cancel, make(chan error, 1)
	ready := make(chan struct{})
	if s.binary {
		s.cmd = exec.Command(Binary(t), args...)
		s.cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
		s.cmd.Stderr = pw
		if err := s.cmd.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		cmd := s.cmd
		go func() {
			err := cmd.Wait()
			pw.Close()
			s.done <- err
		}()
		// Stopping the child is SIGINT (what ^C does), SIGKILL after 20 s.
		s.cancel = func() {
			cancel()
			cmd.Process.Signal(os.Interrupt)
			// Kill once the process is gone is a harmless ErrProcessDone.
			time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
		}
	} else {
		go func() {
			err := cli.Run(ctx, args, cli.Env{Getenv: func(string) string { return "" }, Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: pw})
			pw.Close()
			s.done <- err
		}()
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		closed := false
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			switch {
			case strings.HasPrefix(line, "ferry: public listener "):
				s.PublicURL = strings.TrimPrefix(line, "ferry: public listener ")
			case strings.HasPrefix(line, "ferry: admin listener "):
				s.AdminURL = strings.TrimPrefix(line, "ferry: admin listener ")
			case strings.HasPrefix(line, "ferry: sftp listener "):
				s.SFTPAddr = strings.TrimPrefix(line, "ferry: sftp listener ")
			case strings.HasPrefix(line, "ferry: setup "):
				s.SetupURL = strings.TrimPrefix(line, "ferry: setup ")
			case line == "ferry: ready" && !closed:
				close(ready)
				closed = true
			}
			s.mu.Unlock()
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case <-ready:
	case err := <-s.done:
		s.done <- err
		t.Fatalf("ferry serve exited before ready: %v\n%s", err, s.Log())
	case <-time.After(60 * time.Second):
		t.Fatalf("ferry serve not ready after 60s\n%s", s.Log())
	}
	pem, err := os.ReadFile(filepath.Join(s.Data, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	s.Client = &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, u := range []string{s.PublicURL, s.AdminURL} {
		res, err := s.Client.Get(u + "/healthz")
		if err != nil {
			t.Fatalf("healthz %s: %v", u, err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("healthz %s: %s", u, res.Status)
		}
	}
}

// Log returns what the server printed so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Stop shuts the server down gracefully and fails the test if it did not
// exit cleanly. Stopping twice is harmless.
func (s *Server) Stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("ferry serve exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		s.t.Errorf("ferry serve did not stop within 30s")
	}
	if s.Client != nil {
		s.Client.CloseIdleConnections()
	}
}

// Restart stops the server and starts it again on the same data directory
// and database (with new ports).
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.mu.Lock()
	s.PublicURL, s.AdminURL, s.SetupURL, s.SFTPAddr = "", "", "", ""
	s.mu.Unlock()
	s.start()
}

// CA returns the path of the server's self-signed certificate, for curl
// --cacert.
func (s *Server) CA() string { return filepath.Join(s.Data, "tls", "cert.pem") }

// Run runs a ferry command (e.g. "admin", "audit") against this server's data
// directory and returns its stdout, stderr and error.
func (s *Server) Run(stdin string, args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	full := append([]string{args[0]}, args[1:]...)
	if len(args) > 1 && (args[0] == "admin" || args[0] == "audit") {
		if args[0] == "audit" {
			full = append([]string{"audit", args[1], "--data", s.Data}, args[2:]...)
			if s.DSN != "" {
				full = append(full, "--db", s.DSN)
			}
		} else {
			full = append([]string{"admin", "--data", s.Data}, args[1:]...)
		}
	}
	err = cli.Run(context.Background(), full, cli.Env{Getenv: func(string) string { return "" }, Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb})
	return out.String(), errb.String(), err
}

// Admin runs `ferry admin --data DIR args…` and fails the test on error. It
// returns stdout.
func (s *Server) Admin(args ...string) string {
	s.t.Helper()
	out, errOut, err := s.Run("", append([]string{"admin"}, args...)...)
	if err != nil {
		s.t.Fatalf("ferry admin %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// User creates (if needed) the organisation, a user with the given role and an
// API token, and returns the token.
func (s *Server) User(org, email, role string) string {
	s.t.Helper()
	if _, _, err := s.Run("", "admin", "org", "create", org); err != nil && !strings.Contains(err.Error(), "already exists") {
		s.t.Fatalf("org create: %v", err)
	}
	s.Admin("user", "create", "--org", org, "--email", email, "--role", role)
	return strings.TrimSpace(s.Admin("token", "create", "--user", email))
}

// Do sends an API request with a bearer token to the public listener.
func (s *Server) Do(method, path, token string, body io.Reader, hdr ...string) *http.Response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.PublicURL+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := s.Client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	return res
}

// Body reads and closes a response body.
func Body(t testing.TB, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Expect fails the test unless res has the given status; it returns the body.
func Expect(t testing.TB, res *http.Response, status int) string {
	t.Helper()
	b := Body(t, res)
	if res.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", res.Request.Method, res.Request.URL.Path, res.StatusCode, status, b)
	}
	return b
}
