package db_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// This file enforces DESIGN invariant 2, "No SQL built from values": in every
// non-test Go file of the module, the query given to a method named Exec,
// Query, QueryRow or Prepare (with or without Context) must be a constant
// expression — a string literal, a constant, or a + of those — and no
// fmt.Sprint/Sprintf formats a string that starts like SQL. A reviewed
// exception needs the comment
//
//	// sqllint: reviewed — REASON
//
// on the line just above the call.
//
// It reads source only (go/parser, no type checking), so it knows methods by
// name. Two kinds of call are known not to take SQL and are left alone: a call
// on a package name (audit.Query(ctx, db, filter, fn)), and a call on a
// variable assigned from Prepare/PrepareContext/Stmt/StmtContext in the same
// function (a prepared statement's Exec takes arguments only; its SQL was
// checked at Prepare).

// sqlMethods are the method names whose query argument is checked.
var sqlMethods = map[string]bool{
	"Exec": true, "ExecContext": true,
	"Query": true, "QueryContext": true,
	"QueryRow": true, "QueryRowContext": true,
	"Prepare": true, "PrepareContext": true,
}

// stmtMethods return prepared statements.
var stmtMethods = map[string]bool{"Prepare": true, "PrepareContext": true, "Stmt": true, "StmtContext": true}

var (
	majorRE    = regexp.MustCompile(`^v[0-9]+$`)
	reviewedRE = regexp.MustCompile(`^//\s*sqllint:\s*reviewed\b`)
	reasonRE   = regexp.MustCompile(`^//\s*sqllint:\s*reviewed\s*(—|–|--|-|:)\s*\S`)
	// sqlStartRE matches text that starts like a SQL statement: SELECT in
	// capitals, or a keyword with what must follow it in SQL (so that "DELETE
	// /api/v1/files/%s" or "select a file" are not taken for SQL).
	sqlStartRE = regexp.MustCompile(`^(SELECT\s|(?is:select\s.*\sfrom\s|insert\s+into\s|update\s+\S+\s+set\s|delete\s+from\s|(create|drop|alter)\s+(table|index|unique|database|schema|view|role|user|extension|sequence|trigger|function|type|temp|temporary|or)\s))`)
)

func TestNoSQLBuiltFromValues(t *testing.T) {
	root, modPath := moduleRoot(t)
	pkgs, err := parseModule(root, modPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) == 0 {
		t.Fatalf("no Go packages found under %s", root)
	}
	checked := 0
	for _, f := range lintModule(pkgs) {
		t.Errorf("%s", f)
	}
	for _, p := range pkgs {
		checked += len(p.files)
	}
	t.Logf("checked %d non-test files in %d packages", checked, len(pkgs))
}

