package fence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

// module is Ferry's module path.
const module = "ferry.dev/ferry"

// rule is one row of the fence table: what one package of ours may import in
// its non-test code. Test files (_test.go) may import more; they are not
// linked into the server.
type rule struct {
	// allow lists the packages of ours (module-relative) the package may
	// import directly.
	allow []string
	// stdOnly: apart from allow, the package and everything it links may use
	// the standard library only.
	stdOnly bool
	// testHelper marks test support code that is not a _test.go file: only
	// other helpers may import it (tests always may), it is never linked into
	// the server, and it may use os/exec.
	testHelper bool
	// tool marks a separate program of ours that is not the server (a load
	// generator, say): it may use os/exec to drive the real binary.
	tool bool
}

// table is the import fence, per STYLE.md "Imports point inward": adapters
// (httpd, sftpd, cli, cmd) → transfer/auth/admin → db/blob/keys/audit → ferry.
// A package missing from it fails the test, so that each new package and each
// new edge is decided here, deliberately, and reviewed. validateTable checks
// every row against the invariants in forbiddenEdge.
//
// Rows for packages that STYLE.md plans, to copy when they are added:
//
//	"internal/blob/s3": {allow: []string{"internal/ferry", "internal/blob"}},
var table = map[string]rule{
	// The binary: main wires everything through cli.Run.
	"cmd/ferry": {allow: []string{"internal/cli"}},

	// The vocabulary: nothing of ours, nothing but the standard library.
	"internal/ferry":  {stdOnly: true},
	"internal/config": {allow: []string{"internal/ferry"}},

	// Stores and crypto: the inner ring.
	"internal/db":            {allow: []string{"internal/ferry"}},
	"internal/blob":          {allow: []string{"internal/ferry"}},
	"internal/blob/local":    {allow: []string{"internal/ferry", "internal/blob"}},
	"internal/keys":          {allow: []string{"internal/ferry"}, stdOnly: true},
	"internal/audit":         {allow: []string{"internal/ferry", "internal/db"}},
	"internal/db/dbtest":     {allow: []string{"internal/ferry", "internal/db"}, testHelper: true},
	"internal/blob/blobtest": {allow: []string{"internal/ferry", "internal/blob"}, testHelper: true},

	// Outbound HTTP for webhooks and OIDC discovery: a client whose dialer
	// refuses loopback, private and link-local targets unless allow-listed
	// (no SSRF). Standard library only.
	"internal/outbound": {stdOnly: true},
	// Mail: the durable outbox and its SMTP delivery (templates, retries).
	"internal/mail": {allow: []string{"internal/ferry", "internal/config", "internal/db"}},
	// The exfiltration guard: counters, freezes, canaries and alerts (by
	// audit record, mail and webhook).
	"internal/guard": {allow: []string{"internal/ferry", "internal/config", "internal/db", "internal/audit", "internal/mail", "internal/outbound"}},

	// The rules: transfer is the one path for file content (DESIGN 1).
	"internal/auth":     {allow: []string{"internal/ferry", "internal/config", "internal/db", "internal/audit", "internal/keys", "internal/mail", "internal/guard", "internal/outbound"}},
	"internal/transfer": {allow: []string{"internal/ferry", "internal/config", "internal/db", "internal/blob", "internal/keys", "internal/audit", "internal/auth", "internal/mail", "internal/guard"}},
	"internal/admin":    {allow: []string{"internal/ferry", "internal/config", "internal/db", "internal/blob", "internal/keys", "internal/audit", "internal/auth", "internal/transfer", "internal/mail", "internal/guard", "internal/outbound"}},

	// Adapters translate; they never touch the blob store, the keys or the
	// tables (DESIGN 1), so db, blob and keys are not allowed here.
	// httpd's admin UI names audit.Filter (the audit view's query); every
	// read of the log itself goes through internal/admin, audited.
	"internal/httpd": {allow: []string{"internal/ferry", "internal/config", "internal/auth", "internal/transfer", "internal/admin", "internal/audit", "docs"}},
	// sftpd speaks only transfer (file content) and auth (logins, which audit
	// themselves); it writes no audit record of its own.
	"internal/sftpd": {allow: []string{"internal/ferry", "internal/auth", "internal/transfer"}},

	// The Go client of the REST API, used by the ferry client commands and
	// the end-to-end tests.
	"internal/client": {allow: []string{"internal/ferry"}},

	// Wiring: cli builds every piece and starts the listeners; its client
	// commands speak to a server through internal/client only.
	"internal/cli": {allow: []string{"internal/ferry", "internal/config", "internal/db", "internal/blob", "internal/blob/local", "internal/keys", "internal/audit", "internal/auth", "internal/transfer", "internal/admin", "internal/httpd", "internal/sftpd", "internal/client", "internal/mail", "internal/guard", "internal/outbound"}},

	// ferrytest starts the whole server through the same cli.Run as main
	// (STYLE.md "A tiny main, tests that run the real program"): the one
	// importer of cli besides cmd/ferry, allowed because it is a test helper.
	"internal/ferrytest": {allow: []string{"internal/ferry", "internal/config", "internal/cli", "internal/db", "internal/db/dbtest", "internal/blob", "internal/blob/blobtest"}, testHelper: true},

	// Documents served as they are (docs/openapi.yaml): embedded bytes,
	// nothing of ours, nothing but the standard library.
	"docs": {stdOnly: true},

	// Test-only packages: no non-test code.
	"internal/fence": {},
	// The attack suite (issue 9): end-to-end attacks on the running server.
	"internal/attack": {},
	"bench":           {},

	// A load generator for the REST API: its own binary, which starts and
	// drives the real server, hence os/exec.
	"bench/rest": {tool: true},
	// The SFTP benchmark: starts the real binary and OpenSSH's sshd.
	"bench/sftp": {tool: true},
}

