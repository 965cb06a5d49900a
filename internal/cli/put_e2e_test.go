package cli_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry.dev/ferry/internal/client"
	"ferry.dev/ferry/internal/ferrytest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	ferrytest.RemoveBinary()
	os.Exit(code)
}

// subprocess runs the real ferry binary as a client of c's server through
// server (a URL, e.g. the counting proxy's).
func (c *clientEnv) command(bin, server string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + c.home,
		"XDG_CONFIG_HOME=" + c.home,
		"FERRY_SERVER=" + server,
		"FERRY_TOKEN=" + c.alice,
		"FERRY_CA=" + c.s.CA(),
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	return cmd, &out, &errb
}

// bigFile writes n random bytes to p and returns their hex SHA-256.
func bigFile(t *testing.T, p string, n int64) string {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rand.Reader, n)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// oneRecord parses the one --json record a transfer printed.
func oneRecord(t *testing.T, out string) transferRec {
	t.Helper()
	var r transferRec
	if err := json.Unmarshal([]byte(out), &r); err != nil || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("--json output %q: %v", out, err)
	}
	return r
}

type transferRec struct {
	Op, Local, Remote, SHA256 string
	Size, Sent                int64
	ResumedFrom               int64 `json:"resumed_from"`
	Seconds                   float64
}

// killAt runs cmd and SIGKILLs it once progress() reaches at least at (and
// then delay more); it fails the test if the command ends first.
func killAt(t *testing.T, cmd *exec.Cmd, errb *bytes.Buffer, at int64, delay time.Duration, progress func() int64) int64 {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Minute)
	for {
		select {
		case err := <-exited:
			t.Fatalf("%v ended (%v) before reaching %d bytes\n%s", cmd.Args, err, at, errb)
		case <-deadline:
			cmd.Process.Kill()
			<-exited
			t.Fatalf("%v did not reach %d bytes in 10 minutes", cmd.Args, at)
		case <-tick.C:
			if n := progress(); n >= at {
				time.Sleep(delay)
				cmd.Process.Kill()
				<-exited
				return n
			}
		}
	}
}

