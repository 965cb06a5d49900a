package httpd_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"ferry.dev/ferry/internal/ferrytest"
)

// TestBrowserPackages composes and sends a package in Chromium (the form,
// the drag-and-drop uploader's file picker, send), then opens it as the
// external recipient (code from the mail, the file listed) — without a
// console error or CSP violation, and passing the accessibility and
// phone-width checks. With FERRY_SCREENSHOTS it saves the
// compose, draft, sent and guest pages.
func TestBrowserPackages(t *testing.T) {
	ctx := newChromium(t)
	mp := ferrytest.StartMailpit(t)
	s := ferrytest.Start(t, ferrytest.WithMail(mp))
	withPassword(t, s, "acme", "carol@acme.test", "user", "correct horse battery")
	base := localhostURL(s)
	var rec consoleRecorder
	if err := chromedp.Listen(ctx, rec.listen); err != nil {
		t.Fatal(err)
	}
	shots := os.Getenv("FERRY_SCREENSHOTS")
	desktop := chromedp.ResetViewport()
	if shots != "" {
		desktop = chromedp.EmulateViewport(1200, 800)
	}
	a11y := newA11y(t, ctx, false, desktop) // browser_a11y_test.go
	shot := func(name string) {
		t.Helper()
		if errs := rec.take(); len(errs) > 0 {
			t.Errorf("%s: console or CSP errors:\n  %s", name, strings.Join(errs, "\n  "))
		}
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		a11y.check(name, strings.TrimPrefix(loc, base))
		if shots == "" {
			return
		}
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if shots != "" {
		run(t, ctx, "a desktop-sized viewport", chromedp.EmulateViewport(1200, 800))
	}
	src := filepath.Join(t.TempDir(), "price-list.csv")
	if err := os.WriteFile(src, []byte(strings.Repeat("item,price\n", 5000)), 0o600); err != nil {
		t.Fatal(err)
	}

	run(t, ctx, "sign in", signInWithPassword(base, "carol@acme.test", "correct horse battery"), signedInHome)
	run(t, ctx, "compose",
		chromedp.Navigate(base+"/outbox"),
		chromedp.Click(chromedp.CSS(`#new-package`)),
		chromedp.WaitVisible(chromedp.CSS(`#compose`)),
		chromedp.SendKeys(chromedp.CSS(`#to`), "buyer@client.test"),
		chromedp.SendKeys(chromedp.CSS(`#subject`), "Price list 2027"),
		chromedp.SendKeys(chromedp.CSS(`#message`), "As discussed."),
		chromedp.SendKeys(chromedp.CSS(`#expires`), "7d"),
	)
	shot("packages-compose")
	run(t, ctx, "draft and upload",
		chromedp.Click(chromedp.CSS(`#compose button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#drop`)),
		chromedp.SetUploadFiles(chromedp.CSS(`#pick-files`), []string{src}),
		chromedp.WaitVisible(chromedp.CSS(`#uploads-done`)),
		chromedp.Click(chromedp.CSS(`#uploads-done`)),
		chromedp.WaitVisible(chromedp.Search(`//table[@id="package-files"]//td[contains(., "price-list.csv")]`)),
	)
	shot("packages-draft")
	run(t, ctx, "send",
		chromedp.Click(chromedp.CSS(`#send-package`)),
		chromedp.WaitVisible(chromedp.CSS(`#receipts`)),
	)
	if st := text(t, ctx, `#package-status`); st != "sent" {
		t.Fatalf("status after sending: %q", st)
	}
	shot("packages-sent")

	msg := mp.WaitFor(t, "buyer@client.test", "Price list 2027", 20*time.Second)
	link := regexp.MustCompile(`/p/[A-Za-z0-9_-]{43}`).FindString(msg.Text)
	if link == "" {
		t.Fatalf("no link in the mail:\n%s", msg.Text)
	}
	run(t, ctx, "the guest asks for a code",
		chromedp.Navigate(base+link),
		chromedp.Click(chromedp.Search(`//button[contains(., "Email me a code")]`)),
		chromedp.WaitVisible(chromedp.CSS(`#code`)),
	)
	shot("guest-code")
	code := pkgWaitCode(t, mp, "buyer@client.test", 1)
	run(t, ctx, "the guest enters the code",
		chromedp.SendKeys(chromedp.CSS(`#code`), code),
		chromedp.Click(chromedp.Search(`//button[contains(., "Open the package")]`)),
		chromedp.WaitVisible(chromedp.Search(`//td[contains(., "price-list.csv")]`)),
	)
	shot("guest-package")
}
