package httpd_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"ferry.dev/ferry/internal/ferrytest"
)

// consoleRecorder keeps the console errors, uncaught exceptions and error
// log entries (CSP violations among them) a page produces.
type consoleRecorder struct {
	mu   sync.Mutex
	errs []string
}

func (c *consoleRecorder) listen(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			msg = "console." + string(ev.Type) + ": " + strings.Join(parts, " ")
		}
	case *runtime.EventExceptionThrown:
		msg = "exception: " + ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			msg += " " + ev.ExceptionDetails.Exception.Description
		}
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level == cdplog.EntryLevelError && !strings.HasSuffix(ev.Entry.URL, "/favicon.ico") {
			msg = "log (" + string(ev.Entry.Source) + "): " + ev.Entry.Text + " " + ev.Entry.URL
		}
	}
	if msg != "" {
		c.mu.Lock()
		c.errs = append(c.errs, msg)
		c.mu.Unlock()
	}
}

func (c *consoleRecorder) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.errs
	c.errs = nil
	return out
}

// TestBrowserPagesClean loads every page a user sees, signed out and
// signed in, and fails on any CSP violation, console error or uncaught
// exception. With FERRY_SCREENSHOTS=DIR (the test command sets it to
// docs/screenshots) it saves a screenshot of each.
func TestBrowserPagesClean(t *testing.T) {
	ctx := newChromium(t)
	s := ferrytest.Start(t)
	withPassword(t, s, "acme", "carol@acme.test", "user", "correct horse battery")
	withPassword(t, s, "acme", "dave@acme.test", "user", "correct horse battery")
	enrolTOTP(t, s, "dave@acme.test", "correct horse battery") // for the second-factor page
	s.Admin("party", "create", "--org", "acme", "Globex", "--contact", "legal@globex.test")
	s.Admin("folder", "create", "--org", "acme", "/finance/2026", "--party", "Globex")
	s.Admin("grant", "--org", "acme", "--user", "carol@acme.test", "/finance", "list,read,write,delete,share")
	tok := strings.TrimSpace(s.Admin("token", "create", "--user", "carol@acme.test"))
	for name, body := range map[string]string{
		"/finance/2026/invoice-4711.pdf": strings.Repeat("%PDF-1.7 ", 4000),
		"/finance/2026/ledger.csv":       strings.Repeat("date,amount\n", 900),
		"/finance/notes.txt":             "quarterly close\n",
	} {
		ferrytest.Expect(t, s.Do("PUT", "/api/v1/files"+escapeURLPath(name), tok, strings.NewReader(body)), 201)
	}
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
	check := func(name, path string, extra ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		run(t, ctx, name, append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(base + path), chromedp.WaitReady(chromedp.CSS("main"))}, extra...)...)
		var errs []string
		for _, e := range rec.take() {
			// The page's own status (the not-found page is a 404) is not a
			// fault of the page.
			if strings.HasPrefix(e, "log (network): ") && strings.HasSuffix(e, " "+base+path) {
				continue
			}
			errs = append(errs, e)
		}
		if len(errs) > 0 {
			t.Errorf("%s (%s): %d console or CSP errors:\n  %s", name, path, len(errs), strings.Join(errs, "\n  "))
		}
		if shots != "" {
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatalf("screenshot of %s: %v", name, err)
			}
			if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		a11y.check(name, path)
	}
	if shots != "" {
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
		run(t, ctx, "a desktop-sized viewport", chromedp.EmulateViewport(1200, 800))
	}
	check("login", "/login")
	// Pages of visitors without an account (a dead link looks like any
	// other: the uniform not-found page).
	check("invite-unknown", "/invite/no-such-invitation")
	check("package-unknown", "/p/no-such-package")
	run(t, ctx, "second factor due", signInWithPassword(base, "dave@acme.test", "correct horse battery"), chromedp.WaitVisible(chromedp.CSS(`#mfa-form`)))
	rec.take()
	check("login-mfa", "/login/mfa")
	run(t, ctx, "cancel", chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)), chromedp.WaitVisible(chromedp.CSS(`#login-form`)))
	run(t, ctx, "sign in", signInWithPassword(base, "carol@acme.test", "correct horse battery"), signedInHome)
	rec.take()
	check("home", "/")
	check("files", "/files/finance/2026")
	check("file", "/files/finance/2026/invoice-4711.pdf")
	check("folder", "/files/finance")
	check("account", "/account")
	check("inbox", "/inbox")
	check("outbox", "/outbox")
	check("not-found", "/files/finance/nothing-here")
	check("move", "/move/finance/notes.txt?at=/finance/2026")
	check("outbox-new", "/outbox/new")
	check("package-not-found", "/packages/no-such-package")
	res, body := postJSON(t, s.Client, s.PublicURL+"/api/v1/shares", tok, map[string]any{"path": "/finance/notes.txt"})
	var sh struct{ Token string }
	if res.StatusCode != 201 || json.Unmarshal([]byte(body), &sh) != nil || sh.Token == "" {
		t.Fatalf("create a share link: %d %s", res.StatusCode, body)
	}
	check("shares", "/shares")
	check("share-link", "/s/"+sh.Token)
	a11y.covered(false)
}

