package attack_test

import (
	"strings"
	"testing"

	"ferry.dev/ferry/internal/config"
)

// TestAdminPlaneNotOnPublicListener (GoAnywhere's license servlet, Cleo's
// autorun directory: administration reachable from the Internet): every
// route of the admin plane, API and pages, sent to the public listener with
// and without an admin's token answers 404 and runs nothing.
func TestAdminPlaneNotOnPublicListener(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	pub, adm := routeTables(t)
	public := map[string]bool{}
	for _, p := range pub {
		public[p] = true
	}
	before := len(auditLog(t, w.s))
	n := 0
	for _, p := range adm {
		if public[p] {
			// The same pattern on both listeners (GET /healthz) is the
			// public listener's own route, not the admin plane's.
			continue
		}
		method, path := splitPattern(p)
		url := w.s.URL() + fill(path, "x", "x/y")
		for _, tok := range []string{"", w.admin} {
			body := ""
			if method == "POST" {
				body = `{"org":"acme","name":"evil","email":"evil@acme.test","role":"admin"}`
			}
			res, b := do(t, w.s.HTTP(), method, url, tok, body, "Content-Type", "application/json")
			if res.StatusCode != 404 && !(res.StatusCode == 405 && pathOnPublic(path, pub)) {
				t.Errorf("%s on the public listener: %d %s", p, res.StatusCode, b)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no admin route tried")
	}
	// Nothing was done: no audit record of an admin action, no new user.
	for _, e := range auditLog(t, w.s)[before:] {
		if e.Outcome == "ok" && !strings.HasPrefix(e.Action, "auth.") && e.Action != "token.use" {
			t.Errorf("an admin route on the public listener did something: %+v", e)
		}
	}
	if out := w.s.Admin("policy", "show", "--org", "acme"); out == "" {
		t.Fatal("admin socket not answering")
	}
	if res, _ := do(t, w.s.HTTP(), "GET", w.s.URL()+"/api/v1/me", "", ""); res.StatusCode != 401 {
		t.Fatalf("public listener: %d", res.StatusCode)
	}
	t.Logf("%d admin routes × 2 credentials refused on the public listener", n/2)
}

// pathOnPublic reports whether a path also exists on the public listener
// with another method (a 405 there reveals nothing of the admin plane).
func pathOnPublic(path string, pub []string) bool {
	for _, p := range pub {
		if _, pp := splitPattern(p); pp == path {
			return true
		}
	}
	return false
}

// TestAdminListenerLoopbackOnly: the admin listener refuses a non-loopback
// address unless --admin-remote is given explicitly, with an error that
// says so.
func TestAdminListenerLoopbackOnly(t *testing.T) {
	t.Parallel()
	env := func(string) string { return "" }
	noFile := func(string) ([]byte, error) { return nil, nil }
	for _, addr := range []string{"0.0.0.0:9443", "[::]:9443", ":9443", "192.0.2.10:9443", "example.com:9443", "[::ffff:0.0.0.0]:9443"} {
		_, err := config.Load([]string{"--admin-addr", addr}, env, noFile, &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), "not a loopback address") || !strings.Contains(err.Error(), "admin-remote") {
			t.Errorf("--admin-addr %s: %v, want a refusal naming admin-remote", addr, err)
		}
		if _, err := config.Load([]string{"--admin-addr", addr, "--admin-remote", "true"}, env, noFile, &strings.Builder{}); err != nil {
			t.Errorf("--admin-addr %s --admin-remote: %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:9443", "[::1]:9443", "localhost:9443", "127.9.9.9:1"} {
		if _, err := config.Load([]string{"--admin-addr", addr}, env, noFile, &strings.Builder{}); err != nil {
			t.Errorf("--admin-addr %s: %v", addr, err)
		}
	}
	// The same through the environment.
	_, err := config.Load(nil, func(k string) string {
		if k == "FERRY_ADMIN_ADDR" {
			return "0.0.0.0:9443"
		}
		return ""
	}, noFile, &strings.Builder{})
	if err == nil {
		t.Error("FERRY_ADMIN_ADDR=0.0.0.0:9443 accepted")
	}
}