// forbidden are the packages the server binary must not link (DESIGN 3: it
// starts no processes; DESIGN 4: no gob, no XML, no RPC deserialisation; no
// plugins). A path below one of them (net/rpc/jsonrpc) counts too.
var forbidden = []string{"os/exec", "encoding/gob", "encoding/xml", "net/rpc", "plugin"}

// reviewedTransitive lists the third-party packages linked into the server
// that import a forbidden package, as "importer -> forbidden", each with why
// it is acceptable. Our own packages never appear here.
var reviewedTransitive = map[string]string{
	// modernc.org/sqlite is SQLite translated to Go; its libc implements C's
	// system(3) and popen(3) with os/exec. SQLite's library code (as opposed
	// to its shell) never calls them, and Ferry passes no SQL that could.
	"modernc.org/libc -> os/exec": "libc's system(3)/popen(3); never called by SQLite's library",
	// pgx registers a codec for PostgreSQL's xml type in its default type map.
	// It only runs when scanning or binding an xml column or a value
	// implementing xml.Marshaler; Ferry's schema has no xml columns and binds
	// no such values.
	"github.com/jackc/pgx/v5/pgtype -> encoding/xml": "pgx's codec for the xml column type, unused by Ferry",
	// go-mail (the SMTP client of internal/mail) can also hand a message to
	// a local sendmail binary (Msg.WriteToSendmail*), the only use of
	// os/exec in the package; Ferry sends over SMTP only and never calls it.
	"github.com/wneessen/go-mail -> os/exec": "go-mail's optional sendmail delivery, never called by Ferry",
}

func TestFenceTable(t *testing.T) {
	for _, v := range validateTable(table) {
		t.Error(v)
	}
}

func TestFence(t *testing.T) {
	g, err := load()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := g[module+"/cmd/ferry"]; !ok {
		t.Fatalf("go list did not report %s/cmd/ferry", module)
	}
	for _, v := range checkGraph(g, table, reviewedTransitive) {
		t.Error(v)
	}
	// A reviewed exception that no longer applies is only worth a note.
	used := map[string]bool{}
	for _, p := range closure(g, module+"/cmd/ferry") {
		if n := g[p]; n != nil {
			for _, imp := range n.Imports {
				used[p+" -> "+imp] = true
			}
		}
	}
	for k := range reviewedTransitive {
		if !used[k] {
			t.Logf("reviewedTransitive entry %q no longer applies: remove it", k)
		}
	}
}

