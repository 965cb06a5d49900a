// Package attack_test replays the break-ins of 2020–2024 against managed
// file transfer servers (Accellion FTA, GoAnywhere MFT, MOVEit Transfer,
// Cleo; DESIGN.md) against the running Ferry server, one attack class per
// file, and shows each failing. docs/SECURITY.md maps every chain step to
// the invariant that stops it and to the test here that proves it.
//
// The tests enumerate the route tables of internal/httpd (by reading its
// source: the tables are what the muxes serve), so a route added later is
// attacked too; a route a test has no data for fails the test by name until
// it is given some.
package attack_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/ferrytest"
)

// world is a running server with the cast of the attacks:
//
//	acme (org): admin; alice (user, list/read/write/delete/share on /finance);
//	carol (user, no grant); ext (external user of party Globex, whose folder
//	is /finance/2026). other (org): bob (admin).
//
// Files: /finance/2026/report.txt (alice's), /hr/salaries.txt (admin's).
type world struct {
	s                             target
	admin, alice, carol, ext, bob string // API tokens
}

// target is a running server, in this process or the real binary
// (startBinary).
type target interface {
	Run(stdin string, args ...string) (stdout, stderr string, err error)
	Admin(args ...string) string
	User(org, email, role string) string
	Do(method, path, token string, body io.Reader, hdr ...string) *http.Response
	URL() string        // the public listener
	HTTP() *http.Client // trusts the server's certificate
	Dir() string        // the data directory
	Stop()
}

type served struct{ *ferrytest.Server }

func (s served) URL() string        { return s.PublicURL }
func (s served) HTTP() *http.Client { return s.Client }
func (s served) Dir() string        { return s.Data }

const (
	reportPath = "/finance/2026/report.txt"
	reportBody = "ATTACK-MARKER-REPORT quarterly numbers"
	salaryPath = "/hr/salaries.txt"
	salaryBody = "ATTACK-MARKER-SALARIES the CEO earns a lot"

	alicePassword = "wombat battery staple horse 42"
)

func newWorld(t testing.TB, opts ...ferrytest.Option) *world {
	t.Helper()
	return populate(t, served{ferrytest.Start(t, opts...)})
}

// populate creates the cast and the files on a running server.
func populate(t testing.TB, s target) *world {
	t.Helper()
	w := &world{s: s}
	w.admin = s.User("acme", "admin@acme.test", "admin")
	s.Admin("party", "create", "--org", "acme", "Globex", "--contact", "legal@globex.test")
	s.Admin("folder", "create", "--org", "acme", "/finance/2026", "--party", "Globex")
	s.Admin("folder", "create", "--org", "acme", "/hr")
	if _, errOut, err := s.Run(alicePassword+"\n", "admin", "user", "create", "--org", "acme", "--email", "alice@acme.test", "--role", "user", "--password-stdin"); err != nil {
		t.Fatalf("create alice: %v %s", err, errOut)
	}
	w.alice = strings.TrimSpace(s.Admin("token", "create", "--user", "alice@acme.test"))
	s.Admin("grant", "--org", "acme", "--user", "alice@acme.test", "/finance", "list,read,write,delete,share")
	w.carol = s.User("acme", "carol@acme.test", "user")
	s.Admin("user", "create", "--org", "acme", "--email", "ext@globex.test", "--role", "external", "--party", "Globex")
	w.ext = strings.TrimSpace(s.Admin("token", "create", "--user", "ext@globex.test"))
	w.bob = s.User("other", "bob@other.test", "admin")
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files"+reportPath, w.alice, strings.NewReader(reportBody)), 201)
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files"+salaryPath, w.admin, strings.NewReader(salaryBody)), 201)
	return w
}

// auditLog returns the audit records, read with `ferry audit log --json`.
func auditLog(t testing.TB, s target, args ...string) []ferry.Event {
	t.Helper()
	out, errOut, err := s.Run("", append([]string{"audit", "log", "--json"}, args...)...)
	if err != nil {
		t.Fatalf("ferry audit log: %v\n%s", err, errOut)
	}
	var evs []ferry.Event
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "[") { // a JSON array instead of lines
			if err := json.Unmarshal([]byte(out), &evs); err != nil {
				t.Fatalf("audit log --json: %v", err)
			}
			return evs
		}
		var e ferry.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit log --json line %q: %v", line, err)
		}
		evs = append(evs, e)
	}
	return evs
}

// ---------------------------------------------------------------- routes

// routeTables reads the route tables of internal/httpd from its source:
// every {"METHOD /pattern", handler} element in a method of *public (the
// public listener) or *adminPlane (the admin listener and socket) that
// returns []route. Patterns built from constants ("POST " + base + "{$}")
// are evaluated.
func routeTables(t testing.TB) (pub, adm []string) {
	t.Helper()
	for _, r := range routeInfos(t) {
		if r.admin {
			adm = append(adm, r.pattern)
		} else {
			pub = append(pub, r.pattern)
		}
	}
	if len(pub) < 20 || len(adm) < 20 {
		t.Fatalf("found only %d public and %d admin routes in internal/httpd: has the route table's shape changed?", len(pub), len(adm))
	}
	return pub, adm
}

