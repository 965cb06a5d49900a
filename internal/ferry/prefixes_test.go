package ferry_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"ferry.dev/ferry/internal/ferry"
)

// TestParsePrefixes: address ranges as people type them, one parser for the
// server's flags, organisation policies and share links.
func TestParsePrefixes(t *testing.T) {
	got, err := ferry.ParsePrefixes([]string{" 192.0.2.7/24 ", "", "198.51.100.9", "::ffff:203.0.113.5", "::ffff:203.0.113.0/120", "2001:db8::1/32"})
	want := []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("198.51.100.9/32"),
		netip.MustParsePrefix("203.0.113.5/32"),
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("2001:db8::/32"),
	}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("got %v %v, want %v", got, err, want)
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0", "1.2.3.4/x"} {
		_, err := ferry.ParsePrefixes([]string{"10.0.0.0/8", bad})
		if ferry.KindOf(err) != ferry.Invalid || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
