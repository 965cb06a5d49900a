package httpd_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"ferry.dev/ferry/internal/ferrytest"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func chunkSum(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256 " + base64.StdEncoding.EncodeToString(s[:])
}

// tusCreate creates an upload and returns its URL path.
func tusCreate(t *testing.T, s *ferrytest.Server, token, path string, size int, sha []byte) string {
	t.Helper()
	meta := "path " + b64(path)
	if sha != nil {
		meta += ",sha256 " + b64(hex.EncodeToString(sha))
	}
	res := s.Do("POST", "/api/v1/uploads/", token, nil, "Tus-Resumable", "1.0.0", "Upload-Length", strconv.Itoa(size), "Upload-Metadata", meta)
	ferrytest.Expect(t, res, http.StatusCreated)
	if res.Header.Get("Upload-Expires") == "" {
		t.Fatal("no Upload-Expires on creation")
	}
	loc := res.Header.Get("Location")
	i := strings.Index(loc, "/api/v1/uploads/")
	if i < 0 {
		t.Fatalf("Location %q", loc)
	}
	return loc[i:]
}

func tusPatch(s *ferrytest.Server, token, url string, off int, b []byte, hdr ...string) *http.Response {
	return s.Do("PATCH", url, token, bytes.NewReader(b), append([]string{"Tus-Resumable", "1.0.0", "Content-Type", "application/offset+octet-stream",
		"Upload-Offset", strconv.Itoa(off)}, hdr...)...)
}

