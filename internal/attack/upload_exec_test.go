package attack_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io/fs"
	"mime"
	"net/http"
	"net/url"

	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"ferry.dev/ferry/internal/ferrytest"
)

// payloads are files a web shell attack uploads (MOVEit's human2.aspx,
// Accellion's oracle.jsp, Cleo's autorun commands) and polyglots that are
// valid as two types at once.
var payloads = map[string]string{
	"shell.aspx":    `<%@ Page Language="C#" %><% Response.Write(System.Diagnostics.Process.Start("id")); %>`,
	"oracle.jsp":    `<% Runtime.getRuntime().exec(request.getParameter("cmd")); %>`,
	"cmd.php":       `<?php system($_GET["c"]); ?>`,
	"page.html":     `<!doctype html><script>fetch("/api/v1/tokens").then(r=>r.text()).then(alert)</script>`,
	"page.htm":      `<html><body onload="alert(document.cookie)">`,
	"image.svg":     `<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>`,
	"app.js":        `alert(document.domain)`,
	"x.xhtml":       `<html xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></html>`,
	"gifjs.gif":     "GIF89a/*\x01\x00\x01\x00\x00\x00\x00*/=1;alert(document.domain)//",
	"htmlpdf.pdf":   "%PDF-1.4\n<html><script>alert(1)</script></html>\n%%EOF",
	"autorun.bat":   "@echo off\r\npowershell -enc ZQBjAGgAbwA=\r\n",
	"main.xml":      `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>`,
	"noext":         "<html><script>alert('sniffed')</script></html>",
	"README.txt":    "<script>alert('text sniffed as html')</script>",
	"a..b.html":     "<script>alert(1)</script>",
	"..dots.jsp":    "<% out.println(1); %>",
	"UPPER.ASPX":    `<%@ Page %>`,
	"trail.php.":    `<?php phpinfo(); ?>`,
	"semi.jsp;.txt": `<% out.println(1); %>`,
}

// hostileNames are names a traversal or header-splitting attack uploads;
// each is either refused (4xx) or stored under a name that is served safely.
var hostileNames = []string{
	"..%2Fescape.html", "..%2F..%2Fescape.jsp", "%2E%2E/escape.php", "nul%00.html", "crlf%0D%0AContent-Type:%20text%2Fhtml.txt",
	"tab%09name.html", "del%7Fname.js", "quote%22%3B%20filename%3Devil.html", "back%5Cslash.aspx", "%E2%80%AEfdp.exe",
}

// checkSafe fails unless a response carrying file content is an attachment
// that no browser renders or sniffs.
func checkSafe(t *testing.T, how string, res *http.Response) {
	t.Helper()
	h := res.Header
	cd := h.Get("Content-Disposition")
	if disp, _, err := mime.ParseMediaType(cd); err != nil || disp != "attachment" {
		t.Errorf("%s: Content-Disposition %q, want attachment", how, cd)
	}
	if strings.ContainsAny(cd, "\r\n") {
		t.Errorf("%s: header splitting in Content-Disposition %q", how, cd)
	}
	if g := h.Get("X-Content-Type-Options"); g != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q", how, g)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") {
		t.Errorf("%s: CSP %q lacks sandbox", how, csp)
	}
	ct, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	for _, bad := range []string{"html", "xml", "svg", "javascript", "ecmascript", "text/plain"} {
		if strings.Contains(ct, bad) {
			t.Errorf("%s: Content-Type %q could be rendered", how, h.Get("Content-Type"))
		}
	}
}