// TestFenceCatchesViolations shows that the checks fail when they should: a
// fence that cannot fail guards nothing.
func TestFenceCatchesViolations(t *testing.T) {
	clean := func() graph {
		return fakeGraph(map[string][]string{
			"cmd/ferry":          {"internal/cli", "os"},
			"internal/cli":       {"internal/httpd", "internal/transfer", "internal/db", "internal/keys", "fmt", "example.com/sqlite"},
			"internal/httpd":     {"internal/transfer", "internal/ferry", "net/http"},
			"internal/transfer":  {"internal/db", "internal/keys", "internal/ferry"},
			"internal/db":        {"internal/ferry", "example.com/sqlite"},
			"internal/keys":      {"internal/ferry", "crypto/aes"},
			"internal/ferry":     {"errors"},
			"internal/ferrytest": {"internal/cli", "internal/db/dbtest", "os/exec", "testing"},
			"internal/db/dbtest": {"internal/db", "testing"},
			"example.com/sqlite": {"example.com/libc"},
			"example.com/libc":   {"os/exec", "os"},
		})
	}
	reviewed := map[string]string{"example.com/libc -> os/exec": "synthetic"}
	if v := checkGraph(clean(), table, reviewed); len(v) > 0 {
		t.Fatalf("clean synthetic graph reported:\n%s", strings.Join(v, "\n"))
	}

	cases := []struct {
		name     string
		change   func(g graph)
		reviewed map[string]string
		want     string
	}{
		{"adapter imports a store", func(g graph) { g.add("internal/httpd", "internal/db") }, reviewed,
			"internal/httpd imports internal/db"},
		{"store imports a higher layer", func(g graph) { g.add("internal/db", "internal/transfer") }, reviewed,
			"internal/db imports internal/transfer"},
		{"unknown package", func(g graph) {
			g.add("internal/cli", "internal/newpkg")
			g.add("internal/newpkg", "internal/ferry")
		}, reviewed, "internal/newpkg is not in the fence table"},
		{"vocabulary uses a third-party package", func(g graph) { g.add("internal/ferry", "example.com/sqlite") }, reviewed,
			"internal/ferry may use only the standard library"},
		{"keys reaches a third-party package transitively", func(g graph) {
			g.add("internal/keys", "example.com/helper")
			g.add("example.com/helper", "fmt")
		}, reviewed, "internal/keys may use only the standard library"},
		{"our package imports os/exec", func(g graph) { g.add("internal/transfer", "os/exec") }, reviewed,
			"internal/transfer imports os/exec"},
		{"our package imports encoding/gob", func(g graph) { g.add("internal/db", "encoding/gob") }, reviewed,
			"internal/db imports encoding/gob"},
		{"our package imports a net/rpc subpackage", func(g graph) { g.add("internal/httpd", "net/rpc/jsonrpc") }, reviewed,
			"internal/httpd imports net/rpc/jsonrpc"},
		{"unreviewed transitive import", func(g graph) {}, map[string]string{},
			"through example.com/libc, which imports os/exec"},
		{"server code imports a test helper", func(g graph) { g.add("internal/transfer", "internal/db/dbtest") }, reviewed,
			"internal/db/dbtest"},
		{"server links package testing", func(g graph) { g.add("example.com/sqlite", "testing") }, reviewed,
			"links package testing"},
		{"go list error", func(g graph) { g[module+"/internal/db"].Error = &listError{Err: "syntax error"} }, reviewed,
			"syntax error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := clean()
			c.change(g)
			v := checkGraph(g, table, c.reviewed)
			if !slices.ContainsFunc(v, func(s string) bool { return strings.Contains(s, c.want) }) {
				t.Errorf("want a violation containing %q, got:\n%s", c.want, strings.Join(v, "\n"))
			}
		})
	}
}

// TestFenceTableCatchesViolations shows that validateTable rejects rows that
// break the layering, whatever the table says.
func TestFenceTableCatchesViolations(t *testing.T) {
	cases := []struct {
		from, to string
		want     string
	}{
		{"internal/ferry", "internal/config", "imports nothing of ours"},
		{"internal/db", "internal/transfer", "may import only"},
		{"internal/keys", "internal/db", "may import only"},
		{"internal/blob/local", "internal/audit", "may import only"},
		{"internal/blob", "internal/blob/blobtest", "test helper"},
		{"internal/transfer", "internal/httpd", "adapter"},
		{"internal/admin", "internal/httpd", "adapter"},
		{"internal/auth", "internal/cli", "only cmd/ferry"},
		{"internal/httpd", "internal/sftpd", "never import each other"},
		{"internal/sftpd", "internal/httpd", "never import each other"},
		{"internal/httpd", "internal/cli", "only cmd/ferry"},
		{"internal/cli", "internal/ferrytest", "test helper"},
		{"internal/httpd", "internal/nosuch", "not in the table"},
	}
	for _, c := range cases {
		t.Run(c.from+"->"+c.to, func(t *testing.T) {
			tb := map[string]rule{}
			for k, r := range table {
				tb[k] = r
			}
			if _, ok := tb[c.from]; !ok {
				tb[c.from] = rule{}
			}
			if c.to == "internal/sftpd" || c.from == "internal/sftpd" {
				tb["internal/sftpd"] = rule{allow: tb["internal/sftpd"].allow}
			}
			r := tb[c.from]
			r.allow = append(slices.Clone(r.allow), c.to)
			tb[c.from] = r
			v := validateTable(tb)
			if !slices.ContainsFunc(v, func(s string) bool { return strings.Contains(s, c.want) }) {
				t.Errorf("want a violation containing %q, got:\n%s", c.want, strings.Join(v, "\n"))
			}
		})
	}
}

