package httpd_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"ferry.dev/ferry/internal/ferrytest"
)

var inviteLinkRE = regexp.MustCompile(`https://[^\s"<>]+/invite/[A-Za-z0-9_-]{43}`)

func inviteLink(t *testing.T, s *ferrytest.Server, m ferrytest.MailpitMessage) string {
	t.Helper()
	link := inviteLinkRE.FindString(m.Text)
	if link == "" || !strings.HasPrefix(link, s.PublicURL+"/invite/") {
		t.Fatalf("no invitation link to %s in the mail:\n%s", s.PublicURL, m.Text)
	}
	if !strings.Contains(m.HTML, `href="`+link+`"`) {
		t.Fatalf("the HTML part lacks the link %s:\n%s", link, m.HTML)
	}
	return strings.TrimPrefix(link, s.PublicURL)
}

// TestInviteByEmail: an administrator invites a new user through the admin
// API; a real mail (Mailpit) carries a single-use link to the public
// listener, where the user chooses a password (the policy applies) and is
// signed in. Inviting again replaces the link; a used, replaced or made-up
// link gets the same refusal; the link never appears in the API answer;
// everything is audited.
func TestInviteByEmail(t *testing.T) {
	mp := ferrytest.StartMailpit(t)
	s := ferrytest.Start(t, ferrytest.WithMail(mp))
	ada := s.User("acme", "ada@acme.test", "admin")
	bob := s.User("acme", "bob@acme.test", "user")
	mallory := s.User("evil", "mallory@evil.test", "admin")
	withPassword(t, s, "acme", "carol@acme.test", "user", "correct horse battery")
	c := from(s, "127.0.0.1")
	invite := func(token string, body map[string]any) (*http.Response, string) {
		t.Helper()
		return postJSON(t, c, s.AdminURL+"/admin/v1/users/invite", token, body)
	}

	res, body := invite(ada, map[string]any{"org": "acme", "email": "Nina@Acme.test", "role": "user"})
	if res.StatusCode != 201 {
		t.Fatalf("invite: %d %s", res.StatusCode, body)
	}
	var got struct {
		OK        bool
		Email     string
		Expires   time.Time
		Reinvited bool
	}
	json.Unmarshal([]byte(body), &got)
	if !got.OK || got.Email != "nina@acme.test" || got.Reinvited || time.Until(got.Expires) < 71*time.Hour || time.Until(got.Expires) > 73*time.Hour {
		t.Fatalf("invite answer: %s", body)
	}
	if strings.Contains(body, "/invite/") {
		t.Fatalf("the API answer carries the link: %s", body)
	}
	first := inviteLink(t, s, mp.WaitFor(t, "nina@acme.test", "invited", 30*time.Second))

	// Refusals: a plain user, another organisation's administrator, a bad
	// address, a header-injection attempt.
	for _, tc := range []struct {
		who, token string
		body       map[string]any
		status     int
	}{
		{"plain user", bob, map[string]any{"org": "acme", "email": "x@acme.test"}, 403},
		{"other org's admin", mallory, map[string]any{"org": "acme", "email": "x@acme.test"}, 403},
		{"bad address", ada, map[string]any{"org": "acme", "email": "not-an-address"}, 400},
		{"CRLF in address", ada, map[string]any{"org": "acme", "email": "x@acme.test\r\nBcc: victim@evil.test"}, 400},
		{"existing user with a password", ada, map[string]any{"org": "acme", "email": "carol@acme.test"}, 409},
		{"password given", ada, map[string]any{"org": "acme", "email": "y@acme.test", "password": "correct horse battery"}, 400},
	} {
		if res, body := invite(tc.token, tc.body); res.StatusCode != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.who, res.StatusCode, body, tc.status)
		}
	}

	// Inviting again replaces the link.
	res, body = invite(ada, map[string]any{"org": "acme", "email": "nina@acme.test"})
	got.Reinvited = false
	json.Unmarshal([]byte(body), &got)
	if res.StatusCode != 200 || !got.Reinvited {
		t.Fatalf("re-invite: %d %s", res.StatusCode, body)
	}
	var second string
	deadline := time.Now().Add(30 * time.Second)
	for second == "" || second == first {
		var n int
		for _, m := range mp.Messages(t) {
			if len(m.To) == 1 && m.To[0] == "nina@acme.test" {
				n++
				second = inviteLink(t, s, m)
			}
		}
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no second invitation mail")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if second == first {
		t.Fatal("the second invitation has the same link")
	}

	b := newBrowser(t, s)
	res, page := b.get(first)
	if res.StatusCode != 404 || !strings.Contains(page, "not valid") || strings.Contains(page, "nina@acme.test") {
		t.Fatalf("replaced link: %d\n%s", res.StatusCode, page)
	}
	_, made := b.get("/invite/" + strings.Repeat("A", 43))
	if !strings.Contains(made, "not valid") {
		t.Fatalf("made-up link page:\n%s", made)
	}

	// Before accepting, nina cannot sign in.
	if res, _ := b.post("/login", url.Values{"email": {"nina@acme.test"}, "password": {"anything at all 123"}}); res.StatusCode == http.StatusSeeOther {
		t.Fatal("an invited user signed in without a password")
	}

	res, page = b.get(second)
	if res.StatusCode != 200 || !strings.Contains(page, "nina@acme.test") || !strings.Contains(page, `name="password"`) {
		t.Fatalf("invitation page: %d\n%s", res.StatusCode, page)
	}
	form := func(pw, confirm string) url.Values {
		return url.Values{"password": {pw}, "confirm": {confirm}} // no session yet: no CSRF token
	}
	// A cross-site form is refused.
	if res, _ := b.post(second, form("correct horse battery staple", "correct horse battery staple"), "https://evil.test"); res.StatusCode != 403 {
		t.Fatalf("cross-origin accept: %d", res.StatusCode)
	}
	// A password the policy refuses, or two that differ: the link still works.
	if res, p := b.post(second, form("short", "short"), s.PublicURL); res.StatusCode != 400 || !strings.Contains(p, "at least") {
		t.Fatalf("weak password: %d\n%s", res.StatusCode, p)
	}
	if res, _ := b.post(second, form("correct horse battery staple", "correct horse battery stapler"), s.PublicURL); res.StatusCode != 400 {
		t.Fatalf("different passwords: %d", res.StatusCode)
	}
	res, _ = b.post(second, form("correct horse battery staple", "correct horse battery staple"), s.PublicURL)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Fatalf("accept: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if res, page := b.get("/account"); res.StatusCode != 200 || !strings.Contains(page, "nina@acme.test") {
		t.Fatalf("account page after accepting: %d", res.StatusCode)
	}
	// Single use.
	b2 := newBrowser(t, s)
	if res, page := b2.get(second); res.StatusCode != 404 || !strings.Contains(page, "not valid") {
		t.Fatalf("used link: %d", res.StatusCode)
	}
	if res, _ := b2.post(second, url.Values{"password": {"another good password 9"}, "confirm": {"another good password 9"}}, s.PublicURL); res.StatusCode != 404 {
		t.Fatalf("used link, POST: %d", res.StatusCode)
	}
	// The chosen password signs in.
	if res, _ := b2.post("/login", url.Values{"email": {"nina@acme.test"}, "password": {"correct horse battery staple"}}); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Fatalf("login with the chosen password: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	// Now that she has a password, inviting her again is refused.
	if res, body := invite(ada, map[string]any{"org": "acme", "email": "nina@acme.test"}); res.StatusCode != 409 {
		t.Fatalf("invite an active user: %d %s", res.StatusCode, body)
	}

	// The operator's CLI invites too; the link is mailed, never printed.
	out := s.Admin("user", "invite", "--org", "acme", "--email", "olga@acme.test", "--role", "user")
	if !strings.Contains(out, "invited olga@acme.test") || strings.Contains(out, "/invite/") {
		t.Fatalf("ferry admin user invite: %q", out)
	}
	olga := mp.WaitFor(t, "olga@acme.test", "invited", 30*time.Second)
	inviteLink(t, s, olga)
	if !strings.Contains(olga.Text, "operator invited you") {
		t.Fatalf("CLI invitation text:\n%s", olga.Text)
	}

	// Audited: invitations by ada, refusals, one acceptance, and the
	// unusable links.
	var okInv int
	for _, ev := range auditEvents(t, s, "user.invite") {
		if ev["outcome"] == "ok" && ev["actor"] != "operator" {
			okInv++
			if ev["actor"] != "ada@acme.test" {
				t.Errorf("user.invite by %v", ev["actor"])
			}
		}
	}
	if okInv != 2 {
		t.Errorf("%d successful user.invite events, want 2", okInv)
	}
	var accepted, denied int
	for _, ev := range auditEvents(t, s, "user.invite.accept") {
		switch ev["outcome"] {
		case "ok":
			accepted++
			if ev["actor"] != "nina@acme.test" {
				t.Errorf("user.invite.accept by %v", ev["actor"])
			}
		case "denied":
			denied++
		}
	}
	if accepted != 1 || denied == 0 {
		t.Errorf("user.invite.accept: %d ok, %d denied", accepted, denied)
	}
}

