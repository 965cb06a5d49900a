package client

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

func TestCleanAndEscape(t *testing.T) {
	for _, c := range []struct{ in, clean, esc string }{
		{"", "/", "/"},
		{"/", "/", "/"},
		{"finance/2026/", "/finance/2026", "/finance/2026"},
		{"/a//b/../c", "/a/c", "/a/c"},
		{"/q4 report?#.pdf", "/q4 report?#.pdf", "/q4%20report%3F%23.pdf"},
		{"/ü/100%", "/ü/100%", "/%C3%BC/100%25"},
	} {
		if got := Clean(c.in); got != c.clean {
			t.Errorf("Clean(%q) = %q, want %q", c.in, got, c.clean)
		}
		if got := escape(c.in); got != c.esc {
			t.Errorf("escape(%q) = %q, want %q", c.in, got, c.esc)
		}
	}
}

func TestNewRejectsBadServers(t *testing.T) {
	for _, s := range []string{"", "127.0.0.1:8443", "ftp://x", "https://x/api", "https://x?a=b"} {
		if _, err := New(Config{Server: s}); err == nil {
			t.Errorf("New(%q) accepted", s)
		}
	}
	c, err := New(Config{Server: "https://ferry.example:8443/"})
	if err != nil || c.Server() != "https://ferry.example:8443" {
		t.Fatalf("New: %v, %v", c, err)
	}
	if _, err := New(Config{Server: "https://x", CAFile: filepath.Join(t.TempDir(), "none.pem")}); err == nil {
		t.Error("missing CA file accepted")
	}
}

func TestResolveLocation(t *testing.T) {
	c, _ := New(Config{Server: "https://h:1"})
	for in, want := range map[string]string{
		"/api/v1/uploads/abc":          "https://h:1/api/v1/uploads/abc",
		"https://h:1/api/v1/uploads/x": "https://h:1/api/v1/uploads/x",
		"api/v1/uploads/rel":           "https://h:1/api/v1/uploads/rel",
	} {
		if got, err := c.resolve(in); err != nil || got != want {
			t.Errorf("resolve(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestContentRange(t *testing.T) {
	for in, want := range map[string][3]int64{
		"bytes 100-199/1000": {100, 1000, 1},
		"bytes 0-0/1":        {0, 1, 1},
		"bytes */1000":       {0, 0, 0},
		"items 1-2/3":        {0, 0, 0},
		"bytes x-1/2":        {0, 0, 0},
	} {
		s, tot, ok := contentRange(in)
		okv := int64(0)
		if ok {
			okv = 1
		}
		if okv != want[2] || (ok && (s != want[0] || tot != want[1])) {
			t.Errorf("contentRange(%q) = %d, %d, %v; want %v", in, s, tot, ok, want)
		}
	}
}

func TestReprDigest(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	b64 := base64.StdEncoding.EncodeToString(sum[:])
	want := hex.EncodeToString(sum[:])
	for in, w := range map[string]string{
		"sha-256=:" + b64 + ":":                 want,
		"sha-512=:AAAA:, sha-256=:" + b64 + ":": want,
		"SHA-256=:" + b64 + ":":                 want,
		"sha-256=:AAAA:":                        "",
		"":                                      "",
	} {
		if got := reprDigest(in); got != w {
			t.Errorf("reprDigest(%q) = %q, want %q", in, got, w)
		}
	}
}

func TestReadErrorIsOneReadableLine(t *testing.T) {
	res := func(status int, ct, body string) *http.Response {
		h := http.Header{}
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body))}
	}
	for _, c := range []struct {
		res  *http.Response
		want string
	}{
		{res(403, "application/json", `{"error":{"kind":"permission","message":"you need \"write\" permission on /x"}}`),
			`permission: you need "write" permission on /x`},
		{res(502, "text/html", "<html><body><h1>502 Bad Gateway</h1></body></html>"), "HTTP 502 Bad Gateway"},
		{res(404, "text/plain; charset=utf-8", "upload not found\nmore\n"), "HTTP 404: upload not found"},
		{res(500, "", ""), "HTTP 500 Internal Server Error"},
	} {
		err := readError(c.res)
		if err.Error() != c.want {
			t.Errorf("readError = %q, want %q", err, c.want)
		}
	}
	if !IsKind(readError(res(409, "application/json", `{"error":{"kind":"exist","message":"m"}}`)), "exist") {
		t.Error("IsKind exist")
	}
	if !transient(readError(res(503, "", ""))) || transient(readError(res(500, "", ""))) {
		t.Error("transient: 503 should be retried, 500 not")
	}
}

func TestPartialPath(t *testing.T) {
	if got, want := PartialPath(filepath.Join("a", "b", "report.pdf")), filepath.Join("a", "b", ".report.pdf.ferry-part"); got != want {
		t.Errorf("PartialPath = %q, want %q", got, want)
	}
}