// routeInfo is one route of a table.
type routeInfo struct {
	pattern string
	admin   bool   // the admin plane's (else the public listener's)
	handler string // the method named in the handler expression (h.xxx)
	json    bool   // that method (or one it calls) decodes a JSON body
}

// routeInfos reads the route tables; see routeTables.
func routeInfos(t testing.TB) []routeInfo {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "httpd")
	fset := token.NewFileSet()
	var files []*ast.File
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse %s: %v", e.Name(), err)
		}
		files = append(files, f)
	}
	consts := map[string]string{}
	for _, f := range files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, sp := range gd.Specs {
				vs := sp.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							consts[n.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
		}
	}
	var eval func(e ast.Expr) (string, bool)
	eval = func(e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			if e.Kind != token.STRING {
				return "", false
			}
			s, err := strconv.Unquote(e.Value)
			return s, err == nil
		case *ast.Ident:
			s, ok := consts[e.Name]
			return s, ok
		case *ast.BinaryExpr:
			if e.Op != token.ADD {
				return "", false
			}
			a, ok1 := eval(e.X)
			b, ok2 := eval(e.Y)
			return a + b, ok1 && ok2
		case *ast.ParenExpr:
			return eval(e.X)
		}
		return "", false
	}
	// Which functions decode JSON: those calling decodeJSON, then those
	// calling one of them (to a fixed point). Methods are keyed by receiver
	// type ("adminPlane.createFolder"): both listeners have methods of the
	// same name.
	calls := map[string]map[string]bool{}
	for _, f := range files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			key, recv, rname := fd.Name.Name, "", ""
			if fd.Recv != nil && len(fd.Recv.List) == 1 {
				recv = types(fd.Recv.List[0].Type)
				key = recv + "." + fd.Name.Name
				if len(fd.Recv.List[0].Names) == 1 {
					rname = fd.Recv.List[0].Names[0].Name
				}
			}
			m := map[string]bool{}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.SelectorExpr:
					if id, ok := n.X.(*ast.Ident); ok && id.Name == rname && rname != "" {
						m[recv+"."+n.Sel.Name] = true
						return false
					}
				case *ast.Ident:
					m[n.Name] = true
				}
				return true
			})
			calls[key] = m
		}
	}
	decodes := map[string]bool{"decodeJSON": true}
	for changed := true; changed; {
		changed = false
		for fn, m := range calls {
			if decodes[fn] {
				continue
			}
			for c := range m {
				if decodes[c] && c != fn {
					decodes[fn], changed = true, true
					break
				}
			}
		}
	}
	method := regexp.MustCompile(`^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) /`)
	seen := map[string]bool{}
	var out []routeInfo
	for _, f := range files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv == nil || fd.Body == nil || fd.Type.Results == nil || len(fd.Type.Results.List) != 1 {
				continue
			}
			if at, ok := fd.Type.Results.List[0].Type.(*ast.ArrayType); !ok || types(at.Elt) != "route" {
				continue
			}
			recv := types(fd.Recv.List[0].Type)
			if recv != "public" && recv != "adminPlane" {
				continue
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				cl, ok := n.(*ast.CompositeLit)
				if !ok || len(cl.Elts) != 2 {
					return true
				}
				if cl.Type != nil && types(cl.Type) != "route" {
					return true
				}
				p, ok := eval(cl.Elts[0])
				if !ok || !method.MatchString(p) {
					return true
				}
				key := recv + " " + p
				if seen[key] {
					return true
				}
				seen[key] = true
				ri := routeInfo{pattern: p, admin: recv == "adminPlane"}
				// The handler: the last h.method named in the expression
				// (h.api(h.createToken) → createToken).
				ast.Inspect(cl.Elts[1], func(n ast.Node) bool {
					if se, ok := n.(*ast.SelectorExpr); ok {
						if id, ok := se.X.(*ast.Ident); ok && id.Name == "h" && calls[recv+"."+se.Sel.Name] != nil {
							ri.handler = se.Sel.Name
						}
					}
					return true
				})
				ri.json = decodes[recv+"."+ri.handler]
				out = append(out, ri)
				return true
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pattern < out[j].pattern })
	return out
}

