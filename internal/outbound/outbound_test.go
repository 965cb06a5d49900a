package outbound_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ferry.dev/ferry/internal/outbound"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	refused := []string{
		"127.0.0.1", "127.1.2.3", "::1", "0.0.0.0", "0.1.2.3", "::",
		"10.0.0.1", "172.16.5.4", "172.31.255.255", "192.168.1.1", "fd00::1", "fc12:3456::1",
		"169.254.169.254", "fe80::1", "fe80::1%eth0", "100.64.0.1", "100.127.255.254",
		"224.0.0.1", "239.255.255.250", "ff02::1", "255.255.255.255",
		// IPv4-mapped, -compatible, NAT64 and 6to4 forms of the above.
		"::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:169.254.169.254", "::ffff:100.64.0.1", "::ffff:0.0.0.0",
		"::127.0.0.1", "::10.0.0.1", "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "2002:7f00:1::1", "2002:a00:1::",
	}
	for _, s := range refused {
		a := netip.MustParseAddr(s)
		if err := outbound.Check(a, nil); !errors.Is(err, outbound.ErrRefused) {
			t.Errorf("%s: %v, want refused", s, err)
		}
	}
	public := []string{"8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.0", "172.32.0.1", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"}
	for _, s := range public {
		if err := outbound.Check(netip.MustParseAddr(s), nil); err != nil {
			t.Errorf("%s: %v, want allowed", s, err)
		}
	}
	// The allow-list opens exactly its prefixes, in either form.
	allow := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("::1/128")}
	for s, ok := range map[string]bool{"10.1.2.3": true, "::ffff:10.1.2.3": true, "10.2.0.1": false, "::1": true, "127.0.0.1": false} {
		err := outbound.Check(netip.MustParseAddr(s), allow)
		if (err == nil) != ok {
			t.Errorf("%s with allow-list: %v, want allowed=%v", s, err, ok)
		}
	}
}

// server listens on addr (an address of this host) and answers with h.
func server(t *testing.T, addr string, h http.Handler) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func get(c *http.Client, url string) (string, error) {
	res, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}

// TestClientRefusesPrivateTargets connects for real: a server on loopback is
// refused by its address and by a name (localhost, as a rebinding name would
// resolve), reached once allow-listed, and a redirect from an allow-listed
// server to a loopback address outside the list is refused at connect time.
func TestClientRefusesPrivateTargets(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	inner := server(t, "127.0.0.2:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "internal secret")
	}))
	front := server(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, inner.URL+"/", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		default:
			io.WriteString(w, "ok")
		}
	}))
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(front.URL, "http://"))

	plain := outbound.NewClient(nil, 5*time.Second)
	for _, u := range []string{front.URL, "http://localhost:" + port + "/", "http://[::ffff:127.0.0.1]:" + port + "/", inner.URL} {
		if _, err := get(plain, u); !errors.Is(err, outbound.ErrRefused) {
			t.Errorf("GET %s without allow-list: %v, want refused", u, err)
		}
	}

	only := outbound.NewClient([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, 5*time.Second)
	if body, err := get(only, front.URL); err != nil || body != "ok" {
		t.Fatalf("allow-listed server: %q %v", body, err)
	}
	if _, err := get(only, front.URL+"/redirect"); !errors.Is(err, outbound.ErrRefused) {
		t.Errorf("redirect to a loopback address outside the allow-list: %v, want refused", err)
	}
	if _, err := get(only, front.URL+"/loop"); !errors.Is(err, outbound.ErrRefused) || !strings.Contains(err.Error(), "redirects") {
		t.Errorf("redirect loop: %v, want refused after %d", err, outbound.MaxRedirects)
	}
	if _, err := get(only, front.URL+"/file"); !errors.Is(err, outbound.ErrRefused) {
		t.Errorf("redirect to file://: %v, want refused", err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the internal server was reached %d times", n)
	}
	both := outbound.NewClient([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, 5*time.Second)
	if body, err := get(both, front.URL+"/redirect"); err != nil || body != "internal secret" {
		t.Fatalf("redirect inside the allow-list: %q %v", body, err)
	}
}

// TestClientIgnoresProxyEnvironment: a proxy would connect on the client's
// behalf, past the dialer's check.
func TestClientIgnoresProxyEnvironment(t *testing.T) {
	var proxied atomic.Int64
	proxy := server(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		io.WriteString(w, "via proxy")
	}))
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("HTTPS_PROXY", proxy.URL)
	t.Setenv("NO_PROXY", "")
	c := outbound.NewClient(nil, 2*time.Second)
	if tr, ok := c.Transport.(*http.Transport); !ok || tr.Proxy != nil {
		t.Fatalf("transport %T uses a proxy function", c.Transport)
	}
	// 192.0.2.1 (TEST-NET-1) is public to the check but unroutable here: the
	// request must fail on its own rather than be handed to the proxy.
	if body, err := get(c, "http://192.0.2.1/"); err == nil || proxied.Load() != 0 {
		t.Fatalf("request went through the proxy: %q %v", body, err)
	}
}
