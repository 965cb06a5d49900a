package httpd_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"ferry.dev/ferry/internal/ferrytest"
)

// TestAdminEnableUserAndRevokeGrant: through the admin API an
// administrator re-enables a disabled user (who can use the API again) and
// removes a grant (the folder is gone from the user's view); both are
// audited. Another organisation's administrator and a plain user cannot do
// either, and the public listener has neither route.
func TestAdminEnableUserAndRevokeGrant(t *testing.T) {
	s := ferrytest.Start(t)
	ada := s.User("acme", "ada@acme.test", "admin")
	bob := s.User("acme", "bob@acme.test", "user")
	mallory := s.User("evil", "mallory@evil.test", "admin")
	s.Admin("folder", "create", "--org", "acme", "/in")
	s.Admin("grant", "--org", "acme", "--user", "bob@acme.test", "/in", "list,read,write")
	c := from(s, "127.0.0.1")
	api := func(token, path string, body map[string]any) (*http.Response, string) {
		t.Helper()
		return postJSON(t, c, s.AdminURL+path, token, body)
	}

	// Disable, then enable again: bob's token works again.
	if res, body := api(ada, "/admin/v1/users/disable", map[string]any{"email": "bob@acme.test"}); res.StatusCode != 200 {
		t.Fatalf("disable: %d %s", res.StatusCode, body)
	}
	ferrytest.Expect(t, s.Do("GET", "/api/v1/me", bob, nil), 401)
	for _, tc := range []struct {
		who, token string
		status     int
	}{{"plain user", bob, 401}, {"another organisation's admin", mallory, 404}} {
		if res, body := api(tc.token, "/admin/v1/users/enable", map[string]any{"email": "bob@acme.test"}); res.StatusCode != tc.status {
			t.Fatalf("enable by %s: %d %s", tc.who, res.StatusCode, body)
		}
	}
	if res, body := api(ada, "/admin/v1/users/enable", map[string]any{"email": "bob@acme.test"}); res.StatusCode != 200 {
		t.Fatalf("enable: %d %s", res.StatusCode, body)
	}
	ferrytest.Expect(t, s.Do("GET", "/api/v1/me", bob, nil), 200)
	if res, body := api(ada, "/admin/v1/users/enable", map[string]any{"email": "bob@acme.test"}); res.StatusCode != 400 || !strings.Contains(body, "not disabled") {
		t.Fatalf("enable an enabled user: %d %s", res.StatusCode, body)
	}

	// Revoke bob's grant on /in.
	ferrytest.Expect(t, s.Do("GET", "/api/v1/folders/in", bob, nil), 200)
	if res, body := api(mallory, "/admin/v1/grants/revoke", map[string]any{"org": "acme", "email": "bob@acme.test", "path": "/in"}); res.StatusCode != 403 {
		t.Fatalf("revoke by another organisation's admin: %d %s", res.StatusCode, body)
	}
	ferrytest.Expect(t, s.Do("GET", "/api/v1/folders/in", bob, nil), 200)
	if res, body := api(ada, "/admin/v1/grants/revoke", map[string]any{"org": "acme", "email": "bob@acme.test", "path": "/in"}); res.StatusCode != 200 {
		t.Fatalf("revoke: %d %s", res.StatusCode, body)
	}
	if res := s.Do("GET", "/api/v1/folders/in", bob, nil); res.StatusCode == 200 {
		t.Fatalf("bob still lists /in after the revoke: %s", ferrytest.Body(t, res))
	} else {
		res.Body.Close()
	}
	if res, body := api(ada, "/admin/v1/grants/revoke", map[string]any{"org": "acme", "email": "bob@acme.test", "path": "/in"}); res.StatusCode != 404 {
		t.Fatalf("revoke a grant that is gone: %d %s", res.StatusCode, body)
	}
	if res, body := api(ada, "/admin/v1/grants/revoke", map[string]any{"org": "acme", "email": "bob@acme.test", "path": "/in", "extra": 1}); res.StatusCode != 400 {
		t.Fatalf("unknown field: %d %s", res.StatusCode, body)
	}

	// Audited: who, whom, what.
	evs := auditEvents(t, s, "user.enable")
	if len(evs) != 3 || evs[1]["actor"] != "ada@acme.test" || evs[1]["outcome"] != "ok" || evs[0]["outcome"] == "ok" || evs[2]["outcome"] == "ok" {
		t.Fatalf("user.enable events: %v", evs)
	}
	evs = auditEvents(t, s, "grant.revoke")
	var ok int
	for _, ev := range evs {
		if ev["outcome"] == "ok" {
			ok++
			if ev["actor"] != "ada@acme.test" || ev["path"] != "/in" || !strings.Contains(ev["detail"].(string), "list,read,write") {
				t.Fatalf("grant.revoke event: %v", ev)
			}
		}
	}
	if ok != 1 {
		t.Fatalf("grant.revoke events: %v", evs)
	}

	// Neither route exists on the public listener.
	for _, p := range []string{"/admin/v1/users/enable", "/admin/v1/grants/revoke", "/admin/orgs/acme/users/enable", "/admin/orgs/acme/grants/revoke"} {
		res, _ := postJSON(t, c, s.PublicURL+p, ada, map[string]any{"email": "bob@acme.test"})
		if res.StatusCode != 404 {
			t.Fatalf("public %s: %d", p, res.StatusCode)
		}
	}
}

