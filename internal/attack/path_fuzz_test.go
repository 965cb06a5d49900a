package attack_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"ferry.dev/ferry/internal/ferrytest"
)

// FuzzRESTPaths (path traversal over the real handlers, issue 9): alice,
// who may write only under /finance, sends any path to the file, folder
// and tus endpoints of a running server; nothing she creates lands outside
// /finance, and nothing she reads or lists shows /hr. The seed corpus runs as
// an ordinary test; `go test -fuzz FuzzRESTPaths ./internal/attack`
// searches further (one server for the whole run).
func FuzzRESTPaths(f *testing.F) {
	for _, s := range []string{
		"finance/2026/a.txt", "finance/../hr/salaries.txt", "finance/%2e%2e/hr/salaries.txt", "finance/..%2fhr/x", "finance/..%252fhr",
		"%2Fhr/salaries.txt", "finance/2026/..", "hr/salaries.txt", "finance//hr/x", "finance/./../hr", "finance\\..\\hr\\x",
		"finance/%00/x", "finance/%c0%ae%c0%ae/hr", "finance/2026/%2e%2e%2f%2e%2e%2fhr%2fsalaries.txt", "/finance/2026/x", "finance;/../hr",
		"finance/2026/x?move=/hr/y", "finance/2026/x#/../../hr", "..", "%2e%2e", "finance/2026/\u202etxt.exe",
	} {
		f.Add(s)
	}
	w := newWorld(f)
	s := w.s
	f.Fuzz(func(t *testing.T, p string) {
		tok := w.alice
		req := func(method, path string, body string, hdr ...string) (*http.Response, string) {
			r, err := http.NewRequest(method, s.URL()+path, strings.NewReader(body))
			if err != nil {
				return nil, "" // not a URL a client could send
			}
			r.Header.Set("Authorization", "Bearer "+tok)
			for i := 0; i+1 < len(hdr); i += 2 {
				r.Header.Set(hdr[i], hdr[i+1])
			}
			res, err := s.HTTP().Do(r)
			if err != nil {
				t.Fatalf("%s %q: %v", method, path, err)
			}
			return res, ferrytest.Body(t, res)
		}
		check := func(what string, res *http.Response, b string) {
			if res == nil {
				return
			}
			if res.StatusCode >= 500 {
				t.Fatalf("%s %q: %d %s", what, p, res.StatusCode, b)
			}
			if strings.Contains(b, salaryBody) || strings.Contains(b, "salaries.txt") {
				t.Fatalf("%s %q shows /hr: %d %.300s", what, p, res.StatusCode, b)
			}
			if res.StatusCode == 201 {
				var out struct{ Path string }
				json.Unmarshal([]byte(b), &out)
				if out.Path != "" && !strings.HasPrefix(out.Path, "/finance/") {
					t.Fatalf("%s %q created %q, outside /finance", what, p, out.Path)
				}
			}
		}
		res, b := req("PUT", "/api/v1/files/"+p, "fuzz")
		check("PUT", res, b)
		res, b = req("GET", "/api/v1/files/"+p, "")
		check("GET", res, b)
		res, b = req("GET", "/api/v1/folders/"+p, "")
		check("list", res, b)
		res, b = req("POST", "/api/v1/folders/"+p, "")
		check("mkdir", res, b)
		res, b = req("POST", "/api/v1/uploads/", "fuzz", "Tus-Resumable", "1.0.0", "Upload-Length", "4", "Content-Type", "application/offset+octet-stream",
			"Upload-Metadata", "path "+b64(p))
		check("tus", res, b)
		// Whatever happened, /hr holds only the salaries and alice's
		// uploads are all under /finance.
		_, hr := req("GET", "/api/v1/folders/hr", "")
		if res, list := req("GET", "/api/v1/uploads/", ""); res != nil {
			var ups struct{ Uploads []struct{ Path string } }
			json.Unmarshal([]byte(list), &ups)
			for _, u := range ups.Uploads {
				if !strings.HasPrefix(u.Path, "/finance/") {
					t.Fatalf("after %q: an upload to %q", p, u.Path)
				}
			}
		}
		tok = w.admin
		_, listing := req("GET", "/api/v1/folders/hr", "")
		if strings.Count(listing, `"name"`) != 1 {
			t.Fatalf("after %q, /hr holds: %s (alice sees %s)", p, listing, hr)
		}
	})
}
