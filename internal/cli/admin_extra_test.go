package cli_test

import (
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"ferry.dev/ferry/internal/cli"
	"ferry.dev/ferry/internal/ferrytest"
)

const enablePassword = "correct horse battery staple"

// webSignIn posts the web sign-in form and reports whether it succeeded (a
// redirect into the site).
func webSignIn(t *testing.T, s *ferrytest.Server, email, password string) bool {
	t.Helper()
	_, ok := webClient(t, s, email, password)
	return ok
}

// webClient signs in on the web UI and returns the signed-in client (it
// does not follow redirects) and whether the sign-in succeeded.
func webClient(t *testing.T, s *ferrytest.Server, email, password string) (*http.Client, bool) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: s.Client.Transport, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("POST", s.PublicURL+"/login", strings.NewReader(url.Values{"email": {email}, "password": {password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.PublicURL)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return c, res.StatusCode == http.StatusSeeOther
}

// TestAdminUserEnable: a disabled user can neither sign in nor use their
// token; `ferry admin user enable` lets them do both again.
func TestAdminUserEnable(t *testing.T) {
	s := ferrytest.Start(t)
	s.Admin("org", "create", "acme")
	if _, errOut, err := s.Run(enablePassword+"\n", "admin", "user", "create", "--org", "acme", "--email", "bob@acme.test", "--password-stdin"); err != nil {
		t.Fatalf("user create: %v\n%s", err, errOut)
	}
	tok := strings.TrimSpace(s.Admin("token", "create", "--user", "bob@acme.test"))
	s.Admin("folder", "create", "--org", "acme", "/in")
	s.Admin("grant", "--org", "acme", "--user", "bob@acme.test", "/in", "list,read,write")
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/in/a.txt", tok, strings.NewReader("hello")), 201)
	if !webSignIn(t, s, "bob@acme.test", enablePassword) {
		t.Fatal("bob cannot sign in before being disabled")
	}

	// Enabling a user who is not disabled is an error a person can act on.
	if _, _, err := s.Run("", "admin", "user", "enable", "bob@acme.test"); err == nil || !strings.Contains(err.Error(), "is not disabled") {
		t.Fatalf("enable of an enabled user: %v", err)
	}

	s.Admin("user", "disable", "bob@acme.test")
	if webSignIn(t, s, "bob@acme.test", enablePassword) {
		t.Fatal("a disabled user signed in")
	}
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/in/a.txt", tok, nil), 401)

	if out := s.Admin("user", "enable", "bob@acme.test"); !strings.Contains(out, "enabled user bob@acme.test") {
		t.Fatalf("user enable printed %q", out)
	}
	if !webSignIn(t, s, "bob@acme.test", enablePassword) {
		t.Fatal("re-enabled user cannot sign in")
	}
	if b := ferrytest.Expect(t, s.Do("GET", "/api/v1/files/in/a.txt", tok, nil), 200); b != "hello" {
		t.Fatalf("download after enable: %q", b)
	}

	for _, tc := range []struct {
		args  []string
		want  string
		usage bool
	}{
		{[]string{"user", "enable"}, "usage: ferry admin user enable EMAIL", true},
		{[]string{"user", "enable", "a@acme.test", "b@acme.test"}, "usage", true},
		{[]string{"user", "enable", "nobody@acme.test"}, "no user", false},
	} {
		_, _, err := s.Run("", append([]string{"admin"}, tc.args...)...)
		var ue *cli.UsageError
		if err == nil || !strings.Contains(err.Error(), tc.want) || errors.As(err, &ue) != tc.usage {
			t.Errorf("admin %v: err = %v, want %q (usage error %v)", tc.args, err, tc.want, tc.usage)
		}
	}
	out, _, err := s.Run("", "audit", "log", "--action", "user.*", "--actor", "operator")
	if err != nil || !strings.Contains(out, "user.enable") || !strings.Contains(out, "user.disable") {
		t.Fatalf("enable not audited: %v\n%s", err, out)
	}
}

// TestAdminGrantRevoke: after `ferry admin grant revoke` the user no longer
// reaches the folder; grants of others and on other folders stay.
func TestAdminGrantRevoke(t *testing.T) {
	s := ferrytest.Start(t)
	admin := s.User("acme", "root@acme.test", "admin")
	bob := s.User("acme", "bob@acme.test", "user")
	carol := s.User("acme", "carol@acme.test", "user")
	s.Admin("folder", "create", "--org", "acme", "/in")
	s.Admin("folder", "create", "--org", "acme", "/out")
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/in/a.txt", admin, strings.NewReader("secret")), 201)
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/out/b.txt", admin, strings.NewReader("other")), 201)
	for _, u := range []string{"bob@acme.test", "carol@acme.test"} {
		s.Admin("grant", "--org", "acme", "--user", u, "/in", "list,read")
	}
	s.Admin("grant", "--org", "acme", "--user", "bob@acme.test", "/out", "list,read")
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/in/a.txt", bob, nil), 200)

	if out := s.Admin("grant", "revoke", "--org", "acme", "--user", "bob@acme.test", "/in"); !strings.Contains(out, "revoked the grant on /in from bob@acme.test") {
		t.Fatalf("grant revoke printed %q", out)
	}
	for _, p := range []string{"/api/v1/files/in/a.txt", "/api/v1/folders/in/"} {
		res := s.Do("GET", p, bob, nil)
		body := ferrytest.Body(t, res)
		if res.StatusCode != 404 && res.StatusCode != 403 {
			t.Fatalf("GET %s after revoke: %d %s", p, res.StatusCode, body)
		}
		if strings.Contains(body, "secret") || strings.Contains(body, "a.txt") {
			t.Fatalf("GET %s after revoke shows the folder: %s", p, body)
		}
	}
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/in/a.txt", carol, nil), 200)
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/out/b.txt", bob, nil), 200)

	for _, tc := range []struct {
		args  []string
		want  string
		usage bool
	}{
		{[]string{"grant", "revoke", "--org", "acme", "--user", "bob@acme.test", "/in"}, "has no grant", false},
		{[]string{"grant", "revoke", "--org", "acme", "--user", "bob@acme.test", "/nope"}, "does not exist", false},
		{[]string{"grant", "revoke", "--org", "acme", "--user", "nobody@acme.test", "/in"}, "no user", false},
		{[]string{"grant", "revoke", "--org", "nope", "--user", "bob@acme.test", "/in"}, "does not exist", false},
		{[]string{"grant", "revoke", "--user", "bob@acme.test", "/in"}, "usage: ferry admin grant revoke", true},
		{[]string{"grant", "revoke", "--org", "acme", "--user", "bob@acme.test", "/in", "read"}, "usage", true},
	} {
		_, _, err := s.Run("", append([]string{"admin"}, tc.args...)...)
		var ue *cli.UsageError
		if err == nil || !strings.Contains(err.Error(), tc.want) || errors.As(err, &ue) != tc.usage {
			t.Errorf("admin %v: err = %v, want %q (usage error %v)", tc.args, err, tc.want, tc.usage)
		}
	}
	out, _, err := s.Run("", "audit", "log", "--action", "grant.revoke")
	if err != nil || !strings.Contains(out, "grant.revoke") || !strings.Contains(out, "bob@acme.test") {
		t.Fatalf("revoke not audited: %v\n%s", err, out)
	}
}

// TestAdminUserRoleAndInvite: `ferry admin user role` changes a role and
// ends the user's sessions; `ferry admin user invite` creates a user
// without a password, never prints the link, warns when no SMTP server is
// configured, and refuses someone who already chose a password.
func TestAdminUserRoleAndInvite(t *testing.T) {
	s := ferrytest.Start(t)
	s.Admin("org", "create", "acme")
	if _, errOut, err := s.Run(enablePassword+"\n", "admin", "user", "create", "--org", "acme", "--email", "bob@acme.test", "--password-stdin"); err != nil {
		t.Fatalf("user create: %v\n%s", err, errOut)
	}
	if out := s.Admin("user", "role", "bob@acme.test", "--role", "admin"); !strings.Contains(out, "user bob@acme.test is now admin") {
		t.Fatalf("user role printed %q", out)
	}

	out, errOut, err := s.Run("", "admin", "user", "invite", "--org", "acme", "--email", "Carol@acme.test")
	if err != nil || !strings.Contains(out, "invited carol@acme.test;") || strings.Contains(out+errOut, "/invite/") ||
		!strings.Contains(errOut, "no SMTP server configured") {
		t.Fatalf("user invite: %v\n%s\n%s", err, out, errOut)
	}
	if out, _, err := s.Run("", "admin", "user", "invite", "--org", "acme", "--email", "carol@acme.test"); err != nil || !strings.Contains(out, "again") {
		t.Fatalf("second invite: %v\n%s", err, out)
	}

	for _, tc := range []struct {
		args  []string
		want  string
		usage bool
	}{
		{[]string{"user", "role", "bob@acme.test"}, "usage: ferry admin user role", true},
		{[]string{"user", "role", "nobody@acme.test", "--role", "user"}, "no user", false},
		{[]string{"user", "invite", "--org", "acme"}, "usage: ferry admin user invite", true},
		{[]string{"user", "invite", "--org", "acme", "--email", "bob@acme.test"}, "already exists", false},
	} {
		_, _, err := s.Run("", append([]string{"admin"}, tc.args...)...)
		var ue *cli.UsageError
		if err == nil || !strings.Contains(err.Error(), tc.want) || errors.As(err, &ue) != tc.usage {
			t.Errorf("admin %v: err = %v, want %q (usage error %v)", tc.args, err, tc.want, tc.usage)
		}
	}
}
