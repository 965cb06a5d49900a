package cli_test

import (
	"bytes"
	"database/sql"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"ferry.dev/ferry/internal/cli"
	"ferry.dev/ferry/internal/ferrytest"
)

func TestDataDirectoryLayout(t *testing.T) {
	s := ferrytest.Start(t)
	mode := func(p string) fs.FileMode {
		t.Helper()
		fi, err := os.Stat(filepath.Join(s.Data, p))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode()
	}
	if m := mode("."); m.Perm() != 0o700 || !m.IsDir() {
		t.Errorf("data dir mode %v", m)
	}
	if m := mode("admin.sock"); m.Perm() != 0o600 || m&fs.ModeSocket == 0 {
		t.Errorf("admin.sock mode %v", m)
	}
	if m := mode("tls/key.pem"); m.Perm() != 0o600 {
		t.Errorf("TLS key mode %v", m)
	}
	mode("tls/cert.pem")
	s.User("acme", "a@acme.test", "admin") // creates the org and its KEK
	entries, err := os.ReadDir(filepath.Join(s.Data, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		if fi, _ := e.Info(); fi.Mode().Perm()&0o077 != 0 && !strings.HasSuffix(e.Name(), ".pub") {
			t.Errorf("key file %s has mode %v", e.Name(), fi.Mode())
		}
	}
	joined := strings.Join(names, " ")
	if !strings.Contains(joined, "audit.key") || !strings.Contains(joined, ".kek") {
		t.Errorf("keys dir holds %v; want the audit key and an organisation KEK", names)
	}
	// The KEKs never enter the database: none of their key bytes appear in
	// the database files (tables hold only keys wrapped by them, and KEK
	// ids), even after a file, an upload and a wrapped secret exist.
	s.Admin("folder", "create", "--org", "acme", "/in")
	tok := s.User("acme", "b@acme.test", "admin")
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/in/a.txt", tok, strings.NewReader("content")), 201)
	s.Stop()
	var dbBytes []byte
	for _, f := range []string{"ferry.db", "ferry.db-wal"} {
		b, _ := os.ReadFile(filepath.Join(s.Data, f))
		dbBytes = append(dbBytes, b...)
	}
	if len(dbBytes) == 0 {
		t.Fatal("no database file")
	}
	keks := 0
	for _, n := range names {
		if !strings.HasSuffix(n, ".kek") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.Data, "keys", n))
		if err != nil || len(b) != 37 {
			t.Fatalf("KEK file %s: %d bytes, %v", n, len(b), err)
		}
		keks++
		if bytes.Contains(dbBytes, b[5:]) {
			t.Errorf("the key of %s appears in the database", n)
		}
	}
	if keks == 0 {
		t.Fatal("no KEK file to check")
	}
}