// TestPutAndGetResumeAfterKill is the acceptance scenario of resumable
// transfers with the real binary: ferry put of a 1 GiB file (64 MiB with
// -short) through a counting proxy, killed with SIGKILL at about 40 % of the
// server's offset, then re-run: it completes, the content's SHA-256 matches,
// and the proxy carried less than two chunks more than the file. Then the
// same for ferry get, killed at about 40 % of the partial file: the re-run
// resumes (resumed_from > 0) and verifies.
func TestPutAndGetResumeAfterKill(t *testing.T) {
	size := int64(1 << 30)
	if testing.Short() {
		size = 64 << 20
	}
	c := newClientEnv(t)
	bin := ferrytest.Binary(t)
	proxy := ferrytest.StartProxy(t, strings.TrimPrefix(c.s.PublicURL, "https://"))
	viaProxy := "https://" + proxy.Addr
	dir := t.TempDir()
	local := filepath.Join(dir, "big.bin")
	sum := bigFile(t, local, size)
	const remote = "/finance/big.bin"

	// Upload, killed at ~40 % of what the server acknowledged.
	start := time.Now()
	serverOffset := func() int64 {
		res := c.s.Do("GET", "/api/v1/uploads/?path="+remote, c.alice, nil)
		var l struct{ Uploads []struct{ Offset int64 } }
		err := json.NewDecoder(res.Body).Decode(&l)
		res.Body.Close()
		if err != nil || len(l.Uploads) == 0 {
			return 0
		}
		return l.Uploads[0].Offset
	}
	cmd, _, errb := c.command(bin, viaProxy, "put", "--json", local, remote)
	// The offset moves when the server has a chunk; wait a little more so
	// that the kill lands in the middle of the next one, not between two.
	killedAt := killAt(t, cmd, errb, size*4/10, 60*time.Millisecond, serverOffset)
	t.Logf("put killed after the server reached offset %d (%.0f %%), proxy had carried %d bytes", killedAt, 100*float64(killedAt)/float64(size), proxy.Up())

	cmd, out, errb := c.command(bin, viaProxy, "put", "--json", local, remote)
	if err := cmd.Run(); err != nil {
		t.Fatalf("second put: %v\n%s", err, errb)
	}
	elapsed := time.Since(start)
	rec := oneRecord(t, out.String())
	if rec.Op != "put" || rec.Remote != remote || rec.Size != size || rec.SHA256 != sum || rec.ResumedFrom < killedAt || rec.Sent != size-rec.ResumedFrom {
		t.Errorf("second put: %+v (killed at %d)", rec, killedAt)
	}
	resent := proxy.Up() - size
	t.Logf("put of %d MiB: %v in all; proxy carried %d bytes client→server, %d (%.1f MiB) more than the file", size>>20, elapsed.Round(time.Millisecond), proxy.Up(), resent, float64(resent)/(1<<20))
	if resent >= 2*client.DefaultChunkSize {
		t.Errorf("re-sent %d bytes, want < %d (2 chunks)", resent, 2*client.DefaultChunkSize)
	}
	res := c.s.Do("GET", "/api/v1/files"+remote, c.alice, nil)
	h := sha256.New()
	n, err := io.Copy(h, res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || n != size || hex.EncodeToString(h.Sum(nil)) != sum {
		t.Fatalf("download after put: status %d, %d bytes, %v; SHA-256 mismatch or short", res.StatusCode, n, err)
	}
	if l := c.ok(t, "ls", "/finance"); l != "big.bin\n" {
		t.Errorf("ls /finance = %q", l)
	}

	// Download, killed at ~40 % of the partial file, then resumed.
	target := filepath.Join(dir, "copy.bin")
	part := client.PartialPath(target)
	partSize := func() int64 {
		fi, err := os.Stat(part)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	start = time.Now()
	down0 := proxy.Down()
	cmd, _, errb = c.command(bin, viaProxy, "get", "--json", remote, target)
	killedAt = killAt(t, cmd, errb, size*4/10, 0, partSize)
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an interrupted get left %s in place", target)
	}
	cmd, out, errb = c.command(bin, viaProxy, "get", "--json", remote, target)
	if err := cmd.Run(); err != nil {
		t.Fatalf("second get: %v\n%s", err, errb)
	}
	rec = oneRecord(t, out.String())
	t.Logf("get of %d MiB: killed at %d bytes, resumed from %d; %v in all; proxy carried %d bytes server→client",
		size>>20, killedAt, rec.ResumedFrom, time.Since(start).Round(time.Millisecond), proxy.Down()-down0)
	if rec.Op != "get" || rec.ResumedFrom <= 0 || rec.ResumedFrom < killedAt || rec.Sent != size-rec.ResumedFrom || rec.SHA256 != sum || rec.Size != size {
		t.Errorf("second get: %+v (killed at %d)", rec, killedAt)
	}
	if got := fileSHA(t, target); got != sum {
		t.Errorf("downloaded file SHA-256 %s, want %s", got, sum)
	}
	if _, err := os.Stat(part); !errors.Is(err, os.ErrNotExist) {
		t.Error("partial file left after a complete get")
	}
}

func fileSHA(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestGetResumeVerifies resumes downloads from partial files made by hand: a
// good prefix is kept and completed; a damaged one fails the SHA-256 check,
// and the partial file is deleted so that the next run starts afresh.
func TestGetResumeVerifies(t *testing.T) {
	c := newClientEnv(t)
	dir := t.TempDir()
	content := writeRandom(t, filepath.Join(dir, "src.bin"), 1<<20)
	ferrytest.Expect(t, c.s.Do("PUT", "/api/v1/files/finance/f.bin", c.alice, bytes.NewReader(content)), 201)
	etag := `"` + hexSHA(content) + `"` + "\n"
	target := filepath.Join(dir, "f.bin")
	part := client.PartialPath(target)
	prefix := func(b []byte) {
		t.Helper()
		if err := os.WriteFile(part, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(part+".etag", []byte(etag), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	half := len(content) / 2
	prefix(content[:half])
	rec := oneRecord(t, c.ok(t, "get", "--json", "/finance/f.bin", target))
	if rec.ResumedFrom != int64(half) || rec.Sent != int64(len(content)-half) || rec.SHA256 != hexSHA(content) {
		t.Errorf("resumed get: %+v", rec)
	}
	if b, _ := os.ReadFile(target); !bytes.Equal(b, content) {
		t.Error("resumed get: wrong content")
	}
	os.Remove(target)

	bad := bytes.Clone(content[:half])
	bad[10] ^= 1
	prefix(bad)
	_, _, err := c.run("", "get", "/finance/f.bin", target)
	if err == nil || !strings.HasPrefix(err.Error(), "get /finance/f.bin: integrity: ") {
		t.Fatalf("get over a damaged partial file: %v", err)
	}
	for _, p := range []string{target, part, part + ".etag"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after a failed check", p)
		}
	}
	rec = oneRecord(t, c.ok(t, "get", "--json", "/finance/f.bin", target))
	if rec.ResumedFrom != 0 || rec.SHA256 != hexSHA(content) {
		t.Errorf("get after the failed check: %+v", rec)
	}

	// A partial file of another version: If-Range makes the server send the
	// whole file, which replaces it.
	prefix(bytes.Repeat([]byte("x"), half))
	if err := os.WriteFile(part+".etag", []byte(`"`+strings.Repeat("0", 64)+`"`), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(target)
	rec = oneRecord(t, c.ok(t, "get", "--json", "/finance/f.bin", target))
	if rec.ResumedFrom != 0 || rec.Sent != int64(len(content)) || rec.SHA256 != hexSHA(content) {
		t.Errorf("get over another version's partial file: %+v", rec)
	}
}

// TestClientExitCodes runs the real binary: 2 for usage, 1 with one line on
// stderr for a failure.
func TestClientExitCodes(t *testing.T) {
	c := newClientEnv(t)
	bin := ferrytest.Binary(t)
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"put", "only-one"}, 2, "ferry: ferry put: need LOCAL... REMOTE\n"},
		{[]string{"ls", "/nowhere"}, 1, "ferry: ls /nowhere: not_exist: no such folder\n"},
		{[]string{"ls", "--token", "ferry_0123456789abcdef_bad", "/"}, 1, "ferry: ls /: unauthenticated: "},
	} {
		cmd, _, errb := c.command(bin, c.s.PublicURL, tc.args...)
		err := cmd.Run()
		var ee *exec.ExitError
		code := 0
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
		last := lines[len(lines)-1] + "\n"
		if code != tc.code || !strings.HasPrefix(last, tc.stderr) || (tc.code == 1 && len(lines) != 1) {
			t.Errorf("ferry %v: exit %d, stderr %q; want %d, %q", tc.args, code, errb, tc.code, tc.stderr)
		}
	}
}

// TestPutInterruptedByCtrlC sends SIGINT to a running ferry put: it stops
// with exit status 1 and says how to resume; the re-run resumes.
func TestPutInterruptedByCtrlC(t *testing.T) {
	c := newClientEnv(t)
	bin := ferrytest.Binary(t)
	dir := t.TempDir()
	local := filepath.Join(dir, "f.bin")
	size := int64(32 << 20)
	sum := bigFile(t, local, size)
	offset := func() int64 {
		res := c.s.Do("GET", "/api/v1/uploads/?path=/finance/f.bin", c.alice, nil)
		var l struct{ Uploads []struct{ Offset int64 } }
		json.NewDecoder(res.Body).Decode(&l)
		res.Body.Close()
		if len(l.Uploads) == 0 {
			return 0
		}
		return l.Uploads[0].Offset
	}
	cmd, _, errb := c.command(bin, c.s.PublicURL, "put", "--chunk-size", "256KiB", local, "/finance/f.bin")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for offset() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || errb.String() != "ferry: put /finance/f.bin: interrupted; run the same command again to resume\n" {
		t.Fatalf("interrupted put: %v, stderr %q", err, errb)
	}
	cmd, out, errb := c.command(bin, c.s.PublicURL, "put", "--json", local, "/finance/f.bin")
	if err := cmd.Run(); err != nil {
		t.Fatalf("second put: %v\n%s", err, errb)
	}
	if rec := oneRecord(t, out.String()); rec.ResumedFrom <= 0 || rec.SHA256 != sum {
		t.Errorf("second put: %+v", rec)
	}
}
