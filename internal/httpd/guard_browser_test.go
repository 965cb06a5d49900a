package httpd_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"ferry.dev/ferry/internal/ferrytest"
)

// TestGuardBrowserUnfreeze: in headless Chromium, an administrator finds a
// user the guard froze (for reading a canary file) on the organisation's
// Guard page, reached from its navigation, unfreezes them with one click,
// and generates decoy canaries with the form; the user's token works again.
func TestGuardBrowserUnfreeze(t *testing.T) {
	ctx := newChromium(t)
	s := ferrytest.Start(t)
	withPassword(t, s, "acme", "ada@acme.test", "admin", "violet tugboat ledger quarry")
	s.Admin("user", "create", "--org", "acme", "--email", "carol@acme.test")
	s.Admin("folder", "create", "--org", "acme", "/finance")
	s.Admin("grant", "--org", "acme", "--user", "carol@acme.test", "/finance", "list,read,write")
	tok := strings.TrimSpace(s.Admin("token", "create", "--user", "carol@acme.test"))
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/finance/salaries.csv", tok, strings.NewReader("name,salary\n")), 201)
	s.Admin("canary", "mark", "--org", "acme", "/finance/salaries.csv")
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/salaries.csv", tok, nil), 403)
	ferrytest.Expect(t, s.Do("GET", "/api/v1/me", tok, nil), 403)

	base := adminLocalhostURL(s)
	run(t, ctx, "admin sign-in",
		adminSignInSteps(base, "ada@acme.test", "violet tugboat ledger quarry"),
	)
	run(t, ctx, "the Guard page lists the frozen user",
		chromedp.Navigate(base+"/admin/orgs/acme/users"),
		chromedp.Click(chromedp.CSS(`nav.subnav a[href="/admin/orgs/acme/guard"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#frozen`)),
		chromedp.WaitVisible(chromedp.Search(`//table[@id="frozen"]//td[contains(., "carol@acme.test")]`)),
		chromedp.WaitVisible(chromedp.Search(`//table[@id="frozen"]//td[contains(., "canary")]`)),
		chromedp.WaitVisible(chromedp.Search(`//table[@id="canaries"]//td[.="/finance/salaries.csv"]`)),
	)
	run(t, ctx, "unfreeze with one click",
		chromedp.Click(chromedp.CSS(`#frozen button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#frozen-none`)),
	)
	ferrytest.Expect(t, s.Do("GET", "/api/v1/me", tok, nil), 200)
	run(t, ctx, "generate decoys",
		chromedp.SetValue(chromedp.CSS(`#canary-generate input[name=folder]`), "/finance"),
		chromedp.SetValue(chromedp.CSS(`#canary-generate input[name=count]`), "2"),
		chromedp.Click(chromedp.CSS(`#canary-generate button[type=submit]`)),
		chromedp.WaitVisible(chromedp.Search(`//p[contains(., "Generated 2 decoys.")]`)),
	)
	if rows := text(t, ctx, `#canaries tbody`); strings.Count(rows, "generated decoy") != 2 || !strings.Contains(rows, "/finance/") {
		t.Fatalf("canaries after generating:\n%s", rows)
	}
}