// TestUploadToExecute (Accellion's and MOVEit's web shells, Cleo's autorun
// directory): executable and polyglot uploads and hostile names, fetched
// every way, are only ever attachments; blobs on disk are named by random
// ids; and the real server binary never starts a process.
func TestUploadToExecute(t *testing.T) {
	t.Parallel()
	s := startBinary(t)
	w := populate(t, s)
	before := children(t, s.Pid())
	if len(before) != 0 {
		t.Fatalf("the server has child processes before any upload: %v", before)
	}
	web := webLogin(t, s, "alice@acme.test", alicePassword)

	stored := map[string]string{} // escaped API path → content
	for name, body := range payloads {
		p := "/finance/2026/" + url.PathEscape(name)
		ferrytest.Expect(t, s.Do("PUT", "/api/v1/files"+p, w.alice, strings.NewReader(body)), 201)
		stored[p] = body
	}
	for _, name := range hostileNames {
		p := "/finance/2026/" + name
		res := s.Do("PUT", "/api/v1/files"+p, w.alice, strings.NewReader("<script>alert(1)</script>"))
		b := ferrytest.Body(t, res)
		switch {
		case res.StatusCode == 201:
			stored[p] = "<script>alert(1)</script>"
		case res.StatusCode >= 400 && res.StatusCode < 500:
			if strings.Contains(b, ".go:") || strings.Contains(b, "goroutine") {
				t.Errorf("PUT %s: error leaks internals: %s", p, b)
			}
		default:
			t.Errorf("PUT %s: %d %s", p, res.StatusCode, b)
		}
	}
	// The same payloads through tus, with the name in metadata.
	for _, name := range []string{"tus-shell.aspx", "../../tus-escape.jsp", "tus\x00nul.html", "tus.svg"} {
		meta := "path " + b64("/finance/2026/"+name)
		res := s.Do("POST", "/api/v1/uploads/", w.alice, strings.NewReader("<script>alert(1)</script>"),
			"Tus-Resumable", "1.0.0", "Upload-Length", "25", "Upload-Metadata", meta, "Content-Type", "application/offset+octet-stream")
		b := ferrytest.Body(t, res)
		switch {
		case res.StatusCode == 201 && !strings.ContainsAny(name, "\x00") && !strings.Contains(name, ".."):
			stored["/finance/2026/"+url.PathEscape(name)] = "<script>alert(1)</script>"
		case res.StatusCode == 201:
			t.Errorf("tus upload %q accepted", name)
		case res.StatusCode >= 500:
			t.Errorf("tus upload %q: %d %s", name, res.StatusCode, b)
		}
	}

	n := 0
	for p, body := range stored {
		api := "/api/v1/files" + p
		for _, accept := range []string{"", "text/html", "text/html,application/xhtml+xml,*/*;q=0.8", "image/svg+xml", "application/javascript", "*/*"} {
			res := s.Do("GET", api, w.alice, nil, "Accept", accept)
			got := ferrytest.Body(t, res)
			if res.StatusCode != 200 || got != body {
				t.Errorf("GET %s (Accept %q): %d", api, accept, res.StatusCode)
			}
			checkSafe(t, "GET "+api+" Accept "+accept, res)
			n++
		}
		for _, q := range []string{"?inline=1", "?download=0", "?disposition=inline", "?content-type=text/html"} {
			res := s.Do("GET", api+q, w.alice, nil)
			ferrytest.Body(t, res)
			if res.StatusCode == 200 {
				checkSafe(t, "GET "+api+q, res)
			}
			n++
		}
		res := s.Do("HEAD", api, w.alice, nil)
		ferrytest.Body(t, res)
		checkSafe(t, "HEAD "+api, res)
		res = s.Do("GET", api, w.alice, nil, "Range", "bytes=0-5")
		ferrytest.Body(t, res)
		if res.StatusCode != 206 {
			t.Errorf("Range GET %s: %d", api, res.StatusCode)
		}
		checkSafe(t, "Range GET "+api, res)
		// The web download, as a browser following a link would.
		for _, q := range []string{"", "?inline=1"} {
			res, got := do(t, web, "GET", s.URL()+"/download"+p+q, "", "", "Accept", "text/html", "Sec-Fetch-Dest", "document")
			if res.StatusCode != 200 || got != body {
				t.Errorf("web download %s%s: %d", p, q, res.StatusCode)
			}
			checkSafe(t, "web download "+p+q, res)
			n += 2
		}
	}
	// Through a share link of the folder, as an anonymous visitor.
	res0 := s.Do("POST", "/api/v1/shares", w.alice, strings.NewReader(`{"path":"/finance/2026"}`), "Content-Type", "application/json")
	sb := ferrytest.Body(t, res0)
	var share struct{ URL, Token string }
	if res0.StatusCode != 201 || json.Unmarshal([]byte(sb), &share) != nil || share.Token == "" {
		t.Fatalf("share the folder: %d %s", res0.StatusCode, sb)
	}
	anon := &http.Client{Transport: s.HTTP().Transport}
	for name, body := range payloads {
		for _, q := range []string{"", "?inline=1"} {
			res, got := do(t, anon, "GET", s.URL()+"/s/"+share.Token+"/download/"+url.PathEscape(name)+q, "", "", "Accept", "text/html")
			if res.StatusCode != 200 || got != body {
				t.Errorf("share link download %s%s: %d", name, q, res.StatusCode)
			}
			checkSafe(t, "share link download "+name+q, res)
			n++
		}
	}

	// Through a package alice sends to herself: a recipient's downloads,
	// by the API and by the web page's link, are served by the same
	// serveWhole as a guest's through /p/{token}/files/{file}.
	var pkg struct {
		ID           string `json:"id"`
		UploadFolder string `json:"upload_folder"`
		Files        []struct{ ID, Name string }
	}
	json.Unmarshal([]byte(ferrytest.Expect(t, s.Do("POST", "/api/v1/packages", w.alice, strings.NewReader(`{"to":["alice@acme.test"],"subject":"payloads"}`), "Content-Type", "application/json"), 201)), &pkg)
	for name, body := range payloads {
		ferrytest.Expect(t, s.Do("PUT", "/api/v1/files"+pkg.UploadFolder+"/"+url.PathEscape(name), w.alice, strings.NewReader(body)), 201)
	}
	ferrytest.Expect(t, s.Do("POST", "/api/v1/packages/"+pkg.ID+"/send", w.alice, nil), 200)
	json.Unmarshal([]byte(ferrytest.Expect(t, s.Do("GET", "/api/v1/packages/"+pkg.ID, w.alice, nil), 200)), &pkg)
	if len(pkg.Files) != len(payloads) {
		t.Fatalf("the package holds %d files, want %d", len(pkg.Files), len(payloads))
	}
	for _, f := range pkg.Files {
		for _, q := range []string{"", "?inline=1"} {
			res := s.Do("GET", "/api/v1/packages/"+pkg.ID+"/files/"+f.ID+q, w.alice, nil, "Accept", "text/html")
			if got := ferrytest.Body(t, res); res.StatusCode != 200 || got != payloads[f.Name] {
				t.Errorf("package download (API) %s%s: %d", f.Name, q, res.StatusCode)
			}
			checkSafe(t, "package download (API) "+f.Name+q, res)
			res, got := do(t, web, "GET", s.URL()+"/packages/"+pkg.ID+"/files/"+f.ID+q, "", "", "Accept", "text/html", "Sec-Fetch-Dest", "document")
			if res.StatusCode != 200 || got != payloads[f.Name] {
				t.Errorf("package download (web) %s%s: %d", f.Name, q, res.StatusCode)
			}
			checkSafe(t, "package download (web) "+f.Name+q, res)
			n += 2
		}
	}

	// The folder as a zip: an attachment; entries keep safe names.
	res, z := do(t, web, "GET", s.URL()+"/zip/finance/2026", "", "", "Accept", "text/html")
	if res.StatusCode != 200 {
		t.Fatalf("zip: %d", res.StatusCode)
	}
	checkSafeZip(t, res, z)

	// Blobs are named by random ids: no user-supplied name on disk.
	var blobs []string
	filepath.WalkDir(filepath.Join(s.Dir(), "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			blobs = append(blobs, p)
		}
		return nil
	})
	idLike := regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9]+)?$`)
	for _, p := range blobs[1:] {
		base := filepath.Base(p)
		low := strings.ToLower(base)
		for _, frag := range []string{"shell", "oracle", "cmd", "page", "image", "app", "gifjs", "htmlpdf", "autorun", "readme", "escape", "finance", "report", "aspx", "jsp", "php", "html", "svg", ".js", ".bat"} {
			if strings.Contains(low, frag) {
				t.Errorf("blob path %s contains the user-supplied %q", p, frag)
			}
		}
		if !idLike.MatchString(base) {
			t.Errorf("blob path %s is not an id", p)
		}
	}
	if len(blobs) < len(payloads) {
		t.Fatalf("only %d entries under DIR/blobs", len(blobs))
	}

	// No process was ever started by the server.
	time.Sleep(200 * time.Millisecond)
	if c := children(t, s.Pid()); len(c) != 0 {
		t.Fatalf("the server has child processes: %v", c)
	}
	t.Logf("%d fetches of %d stored payloads; %d blob entries; no child process", n, len(stored), len(blobs)-1)
}

func checkSafeZip(t *testing.T, res *http.Response, z string) {
	t.Helper()
	if disp, _, _ := mime.ParseMediaType(res.Header.Get("Content-Disposition")); disp != "attachment" {
		t.Errorf("zip: Content-Disposition %q", res.Header.Get("Content-Disposition"))
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/zip") {
		t.Errorf("zip: Content-Type %q", ct)
	}
	if res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("zip: no nosniff")
	}
	zr, err := zip.NewReader(bytes.NewReader([]byte(z)), int64(len(z)))
	if err != nil {
		t.Fatalf("zip: %v", err)
	}
	for _, f := range zr.File {
		if strings.HasPrefix(f.Name, "/") || strings.Contains(f.Name, "..") && strings.Contains(f.Name, "../") || strings.ContainsAny(f.Name, "\x00\r\n\\") {
			t.Errorf("zip entry %q could escape where it is unpacked", f.Name)
		}
	}
	if len(zr.File) < len(payloads) {
		t.Errorf("zip has %d entries, want at least %d", len(zr.File), len(payloads))
	}

}
