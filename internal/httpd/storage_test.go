package httpd_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry.dev/ferry/internal/ferrytest"
)

// grepDir reports the files under dir that contain needle.
func grepDir(t *testing.T, dir string, needle []byte) []string {
	t.Helper()
	var hits []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, needle) {
			hits = append(hits, p)
		}
		return nil
	})
	return hits
}

// TestNoPlaintextOnDisk uploads a file with a recognisable marker and greps
// the whole data directory for it while the upload is half-way and after it.
func TestNoPlaintextOnDisk(t *testing.T) {
	s, _, alice, _ := setup(t)
	marker := []byte("FERRY-PLAINTEXT-MARKER-7f3a9c")
	chunk := bytes.Repeat(append(marker, '\n'), 10000) // ~300 KB
	pr, pw := io.Pipe()
	done := make(chan string, 1)
	go func() {
		res := s.Do("PUT", "/api/v1/files/finance/2026/secret.txt", alice, pr)
		done <- fmt.Sprint(res.StatusCode, ferrytest.Body(t, res))
	}()
	pw.Write(chunk)
	pw.Write(chunk)
	time.Sleep(300 * time.Millisecond) // let the server write what it has
	if hits := grepDir(t, s.Data, marker); len(hits) > 0 {
		t.Fatalf("plaintext on disk during upload: %v", hits)
	}
	pw.Write(chunk)
	pw.Close()
	if got := <-done; !strings.HasPrefix(got, "201") {
		t.Fatalf("upload: %s", got)
	}
	if hits := grepDir(t, s.Data, marker); len(hits) > 0 {
		t.Fatalf("plaintext on disk after upload: %v", hits)
	}
	// The file name (metadata) is in the database, the content is not.
	if b := ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/2026/secret.txt", alice, nil), 200); len(b) != 3*len(chunk) {
		t.Fatalf("read back %d bytes", len(b))
	}
	s.Stop()
	if hits := grepDir(t, s.Data, marker); len(hits) > 0 {
		t.Fatalf("plaintext on disk after shutdown: %v", hits)
	}
}

// TestCutOffUploadKeepsOldVersion sends a PUT whose body stops half-way and
// drops the connection: no new version appears, the old one is intact, and
// the failure is audited.
func TestCutOffUploadKeepsOldVersion(t *testing.T) {
	s, _, alice, _ := setup(t)
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/finance/2026/data.csv", alice, strings.NewReader("old version")), 201)

	conn, host := rawConn(t, s)
	fmt.Fprintf(conn, "PUT /api/v1/files/finance/2026/data.csv HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: 1000000\r\n\r\n", host, alice)
	conn.Write(bytes.Repeat([]byte("n"), 200000))
	time.Sleep(200 * time.Millisecond)
	conn.Close()

	var got string
	for i := 0; i < 50; i++ { // the server notices the drop asynchronously
		out, _, _ := s.Run("", "audit", "log", "--action", "file.write", "--json")
		if strings.Count(out, "\n") >= 2 {
			got = out
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(got, `"outcome":"error"`) {
		t.Fatalf("cut-off upload not audited as an error:\n%s", got)
	}
	if b := ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/2026/data.csv", alice, nil), 200); b != "old version" {
		t.Fatalf("old version damaged: %q", b)
	}
	// No orphaned blob: exactly one blob remains.
	var blobs []string
	filepath.WalkDir(filepath.Join(s.Data, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			blobs = append(blobs, p)
		}
		return nil
	})
	if len(blobs) != 1 {
		t.Fatalf("blobs after a cut-off upload: %v", blobs)
	}
}

// TestCorruptedBlobFailsIntegrity flips one byte of a stored blob: the read
// fails with an integrity error and never returns wrong bytes.
func TestCorruptedBlobFailsIntegrity(t *testing.T) {
	s, _, alice, _ := setup(t)
	content := make([]byte, 200000)
	rand.Read(content)
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/finance/2026/c.bin", alice, bytes.NewReader(content)), 201)
	var blob string
	filepath.WalkDir(filepath.Join(s.Data, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			blob = p
		}
		return nil
	})
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	orig := bytes.Clone(b)
	b[100] ^= 1 // first segment
	os.WriteFile(blob, b, 0o600)
	expectErr(t, s.Do("GET", "/api/v1/files/finance/2026/c.bin", alice, nil), 500, "integrity")

	// Corruption in a later segment: the response starts, then the
	// connection is aborted; the client never gets a complete, wrong file.
	b = bytes.Clone(orig)
	b[len(b)-100] ^= 1
	os.WriteFile(blob, b, 0o600)
	expectErr(t, s.Do("GET", "/api/v1/files/finance/2026/c.bin", alice, nil), 500, "integrity") // last segment is checked at open
	b = bytes.Clone(orig)
	b[70000] ^= 1 // second of four segments
	os.WriteFile(blob, b, 0o600)
	res := s.Do("GET", "/api/v1/files/finance/2026/c.bin", alice, nil)
	got, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err == nil && bytes.Equal(got, content) {
		t.Fatal("corrupted blob served as the original")
	}
	if err == nil && res.StatusCode == 200 && len(got) == len(content) {
		t.Fatal("corrupted blob served as a complete file")
	}
	// Truncated blob.
	os.WriteFile(blob, orig[:len(orig)-1000], 0o600)
	expectErr(t, s.Do("GET", "/api/v1/files/finance/2026/c.bin", alice, nil), 500, "integrity")
}

