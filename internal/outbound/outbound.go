// Package outbound is the one way Ferry makes HTTP requests to other
// servers (OpenID discovery and token calls, webhooks). Its client refuses to
// connect to this machine and to private networks unless the operator
// allow-lists them: a server-side request forgery (Accellion FTA's second
// step) cannot reach the metadata service, the admin listener or anything
// else behind the firewall.
//
// The check is made on the address actually being connected to, in the
// dialer's Control hook, after name resolution. A host name that resolves to
// a public address when a URL is checked and to 127.0.0.1 when it is fetched
// (DNS rebinding), a redirect to a private address and a name with several
// addresses are all refused the same way. The package uses the standard
// library only.
package outbound

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// MaxRedirects is how many redirects the client follows.
const MaxRedirects = 5

// ErrRefused is wrapped by the error of a connection the client refuses.
var ErrRefused = errors.New("outbound connection refused")

// blocked are the ranges the client never connects to unless allow-listed:
// this host, private and shared networks, link-local (cloud metadata at
// 169.254.169.254), multicast and reserved space.
var blocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network", unspecified
	netip.MustParsePrefix("10.0.0.0/8"),     // RFC 1918
	netip.MustParsePrefix("100.64.0.0/10"),  // CGNAT, RFC 6598
	netip.MustParsePrefix("127.0.0.0/8"),    // loopback
	netip.MustParsePrefix("169.254.0.0/16"), // link-local, cloud metadata
	netip.MustParsePrefix("172.16.0.0/12"),  // RFC 1918
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("192.168.0.0/16"), // RFC 1918
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("224.0.0.0/4"),    // multicast
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, broadcast
	netip.MustParsePrefix("::/128"),         // unspecified
	netip.MustParsePrefix("::1/128"),        // loopback
	netip.MustParsePrefix("fc00::/7"),       // unique local (ULA)
	netip.MustParsePrefix("fe80::/10"),      // link-local
	netip.MustParsePrefix("fec0::/10"),      // site-local (deprecated)
	netip.MustParsePrefix("ff00::/8"),       // multicast
	netip.MustParsePrefix("100::/64"),       // discard
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
}

// embedded are IPv6 ranges that carry an IPv4 address a gateway may connect
// to; the IPv4 address is checked as well: IPv4-mapped (::ffff:a.b.c.d),
// IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d) and 6to4
// (2002:aabb:ccdd::).
var (
	compatible = netip.MustParsePrefix("::/96")
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour  = netip.MustParsePrefix("2002::/16")
)

// Check reports whether the client may connect to addr: nil when addr is
// public or inside one of allow, an error wrapping ErrRefused otherwise.
func Check(addr netip.Addr, allow []netip.Prefix) error {
	addr = addr.WithZone("")
	forms := []netip.Addr{addr}
	if addr.Is4In6() {
		forms = append(forms, addr.Unmap())
	} else if addr.Is6() {
		b := addr.As16()
		switch {
		case compatible.Contains(addr) && !addr.IsUnspecified() && addr != netip.IPv6Loopback():
			forms = append(forms, netip.AddrFrom4([4]byte(b[12:16])))
		case nat64.Contains(addr):
			forms = append(forms, netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(addr):
			forms = append(forms, netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	for _, a := range forms {
		for _, p := range allow {
			if p.Contains(a) {
				return nil
			}
		}
	}
	for _, a := range forms {
		if !a.IsValid() {
			return fmt.Errorf("%w: invalid address", ErrRefused)
		}
		for _, p := range blocked {
			if p.Contains(a) {
				return fmt.Errorf("%w: %s is in %s, which is not allow-listed (--outbound-allow)", ErrRefused, addr, p)
			}
		}
	}
	return nil
}

// control is the dialer's hook: it runs once per connection attempt with
// the resolved address.
func control(allow []netip.Prefix) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		if !strings.HasPrefix(network, "tcp") {
			return fmt.Errorf("%w: network %s", ErrRefused, network)
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: address %q: %v", ErrRefused, address, err)
		}
		return Check(ap.Addr(), allow)
	}
}

// NewClient returns an HTTP client whose every connection, including those
// made to follow a redirect, goes to a public address or one inside allow.
// It ignores HTTP_PROXY and friends (a proxy would make the connection on
// the client's behalf, past the check), follows at most MaxRedirects
// redirects, only to http and https URLs, and gives each request timeout in
// all.
func NewClient(allow []netip.Prefix, timeout time.Duration) *http.Client {
	allow = append([]netip.Prefix(nil), allow...)
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: control(allow)}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           16,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  timeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= MaxRedirects {
				return fmt.Errorf("%w: more than %d redirects", ErrRefused, MaxRedirects)
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("%w: redirect to a %s URL", ErrRefused, req.URL.Scheme)
			}
			return nil
		},
	}
}
