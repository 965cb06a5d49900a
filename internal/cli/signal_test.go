package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGTERMLetsInFlightFinish runs the real binary, starts a slow upload,
// sends SIGTERM, and checks that the upload still completes and the server
// exits 0.
func TestSIGTERMLetsInFlightFinish(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "ferry")
	if out, err := exec.Command("go", "build", "-o", bin, "ferry.dev/ferry/cmd/ferry").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command(bin, "serve", "--data", data, "--public-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var public, adminURL string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		if u, ok := strings.CutPrefix(line, "ferry: public listener "); ok {
			public = u
		}
		if u, ok := strings.CutPrefix(line, "ferry: admin listener "); ok {
			adminURL = u
		}
		if line == "ferry: ready" {
			break
		}
	}
	go io.Copy(io.Discard, stderr)
	admin := func(args ...string) string {
		out, err := exec.Command(bin, append([]string{"admin", "--data", data}, args...)...).Output()
		if err != nil {
			t.Fatalf("admin %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	admin("org", "create", "acme")
	admin("user", "create", "--org", "acme", "--email", "a@acme.test", "--role", "admin")
	tok := admin("token", "create", "--user", "a@acme.test")

	pem, _ := os.ReadFile(filepath.Join(data, "tls", "cert.pem"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	pr, pw := io.Pipe()
	req, _ := http.NewRequestWithContext(context.Background(), "PUT", public+"/api/v1/files/slow.bin", pr)
	req.Header.Set("Authorization", "Bearer "+tok)
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		res, err := client.Do(req)
		if err != nil {
			done <- result{0, err}
			return
		}
		res.Body.Close()
		done <- result{res.StatusCode, nil}
	}()
	pw.Write(bytes.Repeat([]byte("a"), 100000))
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// New connections are refused while the upload drains, on the public
	// listener and on the admin listener alike.
	for _, u := range []string{public, adminURL} {
		host := strings.TrimPrefix(u, "https://")
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			c, err := net.DialTimeout("tcp", host, time.Second)
			if err != nil {
				break
			}
			c.Close()
			if time.Now().After(deadline) {
				t.Errorf("%s still accepts connections 10 s after SIGTERM", u)
				break
			}
		}
	}
	pw.Write(bytes.Repeat([]byte("b"), 100000))
	pw.Close()
	r := <-done
	if r.err != nil || r.status != 201 {
		t.Fatalf("in-flight upload after SIGTERM: %d %v", r.status, r.err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("server exit after SIGTERM: %v", err)
	}
}

// TestAdminAPIRejectsUnknownFields sends JSON with an unknown field, and a
// huge body, straight to the admin socket.
func TestAdminAPIRejectsUnknownFields(t *testing.T) {
	s := startServer(t)
	sock := filepath.Join(s.Data, "admin.sock")
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	post := func(body io.Reader) (int, string) {
		res, err := c.Post("http://ferry/admin/v1/orgs", "application/json", body)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode, string(b)
	}
	if st, b := post(strings.NewReader(`{"name":"acme","admin":true}`)); st != 400 || !strings.Contains(b, `unknown field`) {
		t.Fatalf("unknown field: %d %s", st, b)
	}
	if st, b := post(strings.NewReader(`{"name":"acme"}{"name":"evil"}`)); st != 400 {
		t.Fatalf("trailing data: %d %s", st, b)
	}
	if st, b := post(strings.NewReader(`{"name":"` + strings.Repeat("a", 1<<20) + `"}`)); st != 413 {
		t.Fatalf("huge body: %d %.200s", st, b)
	}
	if st, b := post(strings.NewReader(`{"name":"acme"}`)); st != 201 {
		t.Fatalf("valid body: %d %s", st, b)
	}
}