// TestDiskFull puts the blob store on a 1 MiB tmpfs: a larger upload gets
// 507, leaves nothing half-written, and the server keeps working.
func TestDiskFull(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	blobs := filepath.Join(data, "blobs")
	if err := os.MkdirAll(blobs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", blobs, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mount tmpfs (needs root): %v", err)
		}
		t.Skipf("mount tmpfs: %v (needs root; CI runs it)", err)
	}
	t.Cleanup(func() { syscall.Unmount(blobs, syscall.MNT_DETACH) })
	s, _, alice, _ := setup(t, ferrytest.WithData(data))
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/finance/2026/small.txt", alice, strings.NewReader("fits")), 201)
	big := make([]byte, 3<<20)
	expectErr(t, s.Do("PUT", "/api/v1/files/finance/2026/big.bin", alice, bytes.NewReader(big)), 507, "no_space")
	expectErr(t, s.Do("PUT", "/api/v1/files/finance/2026/small.txt", alice, bytes.NewReader(big)), 507, "no_space")
	if b := ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/2026/small.txt", alice, nil), 200); b != "fits" {
		t.Fatalf("old version after a failed replace: %q", b)
	}
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/2026/big.bin", alice, nil), 404)
	var st syscall.Statfs_t
	syscall.Statfs(blobs, &st)
	if free := st.Bfree * uint64(st.Bsize); free < 900<<10 {
		t.Fatalf("only %d bytes free after failed uploads: something half-written remains", free)
	}
	// After the failure the server still stores what fits.
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/finance/2026/later.txt", alice, strings.NewReader("ok")), 201)
}

// TestCurl drives the REST API with the real curl client.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is required (make test installs it): %v", err)
	}
	s, _, alice, _ := setup(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.bin")
	content := make([]byte, 3<<20+123)
	rand.Read(content)
	os.WriteFile(src, content, 0o600)
	run := func(args ...string) string {
		t.Helper()
		full := append([]string{"-sS", "--fail-with-body", "--cacert", s.CA(), "-H", "Authorization: Bearer " + alice}, args...)
		out, err := exec.Command(curl, full...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := run("-T", src, s.PublicURL+"/api/v1/files/finance/2026/upload.bin")
	sum := sha256.Sum256(content)
	if !strings.Contains(out, hex.EncodeToString(sum[:])) {
		t.Fatalf("upload response %s", out)
	}
	// Chunked upload from stdin.
	cmd := exec.Command(curl, "-sS", "--fail-with-body", "--cacert", s.CA(), "-H", "Authorization: Bearer "+alice, "-H", "Transfer-Encoding: chunked", "-T", "-", s.PublicURL+"/api/v1/files/finance/2026/chunked.bin")
	cmd.Stdin = bytes.NewReader(content)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), hex.EncodeToString(sum[:])) {
		t.Fatalf("chunked upload: %v %s", err, out)
	}
	dst := filepath.Join(dir, "dst.bin")
	run("-o", dst, s.PublicURL+"/api/v1/files/finance/2026/chunked.bin")
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, content) {
		t.Fatal("download differs")
	}
	// Resume a partial download with curl -C -.
	os.WriteFile(dst, content[:1<<20], 0o600)
	run("-C", "-", "-o", dst, s.PublicURL+"/api/v1/files/finance/2026/upload.bin")
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, content) {
		t.Fatal("resumed download differs")
	}
	hdrs := run("-I", s.PublicURL+"/api/v1/files/finance/2026/upload.bin")
	if !strings.Contains(strings.ToLower(hdrs), "content-disposition: attachment") {
		t.Fatalf("HEAD headers: %s", hdrs)
	}
}

// TestPostgres runs the main flow on PostgreSQL.
func TestPostgres(t *testing.T) {
	s, _, alice, bob := setup(t, ferrytest.WithPostgres())
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/finance/2026/pg.txt", alice, strings.NewReader("on postgres")), 201)
	if b := ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/2026/pg.txt", alice, nil), 200); b != "on postgres" {
		t.Fatalf("got %q", b)
	}
	expectErr(t, s.Do("GET", "/api/v1/files/finance/2026/pg.txt", bob, nil), 404, "not_exist")
	ferrytest.Expect(t, s.Do("POST", "/api/v1/files/finance/2026?move=/finance/2027", alice, nil), 200)
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/2027/pg.txt", alice, nil), 200)
	s.Stop()
	out, _, err := s.Run("", "audit", "verify")
	if err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("verify on postgres: %v %s", err, out)
	}
}

// TestStalledUploadIsCut: a client that stops sending in the middle of a body
// is disconnected after the idle timeout, and no file appears.
func TestStalledUploadIsCut(t *testing.T) {
	s, _, alice, _ := setup(t, ferrytest.WithArgs("--upload-idle-timeout", "1s"))
	conn, host := rawConn(t, s)
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /api/v1/files/finance/2026/slow.bin HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: 1000\r\n\r\nfirst bytes", host, alice)
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	io.Copy(io.Discard, conn) // returns when the server closes the connection
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("stalled upload held for %v", d)
	}
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/2026/slow.bin", alice, nil), 404)
}

// rawConn opens a TLS connection to the public listener for hand-written
// HTTP/1.1 requests.
func rawConn(t *testing.T, s *ferrytest.Server) (*tls.Conn, string) {
	t.Helper()
	pem, _ := os.ReadFile(s.CA())
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	u, _ := url.Parse(s.PublicURL)
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	return conn, u.Host
}