func TestSetupLinkCreatesFirstAdminOnce(t *testing.T) {
	s := ferrytest.Start(t)
	if s.SetupURL == "" {
		t.Fatalf("no setup link printed:\n%s", s.Log())
	}
	u, err := url.Parse(s.SetupURL)
	if err != nil || u.Query().Get("code") == "" {
		t.Fatalf("setup link %q", s.SetupURL)
	}
	code := u.Query().Get("code")
	if strings.Contains(s.Log(), "password") {
		t.Errorf("server log mentions a password")
	}
	res, err := s.Client.Get(s.SetupURL)
	if err != nil {
		t.Fatal(err)
	}
	page := ferrytest.Expect(t, res, 200)
	if !strings.Contains(page, "<form") || strings.Contains(page, "<script") {
		t.Fatalf("setup page: %s", page)
	}
	post := func(code, pw string) (*http.Response, string) {
		res, err := s.Client.PostForm(s.AdminURL+"/setup", url.Values{"code": {code}, "org": {"acme"}, "email": {"root@acme.test"}, "password": {pw}})
		if err != nil {
			t.Fatal(err)
		}
		return res, ferrytest.Body(t, res)
	}
	if res, body := post("wrong-code", "correct horse battery staple"); res.StatusCode != 401 || strings.Contains(body, "Done") {
		t.Fatalf("wrong code: %d %s", res.StatusCode, body)
	}
	if res, _ := post(code, "short"); res.StatusCode != 400 {
		t.Fatalf("short password: %d", res.StatusCode)
	}
	if res, body := post(code, "correct horse battery staple"); res.StatusCode != 200 || !strings.Contains(body, "Done") {
		t.Fatalf("setup: %d %s", res.StatusCode, body)
	}
	if res, _ := post(code, "correct horse battery staple"); res.StatusCode != 401 {
		t.Fatalf("second use of the code: %d", res.StatusCode)
	}
	// The password is stored only as an argon2id hash.
	raw, err := os.ReadFile(filepath.Join(s.Data, "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	wal, _ := os.ReadFile(filepath.Join(s.Data, "ferry.db-wal"))
	if bytes.Contains(append(raw, wal...), []byte("correct horse battery staple")) {
		t.Fatal("password stored in clear")
	}
	if !bytes.Contains(append(raw, wal...), []byte("$argon2id$")) {
		t.Fatal("no argon2id hash stored")
	}
	// Once an administrator exists, a restart prints no new link.
	s.Restart()
	if s.SetupURL != "" {
		t.Fatalf("setup link printed although an administrator exists")
	}
	out, _, err := s.Run("", "audit", "log", "--action", "admin.setup")
	if err != nil || !strings.Contains(out, "root@acme.test") {
		t.Fatalf("setup not audited: %v\n%s", err, out)
	}
}

func TestAdminCLIErrors(t *testing.T) {
	s := ferrytest.Start(t)
	s.Admin("org", "create", "acme")
	for _, tc := range []struct {
		args  []string
		want  string
		usage bool
	}{
		{[]string{"org", "create", "acme"}, "already exists", false},
		{[]string{"user", "create", "--org", "nope", "--email", "a@b.test"}, "does not exist", false},
		{[]string{"user", "create", "--org", "acme", "--email", "not-an-email"}, "not a valid email", false},
		{[]string{"user", "create", "--org", "acme", "--email", "x@acme.test", "--role", "god"}, "unknown role", false},
		{[]string{"user", "create", "--org", "acme", "--email", "x@acme.test", "--role", "external"}, "needs a party", false},
		{[]string{"grant", "--org", "acme", "--user", "nobody@acme.test", "/", "read"}, "no user", false},
		{[]string{"folder", "create", "--org", "acme", "/a/../b"}, "..", false},
		{[]string{"token", "revoke", "0123456789abcdef"}, "no token", false},
		{[]string{"token", "create", "--user", "a@acme.test", "--expires", "soon"}, "--expires", true},
		{[]string{"frobnicate"}, "unknown command", true},
		{[]string{"user", "create"}, "usage", true},
	} {
		_, _, err := s.Run("", append([]string{"admin"}, tc.args...)...)
		var ue *cli.UsageError
		if err == nil || !strings.Contains(err.Error(), tc.want) || errors.As(err, &ue) != tc.usage {
			t.Errorf("admin %v: err = %v, want %q (usage error %v)", tc.args, err, tc.want, tc.usage)
		}
	}
	if _, _, err := s.Run("a long enough passphrase\n", "admin", "user", "create", "--org", "acme", "--email", "Pw@Acme.test", "--password-stdin"); err != nil {
		t.Fatalf("user with password: %v", err)
	}
	if _, _, err := s.Run("short\n", "admin", "user", "create", "--org", "acme", "--email", "pw2@acme.test", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "at least 12") {
		t.Errorf("short password accepted: %v", err)
	}

	// Against a stopped server: a clear message, non-zero.
	s.Stop()
	_, _, err := s.Run("", "admin", "org", "create", "x")
	if err == nil || !strings.Contains(err.Error(), "is `ferry serve --data") {
		t.Fatalf("admin against a stopped server: %v", err)
	}
}

func TestAuditVerifyAndLog(t *testing.T) {
	s := ferrytest.Start(t)
	tok := s.User("acme", "alice@acme.test", "admin")
	s.Admin("party", "create", "--org", "acme", "Globex", "--contact", "legal@globex.test")
	s.Admin("folder", "create", "--org", "acme", "/in", "--party", "Globex")
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/in/a.csv", tok, strings.NewReader("1,2,3")), 201)
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/in/a.csv", tok, nil), 200)
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/in/nope.csv", tok, nil), 404)

	out, _, err := s.Run("", "audit", "log", "--actor", "alice@acme.test", "--action", "file.*", "--json")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], `"action":"file.read"`) || !strings.Contains(lines[1], `"party":"Globex"`) || !strings.Contains(lines[1], `"bytes":5`) || !strings.Contains(lines[1], `"protocol":"https"`) {
		t.Fatalf("audit log:\n%s", out)
	}
	out, _, err = s.Run("", "audit", "log", "--party", "Globex", "--path", "/in")
	if err != nil || !strings.Contains(out, "file.write") || !strings.Contains(out, "file.read") {
		t.Fatalf("audit log --party: %v\n%s", err, out)
	}

	// Save a checkpoint, then do more, then stop (which signs a final one).
	s.Stop()
	saved := filepath.Join(t.TempDir(), "checkpoint")
	cp, err := os.ReadFile(filepath.Join(s.Data, "audit", "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(saved, cp, 0o600)
	s.Restart()
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/in/a.csv", tok, nil), 200)
	s.Stop()
	out, _, err = s.Run("", "audit", "verify", "--checkpoint", saved)
	if err != nil || !strings.Contains(out, "audit log OK") || !strings.Contains(out, "prefix") {
		t.Fatalf("verify: %v\n%s", err, out)
	}

	// Tamper: edit a record in the database → verify fails naming it.
	dbh, err := sql.Open("sqlite", filepath.Join(s.Data, "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer dbh.Close()
	var seq int64
	var data []byte
	if err := dbh.QueryRow(`SELECT seq, data FROM audit_records WHERE action = 'file.read' ORDER BY seq LIMIT 1`).Scan(&seq, &data); err != nil {
		t.Fatal(err)
	}
	forged := bytes.Replace(data, []byte(`"actor":"alice@acme.test"`), []byte(`"actor":"bob@acme.test00"`), 1)
	if _, err := dbh.Exec(`UPDATE audit_records SET data = $1 WHERE seq = $2`, forged, seq); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.Run("", "audit", "verify")
	if err == nil || !strings.Contains(err.Error(), "FAILED") || !strings.Contains(err.Error(), "record") {
		t.Fatalf("tampered log verified: %v", err)
	}
	if !strings.Contains(err.Error(), itoa(seq)) {
		t.Fatalf("verify error does not name record %d: %v", seq, err)
	}
}

func startServer(t *testing.T) *ferrytest.Server { return ferrytest.Start(t) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestMetricsOnlyOnAdmin(t *testing.T) {
	s := ferrytest.Start(t)
	tok := s.User("acme", "a@acme.test", "admin")
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/x.bin", tok, strings.NewReader("abc")), 201)
	res, err := s.Client.Get(s.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body := ferrytest.Expect(t, res, 200)
	for _, m := range []string{"ferry_http_requests_total", "ferry_transfers_total", "ferry_transfer_bytes_total", "ferry_audit_appends_total"} {
		if !strings.Contains(body, m) {
			t.Errorf("metrics lack %s", m)
		}
	}
	res, err = s.Client.Get(s.PublicURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	ferrytest.Expect(t, res, 404)
}

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	env := cli.Env{Getenv: func(string) string { return "" }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}
	var ue *cli.UsageError
	if err := cli.Run(t.Context(), []string{"bogus"}, env); !errors.As(err, &ue) {
		t.Fatalf("unknown command: %v", err)
	}
	if err := cli.Run(t.Context(), []string{"serve", "--admin-addr", "0.0.0.0:9443", "--data", t.TempDir()}, env); !errors.As(err, &ue) || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("public admin address accepted: %v", err)
	}
	if err := cli.Run(t.Context(), []string{"audit", "verify", "--data", t.TempDir()}, env); err == nil || !strings.Contains(err.Error(), "no Ferry database") {
		t.Fatalf("verify of an empty dir: %v", err)
	}
}

func TestAdminHold(t *testing.T) {
	s := ferrytest.Start(t)
	tok := s.User("acme", "a@acme.test", "admin")
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/contract.pdf", tok, strings.NewReader("signed")), 201)
	if out := s.Admin("hold", "--org", "acme", "/contract.pdf"); !strings.Contains(out, "on hold") {
		t.Fatalf("hold: %s", out)
	}
	b := ferrytest.Expect(t, s.Do("GET", "/api/v1/folders/", tok, nil), 200)
	if !strings.Contains(b, `"hold": true`) {
		t.Fatalf("listing does not show the hold: %s", b)
	}
	s.Admin("hold", "--org", "acme", "/contract.pdf", "--release")
	if b := ferrytest.Expect(t, s.Do("GET", "/api/v1/folders/", tok, nil), 200); strings.Contains(b, `"hold": true`) {
		t.Fatalf("hold not released: %s", b)
	}
	if _, _, err := s.Run("", "admin", "hold", "--org", "acme", "/missing.pdf"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("hold of a missing file: %v", err)
	}
	out, _, err := s.Run("", "audit", "log", "--action", "file.*", "--actor", "operator")
	if err != nil || !strings.Contains(out, "file.hold") || !strings.Contains(out, "file.release") {
		t.Fatalf("hold not audited: %v\n%s", err, out)
	}
}
