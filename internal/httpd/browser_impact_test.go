package httpd_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"ferry.dev/ferry/internal/ferrytest"
)

// TestBrowserAdminImpact: in headless Chromium an administrator runs an
// impact report on the Impact page, sees the party whose file was read and
// the checkpoint, drafts the notifications and opens one for review, with no
// console error or CSP violation on the way.
func TestBrowserAdminImpact(t *testing.T) {
	ctx := newChromium(t)
	mp := ferrytest.StartMailpit(t)
	s := ferrytest.Start(t, ferrytest.WithMail(mp))
	withPassword(t, s, "acme", "ada@acme.test", "admin", "violet tugboat ledger quarry")
	s.Admin("party", "create", "--org", "acme", "Globex", "--contact", "legal@globex.test")
	s.Admin("folder", "create", "--org", "acme", "/globex", "--party", "Globex")
	tok := s.User("acme", "bot@acme.test", "admin")
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/globex/ledger.csv", tok, strings.NewReader("date,amount\n")), 201)
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/globex/ledger.csv", tok, nil), 200)
	base := adminLocalhostURL(s)
	var rec consoleRecorder
	if err := chromedp.Listen(ctx, rec.listen); err != nil {
		t.Fatal(err)
	}
	clean := func(what string) {
		t.Helper()
		if errs := rec.take(); len(errs) > 0 {
			t.Errorf("%s: console or CSP errors:\n  %s", what, strings.Join(errs, "\n  "))
		}
	}
	run(t, ctx, "admin sign-in",
		adminSignInSteps(base, "ada@acme.test", "violet tugboat ledger quarry"),
	)
	rec.take()
	scope := url.Values{"from": {time.Now().Add(-time.Hour).UTC().Format("2006-01-02T15:04")}, "to": {time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04")}}
	run(t, ctx, "the report",
		chromedp.Navigate(base+"/admin/impact?"+scope.Encode()),
		chromedp.WaitVisible(chromedp.CSS(`#impact-checkpoint`)),
		chromedp.WaitVisible(chromedp.Search(`//article[contains(@class, "party")]//h3[contains(., "Globex")]`)),
		chromedp.WaitVisible(chromedp.Search(`//td[contains(., "/globex/ledger.csv")]`)),
	)
	clean("report")
	run(t, ctx, "draft the notifications",
		chromedp.Click(chromedp.CSS(`#impact-draft button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`section.draft textarea[name=text]`)),
	)
	clean("drafts")
	if body := text(t, ctx, `section.draft`); !strings.Contains(body, "Globex") {
		t.Fatalf("draft:\n%s", body)
	}
}
