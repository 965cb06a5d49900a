package cli_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry.dev/ferry/internal/ferrytest"
)

// serverProc is `ferry serve` as a separate process, so that it can be
// killed with SIGKILL.
type serverProc struct {
	t    *testing.T
	bin  string
	data string
	port string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	log  strings.Builder
}

func (s *serverProc) start() {
	t := s.t
	t.Helper()
	s.cmd = exec.Command(s.bin, "serve", "--data", s.data, "--public-addr", "127.0.0.1:"+s.port, "--admin-addr", "127.0.0.1:0", "--sftp-addr", "127.0.0.1:0")
	s.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.data}
	pr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			s.mu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if sc.Text() == "ferry: ready" {
				once.Do(func() { close(ready) })
			}
		}
		s.cmd.Wait()
	}()
	select {
	case <-ready:
	case <-s.done:
		t.Fatalf("ferry serve exited:\n%s", s.logText())
	case <-time.After(60 * time.Second):
		t.Fatalf("ferry serve not ready:\n%s", s.logText())
	}
}

func (s *serverProc) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

func (s *serverProc) kill() {
	s.cmd.Process.Kill()
	<-s.done
}

func (s *serverProc) admin(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(s.bin, append([]string{"admin", "--data", s.data}, args...)...)
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("ferry admin %v: %v\n%s%s", args, err, out, errb.String())
	}
	return strings.TrimSpace(string(out))
}

// TestPutSurvivesServerKill: the server is killed with SIGKILL while
// `ferry put` of a 1 GiB file (64 MiB with -short) is at about 40 %, then
// started again on the same data directory. The upload completes (the client
// retries, or is simply run again), the file's SHA-256 matches, less than two
// chunks are sent twice, and the audit log still verifies.
func TestPutSurvivesServerKill(t *testing.T) {
	size := int64(1 << 30)
	if testing.Short() {
		size = 64 << 20
	}
	bin := ferrytest.Binary(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	srv := &serverProc{t: t, bin: bin, data: filepath.Join(dir, "data"), port: port}
	srv.start()
	t.Cleanup(func() {
		if srv.cmd.ProcessState == nil {
			srv.kill()
		}
		if t.Failed() {
			t.Logf("server log:\n%s", srv.logText())
		}
	})
	srv.admin("org", "create", "acme")
	srv.admin("user", "create", "--org", "acme", "--email", "alice@acme.test", "--role", "user")
	srv.admin("folder", "create", "--org", "acme", "/in")
	srv.admin("grant", "--org", "acme", "--user", "alice@acme.test", "/in", "list,read,write")
	token := srv.admin("token", "create", "--user", "alice@acme.test")
	ca := filepath.Join(srv.data, "tls", "cert.pem")
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	api := func(method, path string) (*http.Response, error) {
		req, _ := http.NewRequest(method, "https://127.0.0.1:"+port+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		return hc.Do(req)
	}
	offset := func() int64 {
		res, err := api("GET", "/api/v1/uploads/?path=/in/big.bin")
		if err != nil {
			return 0
		}
		defer res.Body.Close()
		var l struct{ Uploads []struct{ Offset int64 } }
		if json.NewDecoder(res.Body).Decode(&l) != nil || len(l.Uploads) == 0 {
			return 0
		}
		return l.Uploads[0].Offset
	}

	src := filepath.Join(dir, "big.bin")
	sum := bigFile(t, src, size)
	proxy := ferrytest.StartProxy(t, "127.0.0.1:"+port)
	put := func() (*exec.Cmd, *strings.Builder) {
		cmd := exec.Command(bin, "put", "--json", src, "/in/big.bin")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "XDG_CONFIG_HOME=" + dir,
			"FERRY_SERVER=https://" + proxy.Addr, "FERRY_TOKEN=" + token, "FERRY_CA=" + ca}
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		return cmd, &out
	}
	cmd, out := put()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Minute)
	var killedAt int64
	for killedAt < size*4/10 {
		select {
		case err := <-exited:
			t.Fatalf("ferry put ended (%v) before the server was killed:\n%s", err, out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the upload did not reach 40 % in 10 minutes")
		}
		killedAt = offset()
	}
	srv.kill()
	t.Logf("server killed with the upload at %d of %d bytes", killedAt, size)
	time.Sleep(500 * time.Millisecond)
	srv.start()

	// The client may get through on its own retries; if it gave up while
	// the server was down, it is run again, as a user would.
	if err := <-exited; err != nil {
		t.Logf("first ferry put gave up (%v); running it again", err)
		cmd, out = put()
		if err := cmd.Run(); err != nil {
			t.Fatalf("second ferry put: %v\n%s", err, out)
		}
	}
	resent := proxy.Up() - size
	const chunk = 16 << 20
	t.Logf("the proxy carried %d bytes client→server for a %d-byte file: %d (%.1f MiB) more", proxy.Up(), size, resent, float64(resent)/(1<<20))
	if resent >= 2*chunk {
		t.Errorf("%d bytes sent beyond the file's size, want < 2 chunks (%d)", resent, 2*chunk)
	}
	res, err := api("HEAD", "/api/v1/files/in/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("ETag") != `"`+sum+`"` {
		t.Fatalf("stored file: %s, ETag %s, want sha256 %s", res.Status, res.Header.Get("ETag"), sum)
	}
	if out, err := exec.Command(bin, "audit", "verify", "--data", srv.data).CombinedOutput(); err != nil {
		t.Fatalf("audit verify after SIGKILL: %v\n%s", err, out)
	}
}
