package httpd_test

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"ferry.dev/ferry/internal/ferrytest"
)

// TestTusJSClient drives the tus endpoint with tus-js-client under Node.js —
// an implementation of the protocol written by others — to show conformance:
// an upload in 4 MiB chunks is killed part-way, then run again; the client
// finds its earlier upload in its URL store, asks the server for the offset
// and sends only the rest.
func TestTusJSClient(t *testing.T) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed for the tus-js-client test (scripts/test.sh installs it): %v", tool, err)
		}
	}
	s, _, alice, _ := setup(t)
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "upload.mjs"} {
		b, err := os.ReadFile(filepath.Join("testdata", "tusjs", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	if out, err := exec.Command("npm", "ci", "--prefix", dir, "--no-audit", "--no-fund").CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}

	const size, chunk = 48 << 20, 4 << 20
	content := make([]byte, size)
	rand.Read(content)
	src := filepath.Join(dir, "big.bin")
	os.WriteFile(src, content, 0o600)
	sum := sha256.Sum256(content)
	store := filepath.Join(dir, "urls.json")
	node := func() *exec.Cmd {
		cmd := exec.Command("node", filepath.Join(dir, "upload.mjs"), s.PublicURL+"/api/v1/uploads/", alice, src,
			"/finance/tusjs.bin", hex.EncodeToString(sum[:]), strconv.Itoa(chunk), store)
		cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+s.CA())
		return cmd
	}

	// First run: killed once the server has acknowledged a third of it.
	cmd := node()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var acked int64
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "progress "); ok {
			acked, _ = strconv.ParseInt(v, 10, 64)
			if acked >= size/3 {
				cmd.Process.Kill()
				break
			}
		}
	}
	go io.Copy(io.Discard, stdout)
	cmd.Wait()
	if acked < size/3 || acked >= size {
		t.Fatalf("first run stopped at %d of %d bytes\n%s", acked, size, stderr.String())
	}
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/tusjs.bin", alice, nil), 404)

	// Second run: resumes from the server's offset.
	start := time.Now()
	out, err := node().CombinedOutput()
	if err != nil || !strings.Contains(string(out), "resuming ") || !strings.Contains(string(out), "done ") {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	var first int64 = -1
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "progress "); ok && first < 0 {
			first, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	// The first chunk the second run completed ends one chunk past where
	// the first run was stopped: nothing before that was sent again.
	if first < acked || first > acked+2*chunk {
		t.Fatalf("second run's first acknowledged offset %d, first run reached %d", first, acked)
	}
	t.Logf("killed at %d, resumed and finished in %v", acked, time.Since(start).Round(time.Millisecond))
	got := ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/tusjs.bin", alice, nil), 200)
	if got != string(content) {
		t.Fatal("content differs")
	}
}
