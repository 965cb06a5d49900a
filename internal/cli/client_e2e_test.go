package cli_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ferry.dev/ferry/internal/cli"
	"ferry.dev/ferry/internal/ferrytest"
)

// clientEnv is a server with org acme, folders /finance, /reports and /hr,
// and alice, who may list, read, write and delete in /finance, list and read
// in /reports, and cannot see /hr.
type clientEnv struct {
	s     *ferrytest.Server
	alice string
	home  string // XDG_CONFIG_HOME for the client
	vars  map[string]string
}

func newClientEnv(t *testing.T) *clientEnv {
	t.Helper()
	s := ferrytest.Start(t)
	s.User("acme", "admin@acme.test", "admin")
	s.Admin("folder", "create", "--org", "acme", "/finance")
	s.Admin("folder", "create", "--org", "acme", "/hr")
	s.Admin("folder", "create", "--org", "acme", "/reports")
	alice := s.User("acme", "alice@acme.test", "user")
	s.Admin("grant", "--org", "acme", "--user", "alice@acme.test", "/finance", "list,read,write,delete")
	s.Admin("grant", "--org", "acme", "--user", "alice@acme.test", "/reports", "list,read")
	home := t.TempDir()
	return &clientEnv{s: s, alice: alice, home: home, vars: map[string]string{
		"XDG_CONFIG_HOME": home,
		"FERRY_SERVER":    s.PublicURL,
		"FERRY_TOKEN":     alice,
		"FERRY_CA":        s.CA(),
	}}
}

// run runs `ferry args…` in-process with the environment's variables.
func (c *clientEnv) run(stdin string, args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	err = cli.Run(context.Background(), args, cli.Env{
		Getenv: func(k string) string { return c.vars[k] },
		Stdin:  strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
	})
	return out.String(), errb.String(), err
}

// ok runs a command that must succeed and returns its stdout.
func (c *clientEnv) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := c.run("", args...)
	if err != nil {
		t.Fatalf("ferry %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}

func writeRandom(t *testing.T, p string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// records parses --json output.
func records(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	dec := json.NewDecoder(strings.NewReader(out))
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return recs
		} else if err != nil {
			t.Fatalf("--json output is not JSON lines: %v\n%s", err, out)
		}
		recs = append(recs, m)
	}
}

func TestClientLogin(t *testing.T) {
	c := newClientEnv(t)
	// Nothing but the config dir in the environment: what login stores is used.
	c.vars = map[string]string{"XDG_CONFIG_HOME": c.home}
	if _, _, err := c.run("", "ls", "/finance"); err == nil || !strings.Contains(err.Error(), "ferry login") {
		t.Fatalf("ls before login: %v", err)
	}
	// The token from stdin (not a terminal: one line, no prompt).
	out, errOut, err := c.run(c.alice+"\n", "login", "--server", c.s.PublicURL, "--ca", c.s.CA())
	if err != nil {
		t.Fatalf("login: %v\n%s", err, errOut)
	}
	if want := "logged in to " + c.s.PublicURL + " as alice@acme.test (acme)\n"; out != want {
		t.Errorf("login printed %q, want %q", out, want)
	}
	cred := filepath.Join(c.home, "ferry", "credentials.json")
	fi, err := os.Stat(cred)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", fi, err)
	}
	if di, _ := os.Stat(filepath.Dir(cred)); di.Mode().Perm() != 0o700 {
		t.Errorf("config dir mode %v", di.Mode())
	}
	if got := c.ok(t, "ls", "/"); got != "finance/\nreports/\n" {
		t.Errorf("ls / after login = %q", got)
	}

	// A wrong token: the API's message, and nothing stored.
	before, _ := os.ReadFile(cred)
	_, _, err = c.run("", "login", "--server", c.s.PublicURL, "--ca", c.s.CA(), "--token", "ferry_0123456789abcdef_nope")
	if err == nil || !strings.Contains(err.Error(), "unauthenticated: ") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("login with a wrong token: %v", err)
	}
	if after, _ := os.ReadFile(cred); !bytes.Equal(before, after) {
		t.Error("a failed login changed the stored credentials")
	}
	// A flag beats what is stored.
	if _, _, err := c.run("", "ls", "--token", "ferry_0123456789abcdef_nope", "/"); err == nil || !strings.HasPrefix(err.Error(), "ls /: unauthenticated: ") {
		t.Errorf("ls with a wrong --token: %v", err)
	}
	var ue *cli.UsageError
	if _, _, err := c.run("", "login"); !errors.As(err, &ue) {
		t.Errorf("login without --server: %v, want a usage error", err)
	}
}

