package httpd_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"ferry.dev/ferry/internal/ferrytest"
)

// adminLocalhostURL is the admin listener's URL with localhost for
// 127.0.0.1 (as localhostURL for the public one).
func adminLocalhostURL(s *ferrytest.Server) string {
	return strings.Replace(s.AdminURL, "://127.0.0.1:", "://localhost:", 1)
}

// TestBrowserAdmin: in headless Chromium, an administrator signs in on the
// admin listener, creates a user, grants them a folder and finds both
// actions in the audit view; the dashboard draws its charts.
func TestBrowserAdmin(t *testing.T) {
	ctx := newChromium(t)
	s := ferrytest.Start(t)
	withPassword(t, s, "acme", "ada@acme.test", "admin", "violet tugboat ledger quarry")
	s.Admin("folder", "create", "--org", "acme", "/projects/apollo")
	base := adminLocalhostURL(s)

	run(t, ctx, "admin sign-in",
		adminSignInSteps(base, "ada@acme.test", "violet tugboat ledger quarry"),
		chromedp.WaitVisible(chromedp.CSS(`figure.chart svg`)),
	)
	run(t, ctx, "create a user",
		chromedp.Navigate(base+"/admin/orgs/acme/users"),
		chromedp.WaitVisible(chromedp.CSS(`#user-form`)),
		chromedp.SendKeys(chromedp.CSS(`#user-form input[name=email]`), "erin@acme.test"),
		chromedp.SetValue(chromedp.CSS(`#user-form select[name=role]`), "user"),
		chromedp.Click(chromedp.CSS(`#user-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#secret`)),
		chromedp.WaitVisible(chromedp.Search(`//table[@id="users"]//td[contains(., "erin@acme.test")]`)),
	)
	if pw := text(t, ctx, `#secret`); len(pw) < 16 {
		t.Fatalf("generated password %q", pw)
	}
	run(t, ctx, "grant a folder",
		chromedp.Navigate(base+"/admin/orgs/acme/folders"),
		chromedp.WaitVisible(chromedp.CSS(`#grant-form`)),
		chromedp.SetValue(chromedp.CSS(`#grant-form select[name=email]`), "erin@acme.test"),
		chromedp.SetValue(chromedp.CSS(`#grant-form select[name=path]`), "/projects/apollo"),
		chromedp.Click(chromedp.CSS(`#grant-form input[value=write]`)),
		chromedp.Click(chromedp.CSS(`#grant-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.Search(`//table[@id="grants"]//td[@class="granted"][contains(., "list,read,write")]`)),
	)
	run(t, ctx, "the audit view shows both",
		chromedp.Navigate(base+"/admin/audit"),
		chromedp.WaitVisible(chromedp.CSS(`#events`)),
		chromedp.WaitVisible(chromedp.Search(`//table[@id="events"]//tr[td[.="user.create"]][td[contains(., "erin@acme.test")]]`)),
		chromedp.WaitVisible(chromedp.Search(`//table[@id="events"]//tr[td[.="grant.set"]][td[.="/projects/apollo"]]`)),
	)
	run(t, ctx, "filter by action",
		chromedp.SendKeys(chromedp.CSS(`#audit-filter input[name=action]`), "grant.*"),
		chromedp.Click(chromedp.CSS(`#audit-filter button`)),
		chromedp.WaitVisible(chromedp.Search(`//p[contains(., "1 matching events")]`)),
	)
	rows := text(t, ctx, `#events tbody`)
	if !strings.Contains(rows, "grant.set") || strings.Contains(rows, "user.create") {
		t.Fatalf("filtered audit view:\n%s", rows)
	}
	run(t, ctx, "verify the log",
		chromedp.Click(chromedp.CSS(`#verify-link`)),
		chromedp.WaitVisible(chromedp.Search(`//p[@id="verify-result"][contains(., "Verified")]`)),
	)
}
