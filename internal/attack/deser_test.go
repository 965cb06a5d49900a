package attack_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// hugeBody streams {"a":"AAAA…"} of n bytes without holding it.
type hugeBody struct{ n, off int64 }

func (h *hugeBody) Read(p []byte) (int, error) {
	if h.off >= h.n {
		return 0, io.EOF
	}
	i := 0
	for ; i < len(p) && h.off < h.n; i++ {
		switch {
		case h.off < 6:
			p[i] = `{"a":"`[h.off]
		case h.off == h.n-2:
			p[i] = '"'
		case h.off == h.n-1:
			p[i] = '}'
		default:
			p[i] = 'A'
		}
		h.off++
	}
	return i, nil
}

// socketClient speaks HTTP over DIR/admin.sock (the operator's admin plane).
func socketClient(dir string) *http.Client {
	sock := filepath.Join(dir, "admin.sock")
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
}

// streamRoutes take file content, not JSON: a large body there is an upload.
func streamRoute(p string) bool {
	for _, s := range []string{"PUT /api/v1/files/", "POST /api/v1/uploads/", "PATCH /api/v1/uploads/", "/web/uploads/"} {
		if strings.Contains(p, s) {
			return true
		}
	}
	return false
}

func signIn(p string) bool { return strings.Contains(p, "/auth/") || strings.Contains(p, "/login") }

// TestHostileJSON (GoAnywhere's and MOVEit's deserialisation steps; the import
// fence keeps gob, XML and RPC decoders out of the binary): every route that
// takes a body, on both listeners, sent JSON with unknown fields (a .NET
// gadget's $type), 10,000-deep nesting, numbers of 100,000 digits and
// 1e999999999, and a 100 MB body, answers 4xx within seconds, never 5xx;
// routes that decode JSON answer 400 or 413 (routes that ignore the body
// may answer anything but 5xx); and the real server's peak
// memory (VmHWM) grows by less than 64 MiB over all of it.
func TestHostileJSON(t *testing.T) {
	t.Parallel()
	s := startBinary(t)
	w := populate(t, s)
	adm := socketClient(s.Dir())
	hwm0 := vmHWM(t, s.Pid())
	last := hwm0

	bodies := map[string]string{
		"unknown fields":  `{"ferry_unknown":1,"$type":"System.Windows.Data.ObjectDataProvider, PresentationFramework","MethodName":"Start"}`,
		"deep arrays":     strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
		"deep objects":    strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
		"long number":     `{"n":1` + strings.Repeat("0", 100000) + `}`,
		"huge exponent":   `{"n":1e999999999}`,
		"duplicate keys":  `{"email":"a@acme.test","email":"admin@acme.test","role":"user","role":"admin"}`,
		"wrong types":     `{"email":["x"],"role":{"$ne":null},"org":true}`,
		"unicode escapes": `{"email":"\ud800\udc00\u0000@acme.test"}`,
	}
	n := 0
	routes := routeInfos(t)
	// Sign-in routes last: hostile bodies there count as failed sign-ins,
	// and the limiter then locks this address out (429) for the rest.
	sort.SliceStable(routes, func(i, j int) bool { return !signIn(routes[i].pattern) && signIn(routes[j].pattern) })
	var hwmBeforeSignIn int64
	for _, r := range routes {
		if signIn(r.pattern) && hwmBeforeSignIn == 0 {
			hwmBeforeSignIn = vmHWM(t, s.Pid())
		}
		method, path := splitPattern(r.pattern)
		if method == "GET" || method == "HEAD" || method == "OPTIONS" || streamRoute(r.pattern) {
			continue
		}
		// JSON endpoints: the APIs, whatever decodes JSON, and the
		// WebAuthn ceremonies (JSON read by the WebAuthn library).
		if !r.json && !strings.HasPrefix(path, "/api/") && !strings.HasPrefix(path, "/admin/v1/") && !strings.HasPrefix(path, "/login/passkey/") {
			continue
		}
		var c *http.Client
		var base, tok string
		if r.admin {
			if !strings.HasPrefix(path, "/admin/v1/") && path != "/setup" {
				continue // admin UI pages: not on the socket (forms, covered below by the public ones' rules)
			}
			c, base = adm, "http://admin.sock"
		} else {
			c, base, tok = s.HTTP(), s.URL(), w.alice
		}
		url := base + fill(path, "x", "finance/2026/x")
		for what, body := range bodies {
			t0 := time.Now()
			res, b := do(t, c, method, url, tok, body, "Content-Type", "application/json", "Origin", s.URL())
			if d := time.Since(t0); d > 5*time.Second {
				t.Errorf("%s %s: %s took %v", r.pattern, what, res.Status, d)
			}
			// A route that does not decode JSON may ignore the body.
			if res.StatusCode >= 500 || r.json && res.StatusCode < 400 && what != "duplicate keys" && what != "unicode escapes" {
				t.Errorf("%s with %s: %d %.200s", r.pattern, what, res.StatusCode, b)
			}
			if r.json && what != "duplicate keys" && what != "wrong types" && what != "unicode escapes" && res.StatusCode != 400 && res.StatusCode != 413 && !(signIn(r.pattern) && res.StatusCode == 429) {
				t.Errorf("%s (decodes JSON) with %s: %d, want 400 %.200s", r.pattern, what, res.StatusCode, b)
			}
			n++
		}
		// 100 MB, streamed.
		t0 := time.Now()
		req, _ := http.NewRequest(method, url, &hugeBody{n: 100 << 20})
		req.ContentLength = 100 << 20
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", s.URL())
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		res, err := c.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
			res.Body.Close()
			if res.StatusCode != 413 && res.StatusCode != 400 && !(res.StatusCode >= 401 && res.StatusCode < 500 && !r.json) {
				t.Errorf("%s with 100 MB: %d", r.pattern, res.StatusCode)
			}
		} // else: the server answered and closed before reading it all
		if d := time.Since(t0); d > 10*time.Second {
			t.Errorf("%s with 100 MB took %v", r.pattern, d)
		}
		n++
		if h := vmHWM(t, s.Pid()); h-last > 8<<10 {
			t.Logf("%s: VmHWM %d → %d KiB", r.pattern, last, h)
			last = h
		}
	}
	if n < 100 {
		t.Fatalf("only %d hostile requests sent", n)
	}
	// Still alive and well.
	if res, _ := do(t, s.HTTP(), "GET", s.URL()+"/healthz", "", ""); res.StatusCode != 200 {
		t.Fatalf("after the hostile bodies: %d", res.StatusCode)
	}
	hwm := vmHWM(t, s.Pid())
	t.Logf("%d hostile requests; VmHWM %d → %d KiB (%d before the sign-in routes)", n, hwm0, hwm, hwmBeforeSignIn)
	if hwmBeforeSignIn-hwm0 > 64<<10 {
		t.Errorf("peak memory grew by %d KiB over the hostile bodies (limit 64 MiB)", hwmBeforeSignIn-hwm0)
	}
	// A sign-in attempt with a well-formed body hashes a password (Argon2id,
	// 64 MiB by design, auth.DefaultPasswordParams) even for an unknown
	// account; the hostile bodies add nothing to that.
	if hwm-hwmBeforeSignIn > 64<<10+32<<10 {
		t.Errorf("peak memory grew by %d KiB over the sign-in routes (limit: one Argon2id hash + 32 MiB)", hwm-hwmBeforeSignIn)
	}
}