// TestAdminUIEnableAndRevokeForms: the users page's Enable button and the
// grants matrix's remove buttons post to internal/admin with the CSRF
// token; without it nothing changes.
func TestAdminUIEnableAndRevokeForms(t *testing.T) {
	s := ferrytest.Start(t)
	serverAdmin(t, s, "acme", "root@acme.test")
	withPassword(t, s, "acme", "bob@acme.test", "user", "correct horse battery")
	s.Admin("folder", "create", "--org", "acme", "/in")
	s.Admin("grant", "--org", "acme", "--user", "bob@acme.test", "/in", "list,read")
	b := newTwoPlanes(t, s)
	adminSignIn(t, b, "root@acme.test", adminPW)

	_, page := b.get(s.AdminURL, "/admin/orgs/acme/users")
	csrf := csrfOf(t, page)
	if res, _ := b.post(s.AdminURL, "/admin/orgs/acme/users/disable", url.Values{"csrf": {csrf}, "email": {"bob@acme.test"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable: %d", res.StatusCode)
	}
	_, page = b.get(s.AdminURL, "/admin/orgs/acme/users")
	if !strings.Contains(page, `action="/admin/orgs/acme/users/enable"`) {
		t.Fatalf("no Enable button for a disabled user:\n%s", page)
	}
	if res, _ := b.post(s.AdminURL, "/admin/orgs/acme/users/enable", url.Values{"csrf": {"forged"}, "email": {"bob@acme.test"}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("enable without the CSRF token: %d", res.StatusCode)
	}
	if res, _ := b.post(s.AdminURL, "/admin/orgs/acme/users/enable", url.Values{"csrf": {csrf}, "email": {"bob@acme.test"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("enable: %d", res.StatusCode)
	}
	if _, page = b.get(s.AdminURL, "/admin/orgs/acme/users"); strings.Contains(page, `action="/admin/orgs/acme/users/enable"`) {
		t.Fatal("Enable button for an enabled user")
	}

	_, page = b.get(s.AdminURL, "/admin/orgs/acme/folders")
	if !strings.Contains(page, `action="/admin/orgs/acme/grants/revoke"`) {
		t.Fatalf("no remove button in the grants matrix:\n%s", page)
	}
	if res, _ := b.post(s.AdminURL, "/admin/orgs/acme/grants/revoke", url.Values{"csrf": {csrf}, "email": {"bob@acme.test"}, "path": {"/in"}}, "https://evil.test"); res.StatusCode != http.StatusForbidden {
		t.Fatalf("revoke from another origin: %d", res.StatusCode)
	}
	if res, _ := b.post(s.AdminURL, "/admin/orgs/acme/grants/revoke", url.Values{"csrf": {csrf}, "email": {"bob@acme.test"}, "path": {"/in"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d", res.StatusCode)
	}
	if _, page = b.get(s.AdminURL, "/admin/orgs/acme/folders"); strings.Contains(page, `action="/admin/orgs/acme/grants/revoke"`) {
		t.Fatal("a grant is still shown after its removal")
	}
	if res, page := b.post(s.AdminURL, "/admin/orgs/acme/grants/revoke", url.Values{"csrf": {csrf}, "email": {"bob@acme.test"}, "path": {"/in"}}); res.StatusCode != 404 || !strings.Contains(page, "has no grant") {
		t.Fatalf("revoke again: %d", res.StatusCode)
	}
}