// types names a (pointer to a) named type, or "".
func types(e ast.Expr) string {
	if s, ok := e.(*ast.StarExpr); ok {
		e = s.X
	}
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

var wildcard = regexp.MustCompile(`\{([A-Za-z_]+)(\.\.\.)?\}|\{\$\}`)

// splitPattern returns a pattern's method and path.
func splitPattern(p string) (method, path string) {
	method, path, _ = strings.Cut(p, " ")
	return method, path
}

// fill replaces a pattern's wildcards: {$} by nothing, {name...} by rest,
// any other {name} by one.
func fill(path, one, rest string) string {
	return wildcard.ReplaceAllStringFunc(path, func(m string) string {
		switch {
		case m == "{$}":
			return ""
		case strings.HasSuffix(m, "...}"):
			return rest
		}
		return one
	})
}

// do sends a request to base+path with optional bearer token and headers.
func do(t testing.TB, c *http.Client, method, url, tok string, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		req.Body = nil
		req.ContentLength = 0
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return res, ferrytest.Body(t, res)
}

// ci reports whether a missing tool must fail the test rather than skip it.
func ci() bool { return os.Getenv("CI") != "" }

// webLogin signs in through the login form and returns a client that keeps
// the session cookie and does not follow redirects.
func webLogin(t testing.TB, s target, email, password string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: s.HTTP().Transport, Jar: jar, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	form := url.Values{"email": {email}, "password": {password}}
	res, body := do(t, c, "POST", s.URL()+"/login", "", form.Encode(), "Content-Type", "application/x-www-form-urlencoded", "Origin", s.URL())
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("web login %s: %d %s", email, res.StatusCode, body)
	}
	return c
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// objects are alice's package, share link and watch, made through the API
// for the attacks that need real ids.
type objects struct {
	pkg, pkgFile string // a sent package (to alice herself and a guest) and its file
	draft        string // a draft package with a file, not sent
	share        string // a share link of /finance/2026/report.txt: id and secret
	shareTok     string
	watch        string // alice's watch of /finance/2026
}

const pkgBody = "ATTACK-MARKER-PACKAGE contract draft"

// makeObjects gives alice a sent package (to herself and a guest, so that
// she may also download it as a recipient), a draft, a share link and a
// watch.
func makeObjects(t testing.TB, s target, alice string) objects {
	t.Helper()
	var o objects
	mk := func(to string, send bool) (id, file string) {
		var pkg struct {
			ID           string `json:"id"`
			UploadFolder string `json:"upload_folder"`
			Files        []struct {
				ID string `json:"id"`
			} `json:"files"`
		}
		body := `{"to":[` + to + `],"subject":"Contract","message":"see attached"}`
		json.Unmarshal([]byte(ferrytest.Expect(t, s.Do("POST", "/api/v1/packages", alice, strings.NewReader(body), "Content-Type", "application/json"), 201)), &pkg)
		if pkg.ID == "" || pkg.UploadFolder == "" {
			t.Fatal("no package id or upload folder")
		}
		ferrytest.Expect(t, s.Do("PUT", "/api/v1/files"+pkg.UploadFolder+"/contract.txt", alice, strings.NewReader(pkgBody)), 201)
		if send {
			ferrytest.Expect(t, s.Do("POST", "/api/v1/packages/"+pkg.ID+"/send", alice, nil), 200)
		}
		json.Unmarshal([]byte(ferrytest.Expect(t, s.Do("GET", "/api/v1/packages/"+pkg.ID, alice, nil), 200)), &pkg)
		if len(pkg.Files) != 1 {
			t.Fatalf("package %s has %d files", pkg.ID, len(pkg.Files))
		}
		return pkg.ID, pkg.Files[0].ID
	}
	o.pkg, o.pkgFile = mk(`"alice@acme.test","partner@example.org"`, true)
	o.draft, _ = mk(`"partner@example.org"`, false)
	var sh struct{ ID, Token string }
	json.Unmarshal([]byte(ferrytest.Expect(t, s.Do("POST", "/api/v1/shares", alice, strings.NewReader(`{"path":"`+reportPath+`"}`), "Content-Type", "application/json"), 201)), &sh)
	var wt struct{ ID string }
	json.Unmarshal([]byte(ferrytest.Expect(t, s.Do("POST", "/api/v1/watches", alice, strings.NewReader(`{"path":"/finance/2026"}`), "Content-Type", "application/json"), 201)), &wt)
	if sh.ID == "" || sh.Token == "" || wt.ID == "" {
		t.Fatalf("share %q/%q, watch %q", sh.ID, sh.Token, wt.ID)
	}
	o.share, o.shareTok, o.watch = sh.ID, sh.Token, wt.ID
	return o
}

// replace fills {PKG}, {PFILE}, {DRAFT}, {SHARE}, {SHARETOK} and {WATCH}.
func (o objects) replace(s string) string {
	return strings.NewReplacer("{PKG}", o.pkg, "{PFILE}", o.pkgFile, "{DRAFT}", o.draft, "{SHARE}", o.share, "{SHARETOK}", o.shareTok, "{WATCH}", o.watch).Replace(s)
}