// TestTusUpload drives the protocol by hand: discovery, creation, chunks with
// checksums, the error statuses the issue names, completion.
func TestTusUpload(t *testing.T) {
	s, _, alice, bob := setup(t)
	content := make([]byte, 300000)
	rand.Read(content)
	sum := sha256.Sum256(content)

	// Discovery, without a token.
	res := s.Do("OPTIONS", "/api/v1/uploads/", "", nil)
	ferrytest.Expect(t, res, http.StatusOK)
	if ext := res.Header.Get("Tus-Extension"); !strings.Contains(ext, "creation") || !strings.Contains(ext, "termination") ||
		!strings.Contains(ext, "checksum") || !strings.Contains(ext, "expiration") || res.Header.Get("Tus-Checksum-Algorithm") != "sha256" {
		t.Fatalf("OPTIONS: Tus-Extension %q, algorithms %q", ext, res.Header.Get("Tus-Checksum-Algorithm"))
	}

	// No token, no upload; no write permission, no upload.
	res = s.Do("POST", "/api/v1/uploads/", "", nil, "Tus-Resumable", "1.0.0", "Upload-Length", "10", "Upload-Metadata", "path "+b64("/finance/x"))
	expectErr(t, res, http.StatusUnauthorized, "unauthenticated")
	res = s.Do("POST", "/api/v1/uploads/", alice, nil, "Tus-Resumable", "1.0.0", "Upload-Length", "10", "Upload-Metadata", "path "+b64("/hr/x"))
	expectErr(t, res, http.StatusNotFound, "not_exist")
	res = s.Do("POST", "/api/v1/uploads/", alice, nil, "Tus-Resumable", "1.0.0", "Upload-Length", "10")
	expectErr(t, res, http.StatusBadRequest, "invalid")
	res = s.Do("POST", "/api/v1/uploads/", alice, nil, "Upload-Length", "10", "Upload-Metadata", "path "+b64("/finance/x"))
	expectErr(t, res, http.StatusPreconditionFailed, "invalid")

	url := tusCreate(t, s, alice, "/finance/2026/report.bin", len(content), sum[:])

	// Another organisation's user cannot see it.
	res = s.Do("HEAD", url, bob, nil, "Tus-Resumable", "1.0.0")
	ferrytest.Expect(t, res, http.StatusNotFound)
	res = tusPatch(s, bob, url, 0, content[:10])
	expectErr(t, res, http.StatusNotFound, "not_exist")

	// First chunk, with its checksum.
	res = tusPatch(s, alice, url, 0, content[:100000], "Upload-Checksum", chunkSum(content[:100000]))
	ferrytest.Expect(t, res, http.StatusNoContent)
	if res.Header.Get("Upload-Offset") != "100000" || res.Header.Get("Upload-Expires") == "" {
		t.Fatalf("after chunk 1: offset %q expires %q", res.Header.Get("Upload-Offset"), res.Header.Get("Upload-Expires"))
	}
	// Wrong offset: 409 with the current one.
	res = tusPatch(s, alice, url, 5, content[5:10])
	expectErr(t, res, http.StatusConflict, "conflict")
	if res.Header.Get("Upload-Offset") != "100000" {
		t.Fatalf("409 without the current offset: %q", res.Header.Get("Upload-Offset"))
	}
	// Bad checksum: 460, chunk discarded.
	res = tusPatch(s, alice, url, 100000, content[100000:200000], "Upload-Checksum", chunkSum(content[:5]))
	expectErr(t, res, 460, "checksum")
	res = tusPatch(s, alice, url, 100000, content[100000:200000], "Upload-Checksum", "md5 AAAA")
	expectErr(t, res, http.StatusBadRequest, "invalid")
	res = s.Do("HEAD", url, alice, nil, "Tus-Resumable", "1.0.0")
	ferrytest.Expect(t, res, http.StatusOK)
	if res.Header.Get("Upload-Offset") != "100000" || res.Header.Get("Upload-Length") != strconv.Itoa(len(content)) {
		t.Fatalf("HEAD: offset %q length %q", res.Header.Get("Upload-Offset"), res.Header.Get("Upload-Length"))
	}
	// Past the declared length: 413.
	over := append(append([]byte{}, content[100000:]...), 0)
	res = tusPatch(s, alice, url, 100000, over)
	expectErr(t, res, http.StatusRequestEntityTooLarge, "too_large")

	// Not there yet.
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/2026/report.bin", alice, nil), http.StatusNotFound)

	// The listing finds it, for a client that did not start it.
	res = s.Do("GET", "/api/v1/uploads/?path=/finance/2026/report.bin", alice, nil)
	var list struct {
		Uploads []struct {
			URL    string
			Offset int64
			SHA256 string
		}
	}
	if err := json.Unmarshal([]byte(ferrytest.Expect(t, res, http.StatusOK)), &list); err != nil || len(list.Uploads) != 1 ||
		list.Uploads[0].URL != url || list.Uploads[0].Offset != 100000 || list.Uploads[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("listing: %+v %v", list, err)
	}

	// The rest; the file appears, with the digest.
	res = tusPatch(s, alice, url, 100000, content[100000:])
	ferrytest.Expect(t, res, http.StatusNoContent)
	if res.Header.Get("X-Ferry-SHA256") != hex.EncodeToString(sum[:]) {
		t.Fatalf("completion digest %q", res.Header.Get("X-Ferry-SHA256"))
	}
	got := ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/2026/report.bin", alice, nil), http.StatusOK)
	if got != string(content) {
		t.Fatal("downloaded content differs")
	}
	ferrytest.Expect(t, s.Do("HEAD", url, alice, nil, "Tus-Resumable", "1.0.0"), http.StatusNotFound)

	// Termination.
	url2 := tusCreate(t, s, alice, "/finance/gone.bin", 10, nil)
	ferrytest.Expect(t, tusPatch(s, alice, url2, 0, []byte("01234")), http.StatusNoContent)
	ferrytest.Expect(t, s.Do("DELETE", url2, bob, nil, "Tus-Resumable", "1.0.0"), http.StatusNotFound)
	ferrytest.Expect(t, s.Do("DELETE", url2, alice, nil, "Tus-Resumable", "1.0.0"), http.StatusNoContent)
	ferrytest.Expect(t, s.Do("HEAD", url2, alice, nil, "Tus-Resumable", "1.0.0"), http.StatusNotFound)

	// Creation with upload: the first chunk (with its checksum) in the POST.
	small := []byte("created and uploaded in one request")
	res = s.Do("POST", "/api/v1/uploads/", alice, bytes.NewReader(small), "Tus-Resumable", "1.0.0", "Upload-Length", strconv.Itoa(len(small)),
		"Upload-Metadata", "path "+b64("/finance/one.txt"), "Content-Type", "application/offset+octet-stream", "Upload-Checksum", chunkSum(small))
	ferrytest.Expect(t, res, http.StatusCreated)
	if res.Header.Get("Upload-Offset") != strconv.Itoa(len(small)) {
		t.Fatalf("creation-with-upload offset %q", res.Header.Get("Upload-Offset"))
	}
	if got := ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/one.txt", alice, nil), http.StatusOK); got != string(small) {
		t.Fatalf("creation-with-upload content %q", got)
	}

	// A method override header changes nothing.
	url3 := tusCreate(t, s, alice, "/finance/keep.bin", 10, nil)
	res = s.Do("POST", url3, alice, nil, "Tus-Resumable", "1.0.0", "X-HTTP-Method-Override", "DELETE")
	if res.StatusCode == http.StatusNoContent {
		t.Fatal("X-HTTP-Method-Override deleted an upload")
	}
	res.Body.Close()
	ferrytest.Expect(t, s.Do("HEAD", url3, alice, nil, "Tus-Resumable", "1.0.0"), http.StatusOK)
}

