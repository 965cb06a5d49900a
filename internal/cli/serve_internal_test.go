package cli

import (
	"strings"
	"testing"
)

// TestLinkBaseWarning: without --public-url, links are built on the bound
// public address; an all-interfaces one opens nowhere and gets a warning.
func TestLinkBaseWarning(t *testing.T) {
	for addr, warn := range map[string]bool{
		"0.0.0.0:8443":      true,
		"[::]:443":          true,
		"127.0.0.1:8443":    false,
		"192.0.2.10:443":    false,
		"[2001:db8::1]:443": false,
	} {
		w := linkBaseWarning(addr)
		if (w != "") != warn || (warn && !strings.Contains(w, "--public-url")) {
			t.Errorf("%s: %q", addr, w)
		}
	}
}
