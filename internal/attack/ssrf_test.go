package attack_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"ferry.dev/ferry/internal/ferrytest"
)

// discovery serves an OpenID discovery document on loopback and counts the
// requests it gets.
func discovery(t *testing.T) (issuer string, hits *atomic.Int64) {
	t.Helper()
	hits = new(atomic.Int64)
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		iss := srv.URL
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"issuer": iss, "authorization_endpoint": iss + "/authorize", "token_endpoint": iss + "/token",
			"jwks_uri": iss + "/keys", "id_token_signing_alg_values_supported": []string{"RS256"}})
	}))
	t.Cleanup(srv.Close)
	return srv.URL, hits
}

// TestSSRFRefusedUnlessAllowListed (Accellion FTA's SSRF step): the server's
// only fetches of URLs it is given are OpenID discovery and token calls
// (admin-configured issuers) and webhooks, all through internal/outbound.
// Naming an issuer on loopback, the cloud metadata address or a mapped
// loopback address gets a refusal without a connection; the operator's
// --outbound-allow opens exactly the listed network.
func TestSSRFRefusedUnlessAllowListed(t *testing.T) {
	t.Parallel()
	issuer, hits := discovery(t)
	_, port, _ := strings.Cut(strings.TrimPrefix(issuer, "http://"), ":")
	s := ferrytest.Start(t)
	s.Admin("org", "create", "acme")
	for _, iss := range []string{issuer, "http://localhost:" + port, "http://[::ffff:127.0.0.1]:" + port, "https://169.254.169.254", "https://[fd00::1]", "https://10.0.0.1"} {
		_, errOut, err := s.Run("secret\n", "admin", "sso", "set", "--org", "acme", "--issuer", iss, "--client-id", "x", "--client-secret-stdin")
		msg := errOut
		if err != nil {
			msg += err.Error()
		}
		if err == nil || !strings.Contains(msg, "not allow-listed") && !strings.Contains(msg, "https URL") {
			t.Errorf("issuer %s: %v %s, want a refusal", iss, err, errOut)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the server connected to a refused issuer %d times", n)
	}
	s2 := ferrytest.Start(t, ferrytest.WithArgs("--outbound-allow", "127.0.0.1/32"))
	s2.Admin("org", "create", "acme")
	if _, errOut, err := s2.Run("secret\n", "admin", "sso", "set", "--org", "acme", "--issuer", issuer, "--client-id", "x", "--client-secret-stdin"); err != nil {
		t.Fatalf("allow-listed issuer: %v %s", err, errOut)
	}
	if hits.Load() == 0 {
		t.Fatal("the allow-listed issuer was not asked")
	}
}

// reviewedDialers are the non-test files that may make network
// connections or HTTP clients of their own; every other server-side
// request must go through internal/outbound. A new one fails
// TestOutboundOnlyThroughOutbound by name until reviewed.
var reviewedDialers = map[string]string{
	"internal/outbound/outbound.go":   "the guarded client itself",
	"internal/cli/admin.go":           "ferry admin → DIR/admin.sock (a Unix socket)",
	"internal/cli/serve.go":           "probes DIR/admin.sock for a live server (a Unix socket)",
	"internal/client/client.go":       "the user's own CLI client (ferry put/get), not the server",
	"internal/ferrytest/ferrytest.go": "test helper",
	"internal/ferrytest/process.go":   "test helper",
	"internal/ferrytest/mailpit.go":   "test helper",
}

// TestOutboundOnlyThroughOutbound: no server code makes an HTTP client or
// dials a network address except through internal/outbound (and the
// reviewed exceptions): a fetch of a user-supplied URL cannot appear
// without the SSRF guard.
func TestOutboundOnlyThroughOutbound(t *testing.T) {
	t.Parallel()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	// Functions and variables that connect; types that connect when built
	// (a composite literal), not when merely named in a signature.
	suspicious := map[string]bool{"DefaultClient": true, "DefaultTransport": true, "Get": true, "Post": true, "PostForm": true, "Head": true,
		"Dial": true, "DialContext": true, "DialTimeout": true, "SendMail": true}
	built := map[string]bool{"Client": true, "Transport": true, "Dialer": true}
	pkgs := map[string]bool{"http": true, "net": true, "smtp": true, "tls": true}
	n := 0
	filepath.WalkDir(filepath.Join(root, "internal"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		n++
		ast.Inspect(f, func(nd ast.Node) bool {
			var se *ast.SelectorExpr
			switch nd := nd.(type) {
			case *ast.CompositeLit:
				if s, ok := nd.Type.(*ast.SelectorExpr); ok && built[s.Sel.Name] {
					se = s
				}
			case *ast.SelectorExpr:
				if suspicious[nd.Sel.Name] {
					se = nd
				}
			}
			if se == nil {
				return true
			}
			id, ok := se.X.(*ast.Ident)
			if !ok || !pkgs[id.Name] {
				return true
			}
			if reviewedDialers[rel] == "" && !(strings.HasPrefix(rel, "internal/mail/") && id.Name != "http") {
				t.Errorf("%s: %s.%s: server-side connections go through internal/outbound (SSRF guard); if this one is safe, review it into reviewedDialers in internal/attack/ssrf_test.go", fset.Position(se.Pos()), id.Name, se.Sel.Name)
			}
			return true
		})
		return nil
	})
	if n < 50 {
		t.Fatalf("only %d files read", n)
	}
}