// TestTusCurlResume uploads with curl — an independent HTTP client speaking
// the protocol from its headers — cuts the first PATCH off part-way, then
// resumes from the offset the server reports, across a server restart.
func TestTusCurlResume(t *testing.T) {
	s, _, alice, _ := setup(t)
	dir := t.TempDir()
	content := make([]byte, 8<<20)
	rand.Read(content)
	src := filepath.Join(dir, "src.bin")
	os.WriteFile(src, content, 0o600)
	sum := sha256.Sum256(content)
	curl := func(args ...string) (string, error) {
		full := append([]string{"-sS", "--cacert", s.CA(), "-H", "Authorization: Bearer " + alice, "-H", "Tus-Resumable: 1.0.0"}, args...)
		out, err := exec.Command("curl", full...).CombinedOutput()
		return string(out), err
	}
	out, err := curl("-i", "-X", "POST", "-H", "Upload-Length: "+strconv.Itoa(len(content)),
		"-H", "Upload-Metadata: path "+b64("/finance/curl.bin")+",sha256 "+b64(hex.EncodeToString(sum[:])), s.PublicURL+"/api/v1/uploads/")
	if err != nil || !strings.Contains(out, " 201") {
		t.Fatalf("curl create: %v\n%s", err, out)
	}
	var loc string
	for _, l := range strings.Split(out, "\r\n") {
		if k, v, ok := strings.Cut(l, ": "); ok && strings.EqualFold(k, "location") {
			loc = v
		}
	}
	if loc == "" {
		t.Fatalf("no Location:\n%s", out)
	}
	if !strings.HasPrefix(loc, "http") {
		loc = s.PublicURL + loc
	}
	// The first PATCH is cut off by curl's rate limit and timeout: part of
	// the body arrives, then the connection drops.
	out, err = curl("-X", "PATCH", "-H", "Content-Type: application/offset+octet-stream", "-H", "Upload-Offset: 0",
		"--limit-rate", "2M", "--max-time", "1", "--data-binary", "@"+src, loc)
	if err == nil {
		t.Fatalf("the throttled PATCH finished within a second: %s", out)
	}
	offset := func() int {
		t.Helper()
		out, err := curl("-I", loc)
		if err != nil {
			t.Fatalf("HEAD: %v %s", err, out)
		}
		for _, l := range strings.Split(out, "\r\n") {
			if k, v, ok := strings.Cut(l, ": "); ok && strings.EqualFold(k, "upload-offset") {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
		t.Fatalf("no Upload-Offset:\n%s", out)
		return 0
	}
	var off int
	for i := 0; i < 50; i++ { // the server finishes storing the cut chunk
		if off = offset(); off > 0 {
			break
		}
		sleep()
	}
	if off == 0 || off >= len(content) {
		t.Fatalf("after the cut-off PATCH the offset is %d", off)
	}
	t.Logf("cut off at %d of %d bytes", off, len(content))

	// The server restarts; the upload survives, at the same offset.
	s.Restart()
	u := loc[strings.Index(loc, "/api/v1/uploads/"):]
	loc = s.PublicURL + u
	if got := offset(); got != off {
		t.Fatalf("offset after restart %d, want %d", got, off)
	}
	rest := filepath.Join(dir, "rest.bin")
	os.WriteFile(rest, content[off:], 0o600)
	out, err = curl("-i", "-X", "PATCH", "-H", "Content-Type: application/offset+octet-stream", "-H", "Upload-Offset: "+strconv.Itoa(off),
		"--data-binary", "@"+rest, loc)
	if err != nil || !strings.Contains(out, " 204") || !strings.Contains(strings.ToLower(out), "x-ferry-sha256: "+hex.EncodeToString(sum[:])) {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	out, err = curl("-o", filepath.Join(dir, "back.bin"), "-w", "%{http_code}", s.PublicURL+"/api/v1/files/finance/curl.bin")
	back, _ := os.ReadFile(filepath.Join(dir, "back.bin"))
	if err != nil || out != "200" || !bytes.Equal(back, content) {
		t.Fatalf("download: %v %s, %d bytes", err, out, len(back))
	}
	_ = fmt.Sprint
}

// TestTusTrickle: a client that sends a byte now and then is cut off by the
// idle timeout; the byte that arrived is kept and the upload continues.
func TestTusTrickle(t *testing.T) {
	s, _, alice, _ := setup(t, ferrytest.WithArgs("--upload-idle-timeout", "1s"))
	url := tusCreate(t, s, alice, "/finance/slow.bin", 100, nil)
	host := strings.TrimPrefix(s.PublicURL, "https://")
	conn, err := tls.Dial("tcp", host, s.Client.Transport.(*http.Transport).TLSClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nTus-Resumable: 1.0.0\r\n"+
		"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: 100\r\n\r\nA", url, host, alice)
	start := time.Now()
	// The server gives up on the body after about a second of silence and
	// answers or closes; either way the connection ends.
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	io.Copy(io.Discard, conn)
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("a stalled body held the connection for %v", d)
	}
	// The byte that came is stored: the upload continues from 1.
	var res *http.Response
	for i := 0; i < 50; i++ {
		res = s.Do("HEAD", url, alice, nil, "Tus-Resumable", "1.0.0")
		res.Body.Close()
		if res.Header.Get("Upload-Offset") == "1" {
			break
		}
		sleep()
	}
	if res.Header.Get("Upload-Offset") != "1" {
		t.Fatalf("offset after the trickle: %q", res.Header.Get("Upload-Offset"))
	}
	rest := bytes.Repeat([]byte("B"), 99)
	ferrytest.Expect(t, tusPatch(s, alice, url, 1, rest), http.StatusNoContent)
	got := ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/slow.bin", alice, nil), http.StatusOK)
	if got != "A"+string(rest) {
		t.Fatalf("content %q", got)
	}
}
