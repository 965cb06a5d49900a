package keys

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestServeContent checks that a Reader serves byte ranges through
// http.ServeContent.
func TestServeContent(t *testing.T) {
	plain := randomBytes(8, 2*SegmentSize+99)
	r := open(t, encrypt(t, plain, testKey, testKeyID))
	for _, tt := range []struct {
		rng        string
		status     int
		start, end int // of the expected body in plain
	}{
		{"", http.StatusOK, 0, len(plain)},
		{"bytes=65530-65545", http.StatusPartialContent, 65530, 65546},
		{"bytes=-10", http.StatusPartialContent, len(plain) - 10, len(plain)},
		{"bytes=131072-", http.StatusPartialContent, 131072, len(plain)},
	} {
		req := httptest.NewRequest("GET", "/f", nil)
		if tt.rng != "" {
			req.Header.Set("Range", tt.rng)
		}
		rec := httptest.NewRecorder()
		http.ServeContent(rec, req, "f.bin", time.Time{}, r)
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != tt.status || !bytes.Equal(body, plain[tt.start:tt.end]) {
			t.Errorf("Range %q: status %d, %d bytes; want %d, %d bytes", tt.rng, rec.Code, len(body), tt.status, tt.end-tt.start)
		}
	}
}