// TestBrowserNeverRendersUploads: an uploaded HTML page and SVG image
// carrying script are only ever downloaded — opened directly, framed, or
// embedded, their script never runs in Ferry's origin (DESIGN invariant 3).
func TestBrowserNeverRendersUploads(t *testing.T) {
	ctx := newChromium(t)
	s := ferrytest.Start(t)
	withPassword(t, s, "acme", "carol@acme.test", "user", "correct horse battery")
	s.Admin("folder", "create", "--org", "acme", "/in")
	s.Admin("grant", "--org", "acme", "--user", "carol@acme.test", "/in", "list,read,write")
	tok := strings.TrimSpace(s.Admin("token", "create", "--user", "carol@acme.test"))
	evil := map[string]string{
		"evil.html": `<!doctype html><html><body><script>top.document.title = "pwned-html"; localStorage.setItem("pwned", "html")</script><h1>evil</h1></body></html>`,
		"evil.svg":  `<svg xmlns="http://www.w3.org/2000/svg" onload="top.document.title='pwned-svg'"><script>top.document.title = "pwned-svg"; localStorage.setItem("pwned", "svg")</script><rect width="10" height="10"/></svg>`,
		"evil.js":   `top.document.title = "pwned-js"; localStorage.setItem("pwned", "js")`,
	}
	for name, body := range evil {
		ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/in/"+name, tok, strings.NewReader(body)), 201)
	}
	if _, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	base := localhostURL(s)
	run(t, ctx, "sign in", signInWithPassword(base, "carol@acme.test", "correct horse battery"), signedInHome)
	run(t, ctx, "the folder", chromedp.Navigate(base+"/files/in"), chromedp.WaitReady(chromedp.CSS("main")))
	title := func() string {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.title`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	pwned := func() string {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`String(localStorage.getItem("pwned"))`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := title()
	for name := range evil {
		// Framed, embedded as an image, object and script: from Ferry's own
		// page (the DevTools evaluation is not bound by the page's CSP, so
		// this is the strongest case: the elements are in the DOM).
		js := fmt.Sprintf(`(() => {
			const u = "/download/in/%[1]s";
			const f = document.createElement("iframe"); f.src = u; document.body.appendChild(f);
			const i = document.createElement("img"); i.src = u; document.body.appendChild(i);
			const o = document.createElement("object"); o.data = u; document.body.appendChild(o);
			const s = document.createElement("script"); s.src = u; document.body.appendChild(s);
			return true;
		})()`, name)
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js)); err != nil {
			t.Fatalf("embedding %s: %v", name, err)
		}
		run(t, ctx, "let it load", chromedp.Sleep(1500e6))
		if got := title(); got != before {
			t.Fatalf("embedding %s changed the page title to %q: its script ran", name, got)
		}
		if got := pwned(); got != "null" {
			t.Fatalf("embedding %s: its script ran (localStorage pwned=%s)", name, got)
		}
		// Opened directly: a download, not a page.
		chromedp.Do(ctx, chromedp.Navigate(base+"/download/in/"+name))
		run(t, ctx, "back to the folder", chromedp.Navigate(base+"/files/in"), chromedp.WaitReady(chromedp.CSS("main")))
		if got := pwned(); got != "null" {
			t.Fatalf("opening %s: its script ran (localStorage pwned=%s)", name, got)
		}
	}
}

// TestBrowserAdminPagesClean does the same for the admin UI on the admin
// listener (screenshots prefixed "admin-").
func TestBrowserAdminPagesClean(t *testing.T) {
	ctx := newChromium(t)
	s := ferrytest.Start(t)
	withPassword(t, s, "acme", "ada@acme.test", "admin", "violet tugboat ledger quarry")
	withPassword(t, s, "acme", "carol@acme.test", "user", "correct horse battery")
	withPassword(t, s, "acme", "olga@acme.test", "admin", "amber walrus kettle drift")
	enrolTOTP(t, s, "olga@acme.test", "amber walrus kettle drift") // for the second-factor page
	s.Admin("party", "create", "--org", "acme", "Globex", "--contact", "legal@globex.test")
	s.Admin("folder", "create", "--org", "acme", "/finance/2026", "--party", "Globex")
	s.Admin("grant", "--org", "acme", "--user", "carol@acme.test", "/finance", "list,read,write")
	tok := strings.TrimSpace(s.Admin("token", "create", "--user", "carol@acme.test"))
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/finance/2026/ledger.csv", tok, strings.NewReader("date,amount\n")), 201)
	ferrytest.Expect(t, s.Do("GET", "/api/v1/files/finance/2026/ledger.csv", tok, nil), 200)
	base := adminLocalhostURL(s)
	var rec consoleRecorder
	if err := chromedp.Listen(ctx, rec.listen); err != nil {
		t.Fatal(err)
	}
	shots := os.Getenv("FERRY_SCREENSHOTS")
	if shots != "" {
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
		run(t, ctx, "a desktop-sized viewport", chromedp.EmulateViewport(1200, 800))
	}
	desktop := chromedp.ResetViewport()
	if shots != "" {
		desktop = chromedp.EmulateViewport(1200, 800)
	}
	a11y := newA11y(t, ctx, true, desktop) // browser_a11y_test.go
	check := func(name, path string) {
		t.Helper()
		run(t, ctx, name, chromedp.Navigate(base+path), chromedp.WaitReady(chromedp.CSS("main")))
		var errs []string
		for _, e := range rec.take() {
			// The error page's own status is not a fault of the page.
			if strings.HasPrefix(e, "log (network): ") && strings.HasSuffix(e, " "+base+path) {
				continue
			}
			errs = append(errs, e)
		}
		if len(errs) > 0 {
			t.Errorf("%s (%s): %d console or CSP errors:\n  %s", name, path, len(errs), strings.Join(errs, "\n  "))
		}
		if shots != "" {
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatalf("screenshot of %s: %v", name, err)
			}
			if err := os.WriteFile(filepath.Join(shots, "admin-"+name+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		a11y.check("admin-"+name, path)
	}
	check("login", "/admin/login")
	run(t, ctx, "second factor due",
		chromedp.SendKeys(chromedp.CSS(`#login-form input[name=email]`), "olga@acme.test"),
		chromedp.SendKeys(chromedp.CSS(`#login-form input[name=password]`), "amber walrus kettle drift"),
		chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#mfa-form`)),
	)
	rec.take()
	check("mfa", "/admin/login/mfa")
	run(t, ctx, "cancel", chromedp.Click(chromedp.CSS(`form[action="/admin/logout"] button`)), chromedp.WaitVisible(chromedp.CSS(`#login-form`)))
	run(t, ctx, "admin sign-in",
		chromedp.SendKeys(chromedp.CSS(`#login-form input[name=email]`), "ada@acme.test"),
		chromedp.SendKeys(chromedp.CSS(`#login-form input[name=password]`), "violet tugboat ledger quarry"),
		chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.Search(`//h1[contains(., "Dashboard")]`)),
	)
	rec.take()
	check("dashboard", "/admin/")
	check("orgs", "/admin/orgs")
	check("users", "/admin/orgs/acme/users")
	check("parties", "/admin/orgs/acme/parties")
	check("folders", "/admin/orgs/acme/folders")
	check("tokens", "/admin/orgs/acme/tokens")
	check("policy", "/admin/orgs/acme/policy")
	check("audit", "/admin/audit")
	check("guard", "/admin/orgs/acme/guard")
	check("impact", "/admin/impact")
	check("impact-drafts", "/admin/impact/drafts")
	check("invite", "/admin/orgs/acme/users/invite")
	check("account", "/admin/account")
	check("org-shares", "/admin/orgs/acme/shares")
	check("not-found", "/admin/orgs/no-such-org/users")
	a11y.covered(true)
}