// TestSQLLintCatchesViolations shows the linter failing on SQL built from
// values and passing constant SQL: a linter that cannot fail guards nothing.
func TestSQLLintCatchesViolations(t *testing.T) {
	const src = `package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"example.com/audit"
)

const cols = "id, name"

const byName = "SELECT " + cols + " FROM users WHERE name = $1"

type DB struct{ sql *sql.DB }

func (d *DB) bad(ctx context.Context, x, userInput, table string, ids []string) {
	d.sql.Exec(fmt.Sprintf("SELECT * FROM t WHERE id = %s", x)) // want
	d.sql.Query("SELECT " + userInput)                           // want
	d.sql.QueryContext(ctx, "DELETE FROM "+table)                // want
	q := byName
	d.sql.QueryRowContext(ctx, q, x)                              // want
	d.sql.ExecContext(ctx, strings.Join(ids, ";"))                // want
	d.sql.Prepare(table)                                          // want
	tx, _ := d.sql.BeginTx(ctx, nil)
	tx.ExecContext(context.Background(), "UPDATE t SET a = "+x) // want
	s := fmt.Sprintf("insert into t values (%s)", x)              // want
	_ = fmt.Sprint("DROP TABLE ", table)                          // want
	// sqllint: reviewed
	d.sql.Exec(x) // want (a reviewed comment needs a reason)
	_ = s
}

func (d *DB) good(ctx context.Context, name string) {
	const local = "DELETE FROM t WHERE id = $1"
	d.sql.Exec("CREATE TABLE t (id TEXT)")
	d.sql.QueryContext(ctx, byName, name)
	d.sql.QueryRowContext(ctx, "SELECT "+cols+" FROM users WHERE id = $1", name)
	d.sql.ExecContext(ctx, local, name)
	d.sql.ExecContext(ctx, (local), name)
	d.sql.Exec(` + "`UPDATE t SET a = 1 WHERE id = $1`" + `, name)
	st, _ := d.sql.PrepareContext(ctx, byName)
	st.ExecContext(ctx, name)
	st.QueryRow(name)
	audit.Query(ctx, d, name, nil)
	_ = fmt.Sprintf("DELETE /api/v1/files/%s", name)
	_ = fmt.Sprintf("select a file: %s", name)
	// sqllint: reviewed — identifiers cannot be bound; name is hex digits only
	d.sql.Exec("CREATE DATABASE " + name)
	_ = strings.ToUpper(name)
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "store.go", src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	p := &lintPkg{importPath: "example.com/store", fset: fset, files: []*ast.File{f}}
	got := map[int]string{}
	for _, fd := range lintModule([]*lintPkg{p}) {
		got[fd.pos.Line] = fd.msg
	}
	want := map[int]bool{}
	for i, line := range strings.Split(src, "\n") {
		if strings.Contains(line, "// want") {
			want[i+1] = true
		}
	}
	if len(want) != 10 {
		t.Fatalf("test source has %d want lines, expected 10", len(want))
	}
	for line := range want {
		if _, ok := got[line]; !ok {
			t.Errorf("store.go:%d: not reported: %s", line, strings.TrimSpace(strings.Split(src, "\n")[line-1]))
		}
	}
	for line, msg := range got {
		if !want[line] {
			t.Errorf("store.go:%d: reported but constant: %s", line, msg)
		}
	}
}

type lintPkg struct {
	importPath string
	fset       *token.FileSet
	files      []*ast.File
}

type finding struct {
	pos token.Position
	msg string
}

func (f finding) String() string { return fmt.Sprintf("%s: %s", f.pos, f.msg) }

// moduleRoot finds the directory holding go.mod, above the test's directory,
// and the module path it declares.
func moduleRoot(t *testing.T) (dir, modPath string) {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
					return dir, strings.Trim(strings.TrimSpace(rest), `"`)
				}
			}
			t.Fatalf("%s/go.mod declares no module", dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// parseModule parses every non-test .go file of the module, by directory,
// leaving out testdata, vendor, hidden and _ directories and nested modules.
func parseModule(root, modPath string) ([]*lintPkg, error) {
	fset := token.NewFileSet()
	byDir := map[string]*lintPkg{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root {
				if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
					return filepath.SkipDir
				}
				if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, filepath.ToSlash(rel), src, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		dir := filepath.Dir(p)
		if byDir[dir] == nil {
			rel, _ := filepath.Rel(root, dir)
			ip := modPath
			if rel != "." {
				ip = path.Join(modPath, filepath.ToSlash(rel))
			}
			byDir[dir] = &lintPkg{importPath: ip, fset: fset}
		}
		byDir[dir].files = append(byDir[dir].files, f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []*lintPkg
	for _, p := range byDir {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].importPath < out[j].importPath })
	return out, nil
}

// lintModule checks every package; constants of other packages in the set may
// be referred to as pkg.Name.
func lintModule(pkgs []*lintPkg) []finding {
	consts := map[string]map[string]ast.Expr{} // import path → const name → value
	for _, p := range pkgs {
		consts[p.importPath] = pkgConsts(p.files)
	}
	var out []finding
	for _, p := range pkgs {
		for _, f := range p.files {
			out = append(out, lintFile(p.fset, f, consts[p.importPath], consts)...)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].pos, out[j].pos
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		return a.Line < b.Line
	})
	return out
}

// pkgConsts collects the package-level constants of files with their values
// (nil when the value is implicit, as in iota blocks).
func pkgConsts(files []*ast.File) map[string]ast.Expr {
	m := map[string]ast.Expr{}
	for _, f := range files {
		for _, d := range f.Decls {
			if gd, ok := d.(*ast.GenDecl); ok && gd.Tok == token.CONST {
				addConsts(m, gd)
			}
		}
	}
	return m
}

func addConsts(m map[string]ast.Expr, gd *ast.GenDecl) {
	for _, s := range gd.Specs {
		vs := s.(*ast.ValueSpec)
		for i, n := range vs.Names {
			var v ast.Expr
			if i < len(vs.Values) {
				v = vs.Values[i]
			}
			m[n.Name] = v
		}
	}
}