// graph maps an import path to what go list reported about it.
type graph map[string]*pkg

type pkg struct {
	ImportPath string
	Standard   bool
	Imports    []string
	Error      *listError
}

type listError struct{ Err string }

// add adds an import edge to a synthetic graph (module-relative names for our
// packages), creating the imported package if needed.
func (g graph) add(from, to string) {
	f, tt := fakePath(from), fakePath(to)
	if g[f] == nil {
		g[f] = &pkg{ImportPath: f}
	}
	g[f].Imports = append(g[f].Imports, tt)
	if g[tt] == nil {
		g[tt] = &pkg{ImportPath: tt, Standard: isStdPath(tt)}
	}
}

func fakePath(p string) string {
	if strings.HasPrefix(p, "internal/") || strings.HasPrefix(p, "cmd/") {
		return module + "/" + p
	}
	return p
}

func isStdPath(p string) bool {
	return !strings.Contains(strings.Split(p, "/")[0], ".")
}

func fakeGraph(edges map[string][]string) graph {
	g := graph{}
	for from, tos := range edges {
		if g[fakePath(from)] == nil {
			g[fakePath(from)] = &pkg{ImportPath: fakePath(from), Standard: isStdPath(fakePath(from))}
		}
		for _, to := range tos {
			g.add(from, to)
		}
	}
	return g
}

// load runs go list over all of the module's packages and what they link
// (non-test imports only).
func load() (graph, error) {
	cmd := exec.Command("go", "list", "-e", "-deps", "-json=ImportPath,Standard,Imports,Error", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %v\n%s", err, stderr.Bytes())
	}
	g := graph{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list output: %v", err)
		}
		g[p.ImportPath] = &p
	}
	return g, nil
}

func ours(path string) (rel string, ok bool) {
	if path == module {
		return ".", true
	}
	return strings.CutPrefix(path, module+"/")
}

func isForbidden(path string) bool {
	for _, f := range forbidden {
		if path == f || strings.HasPrefix(path, f+"/") {
			return true
		}
	}
	return false
}

// closure returns root and every package it links, in a stable order.
func closure(g graph, root string) []string {
	seen := map[string]bool{}
	var out []string
	var walk func(string)
	walk = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		out = append(out, p)
		if n := g[p]; n != nil {
			for _, imp := range n.Imports {
				walk(imp)
			}
		}
	}
	walk(root)
	return out
}

// chain returns an import chain from root to target, for messages.
func chain(g graph, root, target string) string {
	prev := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == target {
			var path []string
			for q := p; q != ""; q = prev[q] {
				path = append(path, q)
			}
			slices.Reverse(path)
			return strings.Join(path, " → ")
		}
		if n := g[p]; n != nil {
			for _, imp := range n.Imports {
				if _, ok := prev[imp]; !ok {
					prev[imp] = p
					queue = append(queue, imp)
				}
			}
		}
	}
	return target
}

