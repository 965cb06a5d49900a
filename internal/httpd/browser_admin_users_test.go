package httpd_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"ferry.dev/ferry/internal/ferrytest"
)

// adminSignInSteps signs in on the admin listener's password form.
func adminSignInSteps(base, email, pw string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Navigate(base+"/admin/login"),
		chromedp.WaitVisible(chromedp.CSS(`#login-form`)),
		chromedp.SendKeys(chromedp.CSS(`#login-form input[name=email]`), email),
		chromedp.SendKeys(chromedp.CSS(`#login-form input[name=password]`), pw),
		chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.Search(`//h1[contains(., "Dashboard")]`)),
	)
}

// TestBrowserAdminEnableAndRevoke: in Chromium an administrator disables a
// user, enables them again with the users page's button, and removes their
// grant from the folders and grants matrix.
func TestBrowserAdminEnableAndRevoke(t *testing.T) {
	ctx := newChromium(t)
	s := ferrytest.Start(t)
	withPassword(t, s, "acme", "ada@acme.test", "admin", "violet tugboat ledger quarry")
	withPassword(t, s, "acme", "bob@acme.test", "user", "correct horse battery")
	s.Admin("folder", "create", "--org", "acme", "/projects")
	s.Admin("grant", "--org", "acme", "--user", "bob@acme.test", "/projects", "list,read")
	base := adminLocalhostURL(s)

	bobRow := `//table[@id="users"]//tr[td[contains(., "bob@acme.test")]]`
	run(t, ctx, "sign in", adminSignInSteps(base, "ada@acme.test", "violet tugboat ledger quarry"))
	run(t, ctx, "disable bob",
		chromedp.Navigate(base+"/admin/orgs/acme/users"),
		chromedp.Click(chromedp.Search(bobRow+`//button[.="Disable"]`)),
		chromedp.WaitVisible(chromedp.Search(bobRow+`//span[contains(., "disabled")]`)),
	)
	run(t, ctx, "enable bob",
		chromedp.Click(chromedp.Search(bobRow+`//button[.="Enable"]`)),
		chromedp.WaitVisible(chromedp.Search(bobRow+`//td[.="active"]`)),
	)
	run(t, ctx, "remove bob's grant",
		chromedp.Navigate(base+"/admin/orgs/acme/folders"),
		chromedp.WaitVisible(chromedp.Search(`//table[@id="grants"]//td[@class="granted"][contains(., "list,read")]`)),
		chromedp.Click(chromedp.CSS(`#grants button[aria-label="Remove the grant of bob@acme.test on /projects"]`)),
		// The form is on the page before the click too: wait for the
		// answer's page, on which the button is gone.
		chromedp.WaitNotPresent(chromedp.CSS(`#grants button[aria-label="Remove the grant of bob@acme.test on /projects"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#grant-form`)),
	)
	if cells := text(t, ctx, `#grants tbody`); strings.Contains(cells, "list,read") {
		t.Fatalf("grant still shown:\n%s", cells)
	}
	run(t, ctx, "the audit view shows both",
		chromedp.Navigate(base+"/admin/audit"),
		chromedp.WaitVisible(chromedp.Search(`//table[@id="events"]//tr[td[.="user.enable"]]`)),
		chromedp.WaitVisible(chromedp.Search(`//table[@id="events"]//tr[td[.="grant.revoke"]][td[.="/projects"]]`)),
	)
}
