package httpd_test

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"ferry.dev/ferry/internal/ferrytest"
)

// filesSetup makes an organisation with /finance (carol: list, read, write,
// delete) and /hr, and /finance/reports (dave: list and read only there),
// with two files in /finance put through the API.
func filesSetup(t *testing.T) (s *ferrytest.Server, files map[string][]byte) {
	t.Helper()
	s = ferrytest.Start(t)
	withPassword(t, s, "acme", "carol@acme.test", "user", "correct horse battery")
	withPassword(t, s, "acme", "dave@acme.test", "user", "correct horse battery")
	s.Admin("folder", "create", "--org", "acme", "/finance/reports")
	s.Admin("folder", "create", "--org", "acme", "/hr")
	s.Admin("grant", "--org", "acme", "--user", "carol@acme.test", "/finance", "list,read,write,delete")
	s.Admin("grant", "--org", "acme", "--user", "dave@acme.test", "/finance", "list,read")
	tok := strings.TrimSpace(s.Admin("token", "create", "--user", "carol@acme.test"))
	files = map[string][]byte{
		"/finance/a small.txt":             []byte("small\n"),
		"/finance/b-bigger & odd#name.csv": bytes.Repeat([]byte("1,2,3\n"), 50000),
		"/finance/reports/q1.pdf":          bytes.Repeat([]byte{0x25, 0x50, 0x44, 0x46}, 3000),
	}
	for p, b := range files {
		ferrytest.Expect(t, s.Do("PUT", "/api/v1/files"+escapeURLPath(p), tok, bytes.NewReader(b)), http.StatusCreated)
	}
	return s, files
}

func escapeURLPath(p string) string {
	parts := strings.Split(p, "/")
	for i := range parts {
		parts[i] = url.PathEscape(parts[i])
	}
	return strings.Join(parts, "/")
}

func signedIn(t *testing.T, s *ferrytest.Server, email string) (*browser, string) {
	t.Helper()
	b := newBrowser(t, s)
	if res := b.signIn(email, "correct horse battery"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", res.StatusCode)
	}
	res, page := b.get("/files/")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /files/: %d\n%s", res.StatusCode, page)
	}
	return b, csrfOf(t, page)
}

var rowNameRE = regexp.MustCompile(`<a class="(?:file|folder)" href="[^"]*">([^<]*)</a>`)

