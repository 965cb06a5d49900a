package httpd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"ferry.dev/ferry/internal/ferrytest"
)

// TestBrowserShareDropBox: in Chromium, a visitor opens a password-protected
// drop box link, gives the password and uploads a file with the page's own
// form (multipart, CSRF field, same origin), without seeing what is there.
func TestBrowserShareDropBox(t *testing.T) {
	ctx := newChromium(t)
	s := ferrytest.Start(t)
	alice := s.User("acme", "alice@acme.test", "admin")
	ferrytest.Expect(t, s.Do("POST", "/api/v1/folders/incoming", alice, nil), 201)
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/incoming/private.txt", alice, strings.NewReader("not for visitors")), 201)
	sh := makeShare(t, s, alice, map[string]any{"path": "/incoming", "mode": "dropbox", "password": "drop box password"})
	link := strings.Replace(sh.URL, s.PublicURL, localhostURL(s), 1)
	src := filepath.Join(t.TempDir(), "invoice from partner.pdf")
	if err := os.WriteFile(src, []byte("%PDF-1.7 partner invoice"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "open the link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`#share-password`)))
	run(t, ctx, "give the password",
		chromedp.SendKeys(chromedp.CSS(`#share-pw`), "drop box password"),
		chromedp.Click(chromedp.CSS(`#share-password button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#share-dropbox`)))
	if body := text(t, ctx, "main"); strings.Contains(body, "private.txt") {
		t.Fatalf("the drop box shows its contents:\n%s", body)
	}
	run(t, ctx, "upload",
		chromedp.SetUploadFiles(chromedp.CSS(`#share-file`), []string{src}),
		chromedp.Click(chromedp.CSS(`#share-dropbox button[type=submit]`)),
		chromedp.WaitVisible(chromedp.Search(`//p[contains(., "Uploaded")]`)))
	got := ferrytest.Expect(t, s.Do("GET", "/api/v1/files/incoming/invoice%20from%20partner.pdf", alice, nil), 200)
	if got != "%PDF-1.7 partner invoice" {
		t.Fatalf("uploaded content %q", got)
	}
}
