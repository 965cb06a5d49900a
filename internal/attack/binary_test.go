package attack_test

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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry.dev/ferry/internal/cli"
	"ferry.dev/ferry/internal/ferrytest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	ferrytest.RemoveBinary()
	os.Exit(code)
}

// binServer is the real ferry binary running `ferry serve`, for the tests
// that watch the process itself (children, memory).
type binServer struct {
	t         testing.TB
	cmd       *exec.Cmd
	data      string
	publicURL string
	client    *http.Client
	mu        sync.Mutex
	log       bytes.Buffer
	done      chan struct{}
}

// startBinary runs the ferry binary on a fresh data directory.
func startBinary(t testing.TB, args ...string) *binServer {
	t.Helper()
	bin := ferrytest.Binary(t)
	s := &binServer{t: t, data: filepath.Join(t.TempDir(), "data"), done: make(chan struct{})}
	full := append([]string{"serve", "--data", s.data, "--public-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--sftp-addr", "127.0.0.1:0", "--shutdown-timeout", "5s"}, args...)
	s.cmd = exec.Command(bin, full...)
	s.cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		closed := false
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			if u, ok := strings.CutPrefix(line, "ferry: public listener "); ok {
				s.publicURL = u
			}
			s.mu.Unlock()
			if line == "ferry: ready" && !closed {
				close(ready)
				closed = true
			}
		}
	}()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("server log:\n%s", s.logText())
		}
	})
	select {
	case <-ready:
	case <-s.done:
		t.Fatalf("ferry serve exited before ready\n%s", s.logText())
	case <-time.After(60 * time.Second):
		t.Fatalf("ferry serve not ready after 60s\n%s", s.logText())
	}
	pem, err := os.ReadFile(filepath.Join(s.data, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	s.client = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return s
}

func (s *binServer) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

func (s *binServer) Pid() int           { return s.cmd.Process.Pid }
func (s *binServer) URL() string        { s.mu.Lock(); defer s.mu.Unlock(); return s.publicURL }
func (s *binServer) HTTP() *http.Client { return s.client }
func (s *binServer) Dir() string        { return s.data }

// Stop sends SIGTERM and waits.
func (s *binServer) Stop() {
	if s.cmd.ProcessState != nil {
		return
	}
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
	}
	s.cmd.Wait()
}

// Run runs a ferry command in this process against the server's data
// directory, as ferrytest does (admin commands go through DIR/admin.sock).
func (s *binServer) Run(stdin string, args ...string) (string, string, error) {
	full := args
	if len(args) > 1 && args[0] == "audit" {
		full = append([]string{"audit", args[1], "--data", s.data}, args[2:]...)
	} else if len(args) > 0 && args[0] == "admin" {
		full = append([]string{"admin", "--data", s.data}, args[1:]...)
	}
	var out, errb bytes.Buffer
	err := cli.Run(context.Background(), full, cli.Env{Getenv: func(string) string { return "" }, Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb})
	return out.String(), errb.String(), err
}

func (s *binServer) Admin(args ...string) string {
	s.t.Helper()
	out, errOut, err := s.Run("", append([]string{"admin"}, args...)...)
	if err != nil {
		s.t.Fatalf("ferry admin %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

func (s *binServer) User(org, email, role string) string {
	s.t.Helper()
	if _, _, err := s.Run("", "admin", "org", "create", org); err != nil && !strings.Contains(err.Error(), "already exists") {
		s.t.Fatalf("org create: %v", err)
	}
	s.Admin("user", "create", "--org", org, "--email", email, "--role", role)
	return strings.TrimSpace(s.Admin("token", "create", "--user", email))
}

func (s *binServer) Do(method, path, token string, body io.Reader, hdr ...string) *http.Response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	return res
}

// children returns the pids of the processes whose parent is pid: from
// /proc/PID/task/*/children and, independently, every /proc/*/stat.
func children(t testing.TB, pid int) []int {
	t.Helper()
	var out []int
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	if len(tasks) == 0 {
		t.Fatalf("no /proc/%d/task/*/children: is /proc mounted (Linux)?", pid)
	}
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, f := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(f)
			out = append(out, n)
		}
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may contain spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fs := strings.Fields(s[i+1:])
		if len(fs) > 1 && fs[1] == strconv.Itoa(pid) {
			n, _ := strconv.Atoi(strings.Fields(s)[0])
			out = append(out, n)
		}
	}
	return out
}

// vmHWM returns the peak resident set size of a process, in KiB.
func vmHWM(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	t.Fatal("no VmHWM")
	return 0
}