func TestWebBrowse(t *testing.T) {
	s, files := filesSetup(t)
	b, _ := signedIn(t, s, "carol@acme.test")

	res, _ := b.get("/")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/files/" {
		t.Fatalf("GET /: %d to %q, want a redirect to /files/", res.StatusCode, res.Header.Get("Location"))
	}
	_, page := b.get("/files/")
	if !strings.Contains(page, `href="/files/finance/"`) || strings.Contains(page, `/files/hr`) {
		t.Fatalf("root listing should show finance only:\n%s", page)
	}

	res, page = b.get("/files/finance")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /files/finance: %d\n%s", res.StatusCode, page)
	}
	big := files["/finance/b-bigger & odd#name.csv"]
	sum := sha256.Sum256(big)
	for _, want := range []string{
		`<meta name="csrf-token"`,
		`href="/files/finance/b-bigger%20&amp;%20odd%23name.csv"`,
		`href="/download/finance/b-bigger%20&amp;%20odd%23name.csv"`,
		hex.EncodeToString(sum[:]),
		`title="300000 bytes"`,
		`<a href="/files/finance" aria-current="page">finance</a>`,
		`src="/static/files.js"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("listing lacks %s", want)
		}
	}
	names := func(page string) []string {
		var out []string
		for _, m := range rowNameRE.FindAllStringSubmatch(page, -1) {
			out = append(out, m[1])
		}
		return out
	}
	for _, c := range []struct {
		query string
		want  string
	}{
		{"", "reports/ a small.txt b-bigger &amp; odd#name.csv"},
		{"?sort=name&order=desc", "reports/ b-bigger &amp; odd#name.csv a small.txt"},
		{"?sort=size&order=desc", "reports/ b-bigger &amp; odd#name.csv a small.txt"},
		{"?sort=size", "reports/ a small.txt b-bigger &amp; odd#name.csv"},
		{"?q=SMALL", "a small.txt"},
	} {
		_, page := b.get("/files/finance" + c.query)
		if got := strings.Join(names(page), " "); got != c.want {
			t.Errorf("%s: rows %q, want %q", c.query, got, c.want)
		}
	}

	// A file's page: size, SHA-256, uploader, expiry.
	_, page = b.get("/files/finance/b-bigger%20&%20odd%23name.csv")
	for _, want := range []string{hex.EncodeToString(sum[:]), "you (carol@acme.test)", "300000 bytes", "Expires", `action="/delete/finance/b-bigger%20&amp;%20odd%23name.csv"`} {
		if !strings.Contains(page, want) {
			t.Errorf("file page lacks %s:\n%s", want, page)
		}
	}

	// Another reader sees who uploaded it, by email.
	bd, _ := signedIn(t, s, "dave@acme.test")
	if _, page := bd.get("/files/finance/b-bigger%20&%20odd%23name.csv"); !strings.Contains(page, "<dd>carol@acme.test</dd>") {
		t.Errorf("the uploader is not named to another reader:\n%s", page)
	}

	// Download: an attachment, never rendered.
	res, body := b.get("/download/finance/b-bigger%20&%20odd%23name.csv")
	if res.StatusCode != http.StatusOK || body != string(big) {
		t.Fatalf("download: %d, %d bytes", res.StatusCode, len(body))
	}
	if cd := res.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") {
		t.Errorf("Content-Disposition %q", cd)
	}
	if res.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(res.Header.Get("Content-Security-Policy"), "sandbox") || res.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("download headers: %v", res.Header)
	}

	// Another user's view: no /finance at all.
	withPassword(t, s, "acme", "erin@acme.test", "user", "correct horse battery")
	e, _ := signedIn(t, s, "erin@acme.test")
	if res, _ := e.get("/files/finance"); res.StatusCode != http.StatusNotFound {
		t.Errorf("erin sees /finance: %d", res.StatusCode)
	}
	if res, _ := e.get("/download/finance/a%20small.txt"); res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusForbidden {
		t.Errorf("erin downloads from /finance: %d", res.StatusCode)
	}

	// Signed out: sent to sign in.
	anon := newBrowser(t, s)
	for _, p := range []string{"/files/", "/download/finance/a%20small.txt", "/zip/finance", "/inbox", "/outbox"} {
		if res, _ := anon.get(p); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/login") {
			t.Errorf("signed out GET %s: %d %q", p, res.StatusCode, res.Header.Get("Location"))
		}
	}
	for p, heading := range map[string]string{"/inbox": "<h1>Inbox</h1>", "/outbox": "<h1>Outbox</h1>"} {
		if res, page := b.get(p); res.StatusCode != http.StatusOK || !strings.Contains(page, heading) {
			t.Errorf("GET %s: %d, want 200 with %s", p, res.StatusCode, heading)
		}
	}
}

func TestWebFileActions(t *testing.T) {
	s, files := filesSetup(t)
	b, csrf := signedIn(t, s, "carol@acme.test")
	form := func(kv ...string) url.Values {
		v := url.Values{"csrf": {csrf}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	expectRedirect := func(res *http.Response, page, to string) {
		t.Helper()
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != to {
			t.Fatalf("%s: %d to %q, want %s\n%s", res.Request.URL.Path, res.StatusCode, res.Header.Get("Location"), to, page)
		}
	}
	res, page := b.post("/mkdir/finance", form("name", "2026 Q1"))
	expectRedirect(res, page, "/files/finance?ok=mkdir")
	if _, page := b.get("/files/finance?ok=mkdir"); !strings.Contains(page, "Folder created.") || !strings.Contains(page, `href="/files/finance/2026%20Q1/"`) {
		t.Fatalf("new folder not listed:\n%s", page)
	}
	res, page = b.post("/rename/finance/a%20small.txt", form("name", "renamed.txt"))
	expectRedirect(res, page, "/files/finance?ok=rename")
	res, page = b.post("/move/finance/renamed.txt", form("to", "/finance/2026 Q1"))
	expectRedirect(res, page, "/files/finance/2026%20Q1?ok=move")
	if res, body := b.get("/download/finance/2026%20Q1/renamed.txt"); res.StatusCode != http.StatusOK || body != string(files["/finance/a small.txt"]) {
		t.Fatalf("moved file: %d %q", res.StatusCode, body)
	}
	// A folder that is not empty is not deleted, and the page says why.
	res, page = b.post("/delete/finance/2026%20Q1", form())
	if res.StatusCode != http.StatusConflict || !strings.Contains(page, "is not empty") || !strings.Contains(page, `role="alert"`) {
		t.Fatalf("delete of a non-empty folder: %d\n%s", res.StatusCode, page)
	}
	res, page = b.post("/delete/finance/2026%20Q1/renamed.txt", form())
	expectRedirect(res, page, "/files/finance/2026%20Q1?ok=delete")
	res, page = b.post("/delete/finance/2026%20Q1", form())
	expectRedirect(res, page, "/files/finance?ok=delete")
	// A name taken already, and a name with a slash.
	res, page = b.post("/mkdir/finance", form("name", "reports"))
	if res.StatusCode != http.StatusConflict || !strings.Contains(page, `role="alert"`) {
		t.Fatalf("mkdir of an existing name: %d\n%s", res.StatusCode, page)
	}
	if res, _ := b.post("/rename/finance/reports", form("name", "a/b")); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("rename to a/b: %d", res.StatusCode)
	}
}

// TestWebFilePermissions: dave may list and read /finance but not change
// it; each refusal shows transfer's reason, and nothing changes.
func TestWebFilePermissions(t *testing.T) {
	s, files := filesSetup(t)
	b, csrf := signedIn(t, s, "dave@acme.test")
	for _, c := range []struct{ path, field, value string }{
		{"/mkdir/finance", "name", "new"},
		{"/rename/finance/a%20small.txt", "name", "x.txt"},
		{"/move/finance/a%20small.txt", "to", "/finance/reports"},
		{"/delete/finance/a%20small.txt", "", ""},
		{"/delete/finance/reports", "", ""},
	} {
		res, page := b.post(c.path, url.Values{"csrf": {csrf}, c.field: {c.value}})
		if res.StatusCode != http.StatusForbidden || !strings.Contains(page, `role="alert"`) || !strings.Contains(page, "permission") {
			t.Errorf("POST %s: %d, want 403 with the reason\n%s", c.path, res.StatusCode, page)
		}
	}
	if res, body := b.get("/download/finance/a%20small.txt"); res.StatusCode != http.StatusOK || body != string(files["/finance/a small.txt"]) {
		t.Fatalf("dave's download: %d", res.StatusCode)
	}
	// Uploads are refused with the reason too.
	res := webTusPost(t, b, csrf, "/finance/new.txt", 3, "")
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("dave's upload: %d %s", res.StatusCode, ferrytest.Body(t, res))
	}
}

// TestWebFormsRefused: forms without the session's CSRF token, or from
// another origin, change nothing.
func TestWebFormsRefused(t *testing.T) {
	s, _ := filesSetup(t)
	b, csrf := signedIn(t, s, "carol@acme.test")
	for _, p := range []string{"/mkdir/finance", "/rename/finance/a%20small.txt", "/move/finance/a%20small.txt", "/delete/finance/a%20small.txt"} {
		v := url.Values{"name": {"x"}, "to": {"/finance/reports"}}
		if res, _ := b.post(p, v); res.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s without CSRF token: %d", p, res.StatusCode)
		}
		v.Set("csrf", wrongToken(csrf))
		if res, _ := b.post(p, v); res.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s with a wrong CSRF token: %d", p, res.StatusCode)
		}
		v.Set("csrf", csrf)
		if res, _ := b.post(p, v, "https://evil.test"); res.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s from another origin: %d", p, res.StatusCode)
		}
	}
	if _, page := b.get("/files/finance"); !strings.Contains(page, "a small.txt") || strings.Contains(page, `>x/<`) {
		t.Fatalf("a refused form changed something:\n%s", page)
	}
}

// wrongToken is a CSRF token that differs from tok in its first character.
func wrongToken(tok string) string {
	if tok[0] == 'A' {
		return "B" + tok[1:]
	}
	return "A" + tok[1:]
}

// webTusPost creates an upload at /web/uploads/ from b's session.
func webTusPost(t *testing.T, b *browser, csrf, path string, size int, origin string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", b.s.PublicURL+"/web/uploads/", nil)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", strconv.Itoa(size))
	req.Header.Set("Upload-Metadata", "path "+base64.StdEncoding.EncodeToString([]byte(path)))
	if origin == "" {
		origin = b.s.PublicURL
	}
	req.Header.Set("Origin", origin)
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	res, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestWebUploads: the browser's tus endpoint takes the session cookie and
// the CSRF header, from Ferry's origin only; then it is plain tus.
func TestWebUploads(t *testing.T) {
	s, _ := filesSetup(t)
	b, csrf := signedIn(t, s, "carol@acme.test")
	anon := newBrowser(t, s)

	expectErr(t, webTusPost(t, anon, "", "/finance/x.txt", 3, ""), http.StatusUnauthorized, "unauthenticated")
	expectErr(t, webTusPost(t, anon, csrf, "/finance/x.txt", 3, ""), http.StatusUnauthorized, "unauthenticated")
	expectErr(t, webTusPost(t, b, "", "/finance/x.txt", 3, ""), http.StatusForbidden, "permission")
	expectErr(t, webTusPost(t, b, wrongToken(csrf), "/finance/x.txt", 3, ""), http.StatusForbidden, "permission")
	expectErr(t, webTusPost(t, b, csrf, "/finance/x.txt", 3, "https://evil.test"), http.StatusForbidden, "permission")
	// A bearer token is not what this endpoint takes.
	tok := strings.TrimSpace(s.Admin("token", "create", "--user", "carol@acme.test"))
	req, _ := http.NewRequest("POST", s.PublicURL+"/web/uploads/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", "3")
	res, err := s.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	expectErr(t, res, http.StatusUnauthorized, "unauthenticated")

	content := []byte("hello from the browser\n")
	res = webTusPost(t, b, csrf, "/finance/web.txt", len(content), "")
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", res.StatusCode, ferrytest.Body(t, res))
	}
	loc := res.Header.Get("Location")
	u, err := url.Parse(loc)
	if err != nil || !strings.HasPrefix(u.Path, "/web/uploads/") {
		t.Fatalf("Location %q", loc)
	}
	patch := func(csrfHdr string, body []byte, off int) *http.Response {
		req, _ := http.NewRequest("PATCH", s.PublicURL+u.Path, bytes.NewReader(body))
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Upload-Offset", strconv.Itoa(off))
		req.Header.Set("Origin", s.PublicURL)
		if csrfHdr != "" {
			req.Header.Set("X-CSRF-Token", csrfHdr)
		}
		res, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	expectErr(t, patch("", content[:5], 0), http.StatusForbidden, "permission")
	ferrytest.Expect(t, patch(csrf, content[:5], 0), http.StatusNoContent)
	// HEAD needs the session, not the CSRF header.
	req, _ = http.NewRequest("HEAD", s.PublicURL+u.Path, nil)
	req.Header.Set("Tus-Resumable", "1.0.0")
	res, err = b.c.Do(req)
	if err != nil || res.StatusCode != http.StatusOK || res.Header.Get("Upload-Offset") != "5" {
		t.Fatalf("HEAD: %v %v", err, res)
	}
	ferrytest.Expect(t, patch(csrf, content[5:], 5), http.StatusNoContent)
	if res, body := b.get("/download/finance/web.txt"); res.StatusCode != http.StatusOK || body != string(content) {
		t.Fatalf("uploaded file: %d %q", res.StatusCode, body)
	}
	// Another user's session cannot touch the upload.
	res = webTusPost(t, b, csrf, "/finance/web2.txt", 10, "")
	u2 := res.Header.Get("Location")
	d, dcsrf := signedIn(t, s, "dave@acme.test")
	req, _ = http.NewRequest("PATCH", u2, strings.NewReader("0123456789"))
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", "0")
	req.Header.Set("Origin", s.PublicURL)
	req.Header.Set("X-CSRF-Token", dcsrf)
	res, err = d.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode < 400 {
		t.Fatalf("dave patched carol's upload: %d", res.StatusCode)
	}
	res.Body.Close()
}

// TestWebZip downloads a folder as a zip and checks its entries and bytes.
func TestWebZip(t *testing.T) {
	s, files := filesSetup(t)
	b, _ := signedIn(t, s, "carol@acme.test")
	res, body := b.get("/zip/finance")
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/zip" || !strings.HasPrefix(res.Header.Get("Content-Disposition"), "attachment") || !strings.HasPrefix(res.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Fatalf("zip: %d %v", res.StatusCode, res.Header)
	}
	checkZip(t, []byte(body), files, "/finance/")

	// The root too, as files.zip.
	res, body = b.get("/zip/")
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Content-Disposition"), "files.zip") {
		t.Fatalf("zip of the root: %d %v", res.StatusCode, res.Header)
	}
	checkZip(t, []byte(body), files, "/")

	// A user who may list but not read gets the reason, not a zip.
	withPassword(t, s, "acme", "frank@acme.test", "user", "correct horse battery")
	s.Admin("grant", "--org", "acme", "--user", "frank@acme.test", "/finance", "list")
	f, _ := signedIn(t, s, "frank@acme.test")
	res, page := f.get("/zip/finance")
	if res.StatusCode != http.StatusForbidden || !strings.Contains(page, "permission") {
		t.Fatalf("frank's zip: %d\n%s", res.StatusCode, page)
	}
}

// checkZip compares a zip's entries with files (Ferry paths; the zip holds
// them relative to root) and its folders.
func checkZip(t *testing.T, b []byte, files map[string][]byte, root string) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	var got, want []string
	for p := range files {
		want = append(want, strings.TrimPrefix(p, root))
	}
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		got = append(got, f.Name)
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if !bytes.Equal(data, files[root+f.Name]) {
			t.Errorf("%s: %d bytes differ from the file's %d", f.Name, len(data), len(files[root+f.Name]))
		}
		if f.Method != zip.Store {
			t.Errorf("%s: method %d", f.Name, f.Method)
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("zip holds %q, want %q", got, want)
	}
}

// TestWebBundleFresh fails when the committed bundle under
// internal/httpd/web/static/ was not rebuilt after web/ changed: run
// scripts/build-web.sh. The hash is the one that script records.
func TestWebBundleFresh(t *testing.T) {
	web := filepath.Join("..", "..", "web")
	paths := []string{"package.json", "package-lock.json"}
	err := filepath.WalkDir(filepath.Join(web, "src"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(web, p)
		paths = append(paths, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	h := sha256.New()
	for _, p := range paths {
		b, err := os.ReadFile(filepath.Join(web, p))
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(h, p+"\n")
		h.Write(b)
	}
	want := hex.EncodeToString(h.Sum(nil))
	srcs, _ := filepath.Glob(filepath.Join(web, "src", "*.js"))
	if len(srcs) == 0 {
		t.Fatal("no sources under web/src")
	}
	for _, src := range srcs {
		out := filepath.Join("web", "static", filepath.Base(src))
		f, err := os.Open(out)
		if err != nil {
			t.Fatalf("%s has no bundle: run scripts/build-web.sh (%v)", src, err)
		}
		first, _ := bufio.NewReader(f).ReadString('\n')
		f.Close()
		if !strings.Contains(first, "(sources sha256 "+want+")") {
			t.Errorf("%s is stale: web/ changed since it was built; run scripts/build-web.sh and commit the result\nfirst line: %s\nsources sha256 %s", out, first, want)
		}
	}
}