func TestClientCommands(t *testing.T) {
	c := newClientEnv(t)
	dir := t.TempDir()
	one := writeRandom(t, filepath.Join(dir, "one.bin"), 100_000)
	writeRandom(t, filepath.Join(dir, "tree", "a.txt"), 10)
	deep := writeRandom(t, filepath.Join(dir, "tree", "sub", "b.bin"), 300_000)
	if err := os.WriteFile(filepath.Join(dir, "tree", "empty.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	c.ok(t, "mkdir", "-p", "/finance/2026/q4")
	c.ok(t, "mkdir", "/finance/2026/q3")
	if _, _, err := c.run("", "mkdir", "/finance/2026/q3"); err == nil || !strings.Contains(err.Error(), "exist") {
		t.Errorf("mkdir of an existing folder: %v", err)
	}
	c.ok(t, "mkdir", "-p", "/finance/2026/q3") // fine with -p

	// One file to a new name, with --json and a small chunk size.
	out := c.ok(t, "put", "--json", "--chunk-size", "32KiB", filepath.Join(dir, "one.bin"), "/finance/2026/q4/renamed.bin")
	recs := records(t, out)
	if len(recs) != 1 || recs[0]["op"] != "put" || recs[0]["remote"] != "/finance/2026/q4/renamed.bin" ||
		recs[0]["size"] != float64(len(one)) || recs[0]["sha256"] != hexSHA(one) || recs[0]["sent"] != float64(len(one)) ||
		recs[0]["resumed_from"] != float64(0) || recs[0]["local"] == nil || recs[0]["seconds"] == nil {
		t.Fatalf("put --json: %v", recs)
	}
	// One file into an existing folder; a directory, recursively, into a new one.
	c.ok(t, "put", filepath.Join(dir, "one.bin"), "/finance/2026/q4")
	_, errOut, err := c.run("", "put", filepath.Join(dir, "tree"), filepath.Join(dir, "one.bin"), "/finance/in/coming")
	if err != nil {
		t.Fatalf("put tree: %v\n%s", err, errOut)
	}
	// Not a terminal: one quiet line per file on stderr.
	if n := strings.Count(errOut, "\n"); n != 4 || !strings.Contains(errOut, "-> /finance/in/coming/tree/sub/b.bin (") {
		t.Errorf("quiet lines:\n%s", errOut)
	}

	if got := c.ok(t, "ls", "/finance/2026/q4"); got != "one.bin\nrenamed.bin\n" {
		t.Errorf("ls = %q", got)
	}
	if got := c.ok(t, "ls", "/finance/in/coming"); got != "tree/\none.bin\n" { // folders first
		t.Errorf("ls folder = %q", got)
	}
	long := c.ok(t, "ls", "-l", "/finance/in/coming/tree")
	if !strings.HasPrefix(long, "folder   -  ") || !strings.Contains(long, " sub/\n") || !strings.Contains(long, "\nfile    10  ") || strings.Count(long, "\n") != 3 {
		t.Errorf("ls -l:\n%s", long)
	}
	var ent struct {
		Name, Type, SHA256 string
		Size               int64
	}
	if err := json.Unmarshal([]byte(c.ok(t, "ls", "--json", "/finance/in/coming/tree/sub/b.bin")), &ent); err != nil ||
		ent.Name != "b.bin" || ent.Size != int64(len(deep)) || ent.SHA256 != hexSHA(deep) {
		t.Errorf("ls --json of a file: %+v %v", ent, err)
	}

	// get: one file, then a folder recursively.
	got := filepath.Join(dir, "got")
	out = c.ok(t, "get", "--json", "/finance/2026/q4/renamed.bin", got)
	if b, _ := os.ReadFile(got); !bytes.Equal(b, one) {
		t.Error("get: wrong content")
	}
	if recs := records(t, out); len(recs) != 1 || recs[0]["op"] != "get" || recs[0]["sha256"] != hexSHA(one) || recs[0]["local"] != got {
		t.Errorf("get --json: %v", recs)
	}
	if _, _, err := c.run("", "get", "/finance/in/coming", filepath.Join(dir, "down")); err == nil || !strings.Contains(err.Error(), "-r") {
		t.Errorf("get of a folder without -r: %v", err)
	}
	c.ok(t, "get", "-r", "/finance/in/coming", filepath.Join(dir, "down"))
	for p, want := range map[string][]byte{"coming/one.bin": one, "coming/tree/sub/b.bin": deep, "coming/tree/empty.txt": {}} {
		if b, err := os.ReadFile(filepath.Join(dir, "down", p)); err != nil || !bytes.Equal(b, want) {
			t.Errorf("get -r: %s: %v", p, err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "down", "coming")); len(ents) != 2 {
		t.Errorf("get -r left extra files: %v", ents)
	}

	// mv: rename, then into a folder.
	c.ok(t, "mv", "/finance/2026/q4/renamed.bin", "/finance/2026/q4/final.bin")
	c.ok(t, "mv", "/finance/2026/q4/final.bin", "/finance/2026/q3")
	if got := c.ok(t, "ls", "/finance/2026/q3"); got != "final.bin\n" {
		t.Errorf("after mv: %q", got)
	}

	// rm: a file; a non-empty folder needs -r.
	c.ok(t, "rm", "/finance/2026/q3/final.bin")
	if _, _, err := c.run("", "rm", "/finance/in"); err == nil {
		t.Error("rm of a non-empty folder without -r succeeded")
	}
	c.ok(t, "rm", "-r", "/finance/in")
	if got := c.ok(t, "ls", "/finance"); got != "2026/\n" {
		t.Errorf("after rm -r: %q", got)
	}
}

func TestClientErrors(t *testing.T) {
	c := newClientEnv(t)
	dir := t.TempDir()
	writeRandom(t, filepath.Join(dir, "f"), 10)
	var ue *cli.UsageError
	for _, args := range [][]string{
		{"put", filepath.Join(dir, "f")},
		{"put", "--chunk-size", "lots", filepath.Join(dir, "f"), "/finance/f"},
		{"get", "/finance/f"},
		{"ls", "/a", "/b"},
		{"rm"},
		{"mkdir"},
		{"mv", "/a"},
		{"put", "--no-such-flag", "a", "b"},
	} {
		if _, _, err := c.run("", args...); !errors.As(err, &ue) {
			t.Errorf("ferry %v: %v, want a usage error", args, err)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"put", filepath.Join(dir, "f"), "/reports/f"}, `put /reports/f: permission: you need "write" permission on /reports`},
		{[]string{"put", filepath.Join(dir, "f"), "/hr/f"}, `put /hr/f: not_exist: `},
		{[]string{"put", filepath.Join(dir, "missing"), "/finance/"}, "put " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{[]string{"get", "/finance/nope", filepath.Join(dir, "x")}, "get /finance/nope: not_exist: "},
		{[]string{"mkdir", "/reports/x"}, `mkdir /reports/x: permission: you need "write" permission on /reports`},
		{[]string{"ls", "/nowhere"}, "ls /nowhere: not_exist: "},
		{[]string{"rm", "/"}, "rm /: refusing"},
	} {
		_, _, err := c.run("", tc.args...)
		if err == nil || errors.As(err, &ue) || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ferry %v: %v, want one line starting %q", tc.args, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a failed get left the target behind")
	}
	if _, err := os.Stat(filepath.Join(dir, ".x.ferry-part")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a failed get left a partial file behind")
	}
}

// TestClientPasswordLogin: ferry login --email signs in with a password
// through the token endpoint, then with a TOTP code once the account has a
// second factor; a wrong password stores nothing.
func TestClientPasswordLogin(t *testing.T) {
	c := newClientEnv(t)
	c.vars = map[string]string{"XDG_CONFIG_HOME": c.home}
	if _, errOut, err := c.s.Run("correct horse battery\n", "admin", "user", "create", "--org", "acme", "--email", "dave@acme.test", "--password-stdin"); err != nil {
		t.Fatalf("user create: %v %s", err, errOut)
	}
	c.s.Admin("grant", "--org", "acme", "--user", "dave@acme.test", "/finance", "list,read")
	if _, _, err := c.run("wrong password\n", "login", "--server", c.s.PublicURL, "--ca", c.s.CA(), "--email", "dave@acme.test"); err == nil ||
		!strings.Contains(err.Error(), "wrong email or password") {
		t.Fatalf("login with a wrong password: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.home, "ferry", "credentials.json")); !os.IsNotExist(err) {
		t.Fatal("a failed login stored credentials")
	}
	out, errOut, err := c.run("correct horse battery\n", "login", "--server", c.s.PublicURL, "--ca", c.s.CA(), "--email", "dave@acme.test")
	if err != nil || !strings.Contains(out, "as dave@acme.test (acme)") {
		t.Fatalf("password login: %v\n%s%s", err, out, errOut)
	}
	if got := c.ok(t, "ls", "/"); got != "finance/\n" {
		t.Errorf("ls / after a password login = %q", got)
	}
	// The organisation now requires a second factor and dave has none: the
	// token endpoint asks for a code, and no code works.
	c.s.Admin("policy", "set", "--org", "acme", "--mfa-required")
	if _, _, err := c.run("correct horse battery\n123456\n", "login", "--server", c.s.PublicURL, "--ca", c.s.CA(), "--email", "dave@acme.test"); err == nil {
		t.Fatal("login without an enrolled second factor succeeded under an MFA policy")
	}
}
