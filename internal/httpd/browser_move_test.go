package httpd_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"ferry.dev/ferry/internal/ferrytest"
)

// TestBrowserMoveChooser: in Chromium a user moves a file into another
// folder by choosing it in the folder chooser, with the keyboard only
// (Tab to a folder's link, Enter, Tab to "Move here", Enter); a folder
// cannot be moved into itself; the chooser page has no script and a strict
// CSP.
func TestBrowserMoveChooser(t *testing.T) {
	ctx := newChromium(t)
	s := ferrytest.Start(t)
	withPassword(t, s, "acme", "carol@acme.test", "user", "correct horse battery")
	s.Admin("folder", "create", "--org", "acme", "/finance/2026")
	s.Admin("folder", "create", "--org", "acme", "/finance/archive/old")
	s.Admin("grant", "--org", "acme", "--user", "carol@acme.test", "/finance", "list,read,write,delete")
	tok := strings.TrimSpace(s.Admin("token", "create", "--user", "carol@acme.test"))
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/finance/notes.txt", tok, strings.NewReader("quarterly close\n")), 201)
	base := localhostURL(s)

	run(t, ctx, "sign in", signInWithPassword(base, "carol@acme.test", "correct horse battery"), signedInHome)
	run(t, ctx, "open the chooser from the file's page",
		chromedp.Navigate(base+"/files/finance/notes.txt"),
		chromedp.Click(chromedp.CSS(`#move-link`)),
		chromedp.WaitVisible(chromedp.CSS(`#move-chooser`)),
		chromedp.WaitVisible(chromedp.Search(`//ul[@id="move-folders"]//a[.="2026/"]`)),
		chromedp.WaitVisible(chromedp.Search(`//ul[@id="move-folders"]//a[.="archive/"]`)),
		chromedp.WaitVisible(chromedp.Search(`//p[contains(., "It is in this folder now")]`)),
	)
	// Keyboard only from here: Tab until the "archive/" link has focus.
	tabTo := func(what, js string) {
		t.Helper()
		for i := 0; i < 40; i++ {
			run(t, ctx, "tab", chromedp.KeyEvent(kb.Tab))
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				return
			}
		}
		t.Fatalf("Tab never reached %s", what)
	}
	tabTo("the archive folder", `document.activeElement && document.activeElement.textContent === "archive/"`)
	run(t, ctx, "open it with Enter",
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.Search(`//button[contains(., "Move here: /finance/archive")]`)),
		chromedp.WaitVisible(chromedp.Search(`//ul[@id="move-folders"]//a[.="old/"]`)),
	)
	tabTo("Move here", `document.activeElement && document.activeElement.closest("#move-here") !== null`)
	run(t, ctx, "move with Enter",
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.Search(`//p[@role="status"][contains(., "Moved.")]`)),
		chromedp.WaitVisible(chromedp.Search(`//table[@id="listing"]//a[.="notes.txt"]`)),
	)
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasPrefix(loc, base+"/files/finance/archive") {
		t.Fatalf("after the move the browser is at %s", loc)
	}
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/archive/notes.txt", tok, nil), 200)
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/notes.txt", tok, nil), 404)

	// A folder is not offered as its own destination, nor may it go
	// below itself.
	run(t, ctx, "move a folder",
		chromedp.Navigate(base+"/move/finance/archive?at=/finance"),
		chromedp.WaitVisible(chromedp.CSS(`#move-chooser`)),
	)
	if list := text(t, ctx, `#move-folders`); strings.Contains(list, "archive/") || !strings.Contains(list, "2026/") {
		t.Fatalf("chooser for /finance/archive lists:\n%s", list)
	}
	run(t, ctx, "below itself",
		chromedp.Navigate(base+"/move/finance/archive?at=/finance/archive/old"),
		chromedp.WaitVisible(chromedp.Search(`//p[@role="alert"][contains(., "cannot be moved into itself")]`)),
	)
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#move-here, script").length`)); n != 0 {
		t.Fatalf("%d move forms or scripts on the refused chooser page", n)
	}
}
