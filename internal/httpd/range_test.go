package httpd

import "testing"

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		h           string
		size        int64
		off, n      int64
		satisfiable bool
	}{
		{"bytes=0-9", 100, 0, 10, true},
		{"bytes=90-", 100, 90, 10, true},
		{"bytes=90-200", 100, 90, 10, true},
		{"bytes=-10", 100, 90, 10, true},
		{"bytes=-1000", 100, 0, 100, true},
		{"bytes=100-", 100, 0, 0, false},
		{"bytes=-0", 100, 0, 0, false},
		{"bytes=0-1,5-6", 100, 0, 100, true}, // several ranges: whole file
		{"bytes=9-3", 100, 0, 100, true},     // malformed: ignored
		{"items=0-1", 100, 0, 100, true},
		{"bytes=x-1", 100, 0, 100, true},
		{"bytes=0-", 0, 0, 0, false},
	} {
		off, n, ok := parseRange(tc.h, tc.size)
		if off != tc.off || n != tc.n || ok != tc.satisfiable {
			t.Errorf("parseRange(%q, %d) = %d, %d, %v; want %d, %d, %v", tc.h, tc.size, off, n, ok, tc.off, tc.n, tc.satisfiable)
		}
	}
}