// TestAdminUIInvite: the admin UI's users page links to the invitation form;
// sending it mails the link (never shown on the page); errors are explained
// on the form; the invited user accepts.
func TestAdminUIInvite(t *testing.T) {
	mp := ferrytest.StartMailpit(t)
	s := ferrytest.Start(t, ferrytest.WithMail(mp))
	serverAdmin(t, s, "acme", "root@acme.test")
	b := newTwoPlanes(t, s)
	adminSignIn(t, b, "root@acme.test", adminPW)
	A := s.AdminURL
	_, users := b.get(A, "/admin/orgs/acme/users")
	if !strings.Contains(users, `href="/admin/orgs/acme/users/invite"`) {
		t.Fatalf("users page does not link to the invitation form:\n%s", users)
	}
	res, page := b.get(A, "/admin/orgs/acme/users/invite")
	if res.StatusCode != 200 || !strings.Contains(page, `id="invite-form"`) {
		t.Fatalf("invitation form: %d\n%s", res.StatusCode, page)
	}
	form := url.Values{"csrf": {csrfOf(t, page)}, "email": {"pia@acme.test"}, "role": {"user"}}
	// Without the CSRF token, or from another origin: refused.
	if res, _ := b.post(A, "/admin/orgs/acme/users/invite", url.Values{"email": {"pia@acme.test"}}); res.StatusCode != 403 {
		t.Fatalf("invite without CSRF token: %d", res.StatusCode)
	}
	if res, _ := b.post(A, "/admin/orgs/acme/users/invite", form, "https://evil.test"); res.StatusCode != 403 {
		t.Fatalf("cross-origin invite: %d", res.StatusCode)
	}
	res, page = b.post(A, "/admin/orgs/acme/users/invite", form)
	if res.StatusCode != 200 || !strings.Contains(page, "Invitation mailed to pia@acme.test") || inviteLinkRE.MatchString(page) {
		t.Fatalf("invite: %d\n%s", res.StatusCode, page)
	}
	bad := url.Values{"csrf": {form.Get("csrf")}, "email": {"ext@acme.test"}, "role": {"external"}}
	if res, page := b.post(A, "/admin/orgs/acme/users/invite", bad); res.StatusCode != 400 || !strings.Contains(page, "needs a party") {
		t.Fatalf("external without party: %d\n%s", res.StatusCode, page)
	}
	link := inviteLink(t, s, mp.WaitFor(t, "pia@acme.test", "invited", 30*time.Second))
	w := newBrowser(t, s)
	w.get(link)
	if res, _ := w.post(link, url.Values{"password": {"correct horse battery staple"}, "confirm": {"correct horse battery staple"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("accept: %d", res.StatusCode)
	}
	if _, users := b.get(A, "/admin/orgs/acme/users"); !strings.Contains(users, "pia@acme.test") {
		t.Fatal("the invited user is not listed")
	}

	// The outbox, for server administrators only: counts and rows without
	// bodies (the body holds the link).
	rootTok := strings.TrimSpace(s.Admin("token", "create", "--user", "root@acme.test"))
	orgAdmin := s.User("acme", "oa@acme.test", "admin")
	get := func(tok, path string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", A+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := s.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res, ferrytest.Body(t, res)
	}
	if res, body := get(orgAdmin, "/admin/v1/mail"); res.StatusCode != 403 {
		t.Fatalf("outbox for an organisation admin: %d %s", res.StatusCode, body)
	}
	if res, _ := get(rootTok, "/admin/v1/mail?limit=0"); res.StatusCode != 400 {
		t.Fatalf("limit=0: %d", res.StatusCode)
	}
	res, body := get(rootTok, "/admin/v1/mail")
	var st struct {
		Queued, Sent, Failed int
		Recent               []map[string]any
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || res.StatusCode != 200 {
		t.Fatalf("outbox: %d %s", res.StatusCode, body)
	}
	var invites int
	for _, m := range st.Recent {
		if m["kind"] == "invite.user" && m["status"] == "sent" && fmt.Sprint(m["recipients"]) == "[pia@acme.test]" {
			invites++
		}
	}
	if invites != 1 || st.Sent < 1 || st.Sent != len(st.Recent) {
		t.Fatalf("outbox: %s", body)
	}
	if strings.Contains(body, "/invite/") {
		t.Fatalf("the outbox listing shows a body: %s", body)
	}
	// And on /metrics.
	res, err := s.Client.Get(A + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics := ferrytest.Body(t, res)
	for _, want := range []string{`ferry_mail_total{result="queued"}`, `ferry_mail_total{result="sent"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestInviteGuessing: guessing invitation links from one address ends in
// 429 for that address (the sign-in limiter), while a real invitee on
// another address is not locked out.
func TestInviteGuessing(t *testing.T) {
	mp := ferrytest.StartMailpit(t)
	s := ferrytest.Start(t, ferrytest.WithMail(mp))
	ada := s.User("acme", "ada@acme.test", "admin")
	if res, body := postJSON(t, from(s, "127.0.0.1"), s.AdminURL+"/admin/v1/users/invite", ada, map[string]any{"org": "acme", "email": "nina@acme.test"}); res.StatusCode != 201 {
		t.Fatalf("invite: %d %s", res.StatusCode, body)
	}
	link := inviteLink(t, s, mp.WaitFor(t, "nina@acme.test", "invited", 30*time.Second))
	guesser := from(s, "127.0.0.7")
	locked := false
	for i := 0; i < 30 && !locked; i++ {
		res, err := guesser.Get(s.PublicURL + "/invite/" + strings.Repeat(string(rune('A'+i%26)), 43))
		if err != nil {
			t.Fatal(err)
		}
		ferrytest.Body(t, res)
		switch res.StatusCode {
		case 404:
		case 429:
			locked = true
		default:
			t.Fatalf("guess %d: %d", i, res.StatusCode)
		}
	}
	if !locked {
		t.Fatal("30 wrong invitation links from one address were not rate-limited")
	}
	// The guesser is locked out even with the right link; nina is not.
	res, err := guesser.Get(s.PublicURL + link)
	if err != nil {
		t.Fatal(err)
	}
	if ferrytest.Body(t, res); res.StatusCode != 429 {
		t.Fatalf("right link from the locked address: %d", res.StatusCode)
	}
	res, err = from(s, "127.0.0.8").Get(s.PublicURL + link)
	if err != nil {
		t.Fatal(err)
	}
	if body := ferrytest.Body(t, res); res.StatusCode != 200 || !strings.Contains(body, "nina@acme.test") {
		t.Fatalf("the invitee on another address: %d", res.StatusCode)
	}
}

// TestInviteSurvivesOutage: with the SMTP server down, an invitation is
// queued in the database; it survives a restart of Ferry, and once SMTP is
// back exactly one mail arrives, whose link works. (Takes the first retry
// interval, about 30 s.)
func TestInviteSurvivesOutage(t *testing.T) {
	mp := ferrytest.StartMailpit(t)
	mp.Stop()
	s := ferrytest.Start(t, ferrytest.WithMail(mp))
	ada := s.User("acme", "ada@acme.test", "admin")
	if res, body := postJSON(t, from(s, "127.0.0.1"), s.AdminURL+"/admin/v1/users/invite", ada, map[string]any{"org": "acme", "email": "nina@acme.test"}); res.StatusCode != 201 {
		t.Fatalf("invite during the outage: %d %s", res.StatusCode, body)
	}
	time.Sleep(time.Second) // the first attempt fails
	s.Restart()
	mp.Restart()
	m := mp.WaitFor(t, "nina@acme.test", "invited", 90*time.Second)
	time.Sleep(2 * time.Second)
	n := 0
	for _, x := range mp.Messages(t) {
		if len(x.To) == 1 && x.To[0] == "nina@acme.test" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d invitation mails arrived, want exactly 1", n)
	}
	loc := inviteLinkRE.FindString(m.Text)
	if loc == "" {
		t.Fatalf("no link in the mail:\n%s", m.Text)
	}
	path := loc[strings.Index(loc, "/invite/"):]
	res, page := newBrowser(t, s).get(path)
	if res.StatusCode != 200 || !strings.Contains(page, "nina@acme.test") {
		t.Fatalf("the delayed link: %d", res.StatusCode)
	}
}

// TestInviteWithoutSMTP: without --smtp-url an invitation is still created
// and queued, and the administrator is told it waits.
func TestInviteWithoutSMTP(t *testing.T) {
	s := ferrytest.Start(t)
	ada := s.User("acme", "ada@acme.test", "admin")
	res, body := postJSON(t, from(s, "127.0.0.1"), s.AdminURL+"/admin/v1/users/invite", ada, map[string]any{"org": "acme", "email": "nina@acme.test"})
	var got struct {
		MailConfigured *bool `json:"mail_configured"`
	}
	json.Unmarshal([]byte(body), &got)
	if res.StatusCode != 201 || got.MailConfigured == nil || *got.MailConfigured {
		t.Fatalf("invite without SMTP: %d %s", res.StatusCode, body)
	}
	out, errOut, err := s.Run("", "admin", "user", "invite", "--org", "acme", "--email", "olga@acme.test")
	if err != nil || !strings.Contains(out, "invited olga@acme.test") || !strings.Contains(errOut, "no SMTP server configured") {
		t.Fatalf("CLI invite without SMTP: %v\n%s\n%s", err, out, errOut)
	}
}