// checkGraph returns every violation of the fence in g.
func checkGraph(g graph, table map[string]rule, reviewed map[string]string) []string {
	var v []string
	add := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }

	paths := make([]string, 0, len(g))
	for p := range g {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	for _, path := range paths {
		p := g[path]
		rel, isOurs := ours(path)
		if !isOurs {
			continue
		}
		if p.Error != nil {
			add("go list: %s: %s", rel, p.Error.Err)
		}
		r, known := table[rel]
		if !known {
			add("package %s is not in the fence table: add a row for it to table in internal/fence/fence_test.go, naming the packages of ours it may import (STYLE.md \"Imports point inward\")", rel)
			continue
		}
		for _, imp := range p.Imports {
			if isForbidden(imp) && !(imp == "os/exec" && (r.testHelper || r.tool)) {
				add("%s imports %s: forbidden in Ferry's code (DESIGN invariants 3 and 4)", rel, imp)
			}
			irel, impOurs := ours(imp)
			if !impOurs {
				continue
			}
			if !slices.Contains(r.allow, irel) {
				add("%s imports %s, which the fence table does not allow (it may import: %s); if the new edge is right, add it to the table", rel, irel, strings.Join(r.allow, ", "))
			}
			if ir, ok := table[irel]; ok && ir.testHelper && !r.testHelper {
				add("%s imports test helper %s in non-test code", rel, irel)
			}
		}
		if r.stdOnly {
			for _, dep := range closure(g, path)[1:] {
				d := g[dep]
				// "C" is cgo as the standard library's net and os/user
				// use it (go list does not mark it Standard).
				if _, depOurs := ours(dep); depOurs || (d != nil && d.Standard) || dep == "C" {
					continue
				}
				add("%s may use only the standard library (and %s), but links %s: %s", rel, strings.Join(r.allow, ", "), dep, chain(g, path, dep))
			}
		}
	}

	// What the server binary links.
	root := module + "/cmd/ferry"
	if g[root] == nil {
		return v
	}
	for _, dep := range closure(g, root) {
		if dep == "testing" {
			add("the server links package testing: %s", chain(g, root, dep))
		}
		rel, depOurs := ours(dep)
		if depOurs {
			if r, ok := table[rel]; ok && r.testHelper {
				add("the server links test helper %s: %s", rel, chain(g, root, dep))
			}
			continue // our own imports are checked above
		}
		d := g[dep]
		if d == nil {
			continue
		}
		for _, imp := range d.Imports {
			if !isForbidden(imp) {
				continue
			}
			if _, ok := reviewed[dep+" -> "+imp]; !ok {
				add("the server links %s through %s, which imports %s: drop that dependency, or review it and add %q to reviewedTransitive with the reason (%s)",
					imp, dep, imp, dep+" -> "+imp, chain(g, root, dep))
			}
		}
	}
	return v
}

// top returns the directory that owns a package of ours: internal/blob for
// internal/blob/local.
func top(rel string) string {
	parts := strings.Split(rel, "/")
	if len(parts) >= 2 {
		return parts[0] + "/" + parts[1]
	}
	return rel
}

// forbiddenEdge says why from may never import to, whatever the table says,
// or returns "". These are STYLE.md's and DESIGN.md's rules; the table may only
// be narrower.
func forbiddenEdge(table map[string]rule, from, to string) string {
	fr, tr := table[from], table[to]
	switch {
	case from == "internal/ferry":
		return "internal/ferry imports nothing of ours"
	case tr.testHelper && !fr.testHelper:
		return "test helper " + to + " may be imported only by tests and other test helpers"
	case top(to) == "internal/cli" && from != "cmd/ferry" && !fr.testHelper:
		return "only cmd/ferry (and test helpers that start the server) may import internal/cli"
	case (top(from) == "internal/httpd" && top(to) == "internal/sftpd") || (top(from) == "internal/sftpd" && top(to) == "internal/httpd"):
		return "httpd and sftpd never import each other"
	}
	switch top(from) {
	case "internal/db", "internal/blob", "internal/keys", "internal/audit":
		if fr.testHelper {
			return ""
		}
		if to == "internal/ferry" || top(to) == top(from) || (top(from) == "internal/audit" && to == "internal/db") {
			return ""
		}
		return top(from) + " may import only internal/ferry and its own subpackages (audit also internal/db)"
	case "internal/transfer", "internal/auth", "internal/admin":
		switch top(to) {
		case "internal/httpd", "internal/sftpd", "internal/cli":
			return top(from) + " must not import the adapter " + top(to)
		}
	}
	return ""
}

// validateTable checks that every row of the table names known packages and
// keeps to forbiddenEdge.
func validateTable(table map[string]rule) []string {
	var v []string
	froms := make([]string, 0, len(table))
	for k := range table {
		froms = append(froms, k)
	}
	sort.Strings(froms)
	for _, from := range froms {
		r := table[from]
		if r.stdOnly && slices.ContainsFunc(r.allow, func(s string) bool { return s != "internal/ferry" }) {
			v = append(v, fmt.Sprintf("%s: stdOnly packages may import only internal/ferry of ours", from))
		}
		for _, to := range r.allow {
			if _, ok := table[to]; !ok {
				v = append(v, fmt.Sprintf("table: %s allows %s, which is not in the table", from, to))
			}
			if why := forbiddenEdge(table, from, to); why != "" {
				v = append(v, fmt.Sprintf("table: %s may not import %s: %s", from, to, why))
			}
		}
	}
	return v
}