// scope is what the linter knows inside one top-level declaration.
type scope struct {
	pkg     map[string]ast.Expr            // package constants
	local   map[string]ast.Expr            // constants declared in the function
	vars    map[string]bool                // names declared as variables or parameters in the function
	stmts   map[string]bool                // variables holding prepared statements
	imports map[string]string              // file's import names → paths
	other   map[string]map[string]ast.Expr // constants of the module's packages by import path
}

func lintFile(fset *token.FileSet, f *ast.File, pkg map[string]ast.Expr, other map[string]map[string]ast.Expr) []finding {
	imports := map[string]string{}
	for _, is := range f.Imports {
		p, _ := strconv.Unquote(is.Path.Value)
		name := importName(p)
		if is.Name != nil {
			name = is.Name.Name
		}
		imports[name] = p
	}
	// Lines holding a "sqllint: reviewed" comment, and whether it gives a reason.
	reviewed := map[int]bool{}
	for _, cg := range f.Comments {
		for _, c := range cg.List {
			if reviewedRE.MatchString(c.Text) {
				reviewed[fset.Position(c.Slash).Line] = reasonRE.MatchString(c.Text)
			}
		}
	}

	var out []finding
	report := func(n ast.Node, msg string) {
		pos := fset.Position(n.Pos())
		if ok, found := reviewed[pos.Line-1]; found {
			if ok {
				return
			}
			msg += " (the sqllint: reviewed comment above it gives no reason)"
		}
		out = append(out, finding{pos, msg})
	}

	for _, d := range f.Decls {
		sc := &scope{pkg: pkg, local: map[string]ast.Expr{}, vars: map[string]bool{}, stmts: map[string]bool{}, imports: imports, other: other}
		if fd, ok := d.(*ast.FuncDecl); ok {
			collectScope(sc, fd)
		}
		ast.Inspect(d, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if isPkg(sc, sel.X, "fmt") && (sel.Sel.Name == "Sprintf" || sel.Sel.Name == "Sprint" || sel.Sel.Name == "Sprintln") && len(call.Args) > 0 {
				if s, ok := constString(sc, call.Args[0], 0); ok && sqlStartRE.MatchString(strings.TrimLeft(s, " \t\r\n(")) {
					report(call, fmt.Sprintf("fmt.%s formats SQL (%q): SQL text must be constant, with values as bound parameters", sel.Sel.Name, abbrev(s)))
				}
				return true
			}
			if !sqlMethods[sel.Sel.Name] || receiverNotSQL(sc, sel.X) {
				return true
			}
			i := 0
			if strings.HasSuffix(sel.Sel.Name, "Context") || (len(call.Args) > 1 && looksLikeContext(sc, call.Args[0])) {
				i = 1
			}
			if i >= len(call.Args) || notAString(call.Args[i]) {
				return true
			}
			if !isConst(sc, call.Args[i], 0) {
				report(call, fmt.Sprintf("%s called with non-constant SQL %s: SQL text must be constant, with values as bound parameters (DESIGN invariant 2); a reviewed exception needs `// sqllint: reviewed — REASON` on the line above", sel.Sel.Name, render(fset, call.Args[i])))
			}
			return true
		})
	}
	return out
}

// collectScope records a function's local constants, its variables and
// parameters, and which variables hold prepared statements.
func collectScope(sc *scope, fd *ast.FuncDecl) {
	fields := func(fl *ast.FieldList) {
		if fl == nil {
			return
		}
		for _, f := range fl.List {
			for _, n := range f.Names {
				sc.vars[n.Name] = true
			}
		}
	}
	fields(fd.Recv)
	fields(fd.Type.Params)
	fields(fd.Type.Results)
	ast.Inspect(fd, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncLit:
			fields(n.Type.Params)
			fields(n.Type.Results)
		case *ast.GenDecl:
			switch n.Tok {
			case token.CONST:
				addConsts(sc.local, n)
			case token.VAR:
				for _, s := range n.Specs {
					for _, nm := range s.(*ast.ValueSpec).Names {
						sc.vars[nm.Name] = true
					}
				}
			}
		case *ast.AssignStmt:
			if n.Tok == token.DEFINE {
				for _, l := range n.Lhs {
					if id, ok := l.(*ast.Ident); ok {
						sc.vars[id.Name] = true
					}
				}
			}
			if len(n.Rhs) == 1 {
				if c, ok := n.Rhs[0].(*ast.CallExpr); ok {
					if s, ok := c.Fun.(*ast.SelectorExpr); ok && stmtMethods[s.Sel.Name] {
						if id, ok := n.Lhs[0].(*ast.Ident); ok {
							sc.stmts[id.Name] = true
						}
					}
				}
			}
		case *ast.RangeStmt:
			for _, e := range []ast.Expr{n.Key, n.Value} {
				if id, ok := e.(*ast.Ident); ok {
					sc.vars[id.Name] = true
				}
			}
		}
		return true
	})
}

// receiverNotSQL reports calls that are known not to take SQL: functions of
// an imported package, and methods of prepared statements.
func receiverNotSQL(sc *scope, x ast.Expr) bool {
	id, ok := x.(*ast.Ident)
	if !ok {
		return false
	}
	if sc.stmts[id.Name] {
		return true
	}
	_, imported := sc.imports[id.Name]
	return imported && !sc.vars[id.Name]
}

// isPkg reports whether x names the imported package with the given path.
func isPkg(sc *scope, x ast.Expr, importPath string) bool {
	id, ok := x.(*ast.Ident)
	return ok && sc.imports[id.Name] == importPath && !sc.vars[id.Name]
}

// isConst reports whether e is a constant expression: a literal, a constant,
// a constant of another package of the module, or a + or () of those.
func isConst(sc *scope, e ast.Expr, depth int) bool {
	if depth > 50 {
		return false
	}
	switch e := e.(type) {
	case *ast.BasicLit:
		return true
	case *ast.ParenExpr:
		return isConst(sc, e.X, depth+1)
	case *ast.BinaryExpr:
		return e.Op == token.ADD && isConst(sc, e.X, depth+1) && isConst(sc, e.Y, depth+1)
	case *ast.Ident:
		if _, ok := sc.local[e.Name]; ok {
			return true
		}
		if sc.vars[e.Name] {
			return false
		}
		_, ok := sc.pkg[e.Name]
		return ok
	case *ast.SelectorExpr:
		id, ok := e.X.(*ast.Ident)
		if !ok || sc.vars[id.Name] {
			return false
		}
		p, ok := sc.imports[id.Name]
		if !ok {
			return false
		}
		_, ok = sc.other[p][e.Sel.Name]
		return ok
	}
	return false
}

// constString evaluates a constant string expression where it can.
func constString(sc *scope, e ast.Expr, depth int) (string, bool) {
	if depth > 50 || e == nil {
		return "", false
	}
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.ParenExpr:
		return constString(sc, e.X, depth+1)
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		a, ok1 := constString(sc, e.X, depth+1)
		b, ok2 := constString(sc, e.Y, depth+1)
		return a + b, ok1 && ok2
	case *ast.Ident:
		if v, ok := sc.local[e.Name]; ok {
			return constString(sc, v, depth+1)
		}
		if sc.vars[e.Name] {
			return "", false
		}
		if v, ok := sc.pkg[e.Name]; ok {
			return constString(sc, v, depth+1)
		}
	}
	return "", false
}

// looksLikeContext guesses whether a first argument is a context.Context:
// ctx-like names, context.X(...) and x.Context().
func looksLikeContext(sc *scope, e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.Ident:
		n := strings.ToLower(e.Name)
		return n == "ctx" || strings.HasSuffix(n, "ctx") || strings.HasPrefix(n, "ctx")
	case *ast.CallExpr:
		if s, ok := e.Fun.(*ast.SelectorExpr); ok {
			return isPkg(sc, s.X, "context") || s.Sel.Name == "Context"
		}
	}
	return false
}

// notAString reports arguments that plainly are not SQL text.
func notAString(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.CompositeLit, *ast.FuncLit:
		return true
	case *ast.UnaryExpr:
		return e.Op == token.AND
	case *ast.BasicLit:
		return e.Kind != token.STRING
	}
	return false
}

func importName(p string) string {
	parts := strings.Split(p, "/")
	name := parts[len(parts)-1]
	if len(parts) > 1 && majorRE.MatchString(name) {
		name = parts[len(parts)-2]
	}
	name = strings.TrimPrefix(name, "go-")
	if i := strings.IndexAny(name, ".-"); i >= 0 {
		name = name[:i]
	}
	return name
}

func render(fset *token.FileSet, e ast.Expr) string {
	var b strings.Builder
	if err := printer.Fprint(&b, fset, e); err != nil {
		return fmt.Sprintf("%T", e)
	}
	return abbrev(b.String())
}

func abbrev(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}
