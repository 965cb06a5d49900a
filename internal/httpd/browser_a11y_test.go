package httpd_test

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"ferry.dev/ferry/internal/ferrytest"
	"ferry.dev/ferry/internal/httpd"
)

// Accessibility and phone width, checked on every page by the page tests of
// browser_pages_test.go (their check function calls a11y.check):
//
//   - at 375×667 CSS pixels (a small phone) nothing scrolls sideways:
//     document.scrollingElement.scrollWidth ≤ innerWidth;
//   - every visible form control has an accessible name (aria-labelledby,
//     aria-label, a <label>, a button's text, a title);
//   - pressing Tab from the top of the page reaches the page's main action
//     (a keyboard user can do what the page is for).
//
// And coverage: every GET route of a listener that answers with a page must
// have been checked, or be listed in notPages with the reason; a new page
// added by anyone fails the test until it is visited.

// phoneW and phoneH are the phone viewport.
const phoneW, phoneH = 375, 667

// a11yChecker runs the checks in one browser tab and records which route
// patterns it visited.
type a11yChecker struct {
	t       *testing.T
	ctx     context.Context
	mux     *http.ServeMux // the listener's GET routes, to name a path's pattern
	visited map[string]bool
	desktop chromedp.Action[chromedp.Void] // restores the test's viewport
}

// newA11y returns a checker for the public (admin=false) or admin
// listener's pages.
func newA11y(t *testing.T, ctx context.Context, admin bool, desktop chromedp.Action[chromedp.Void]) *a11yChecker {
	pub, adm := httpd.RoutePatterns()
	pats := pub
	if admin {
		pats = adm
	}
	mux := http.NewServeMux()
	for _, p := range pats {
		if strings.HasPrefix(p, "GET ") {
			mux.Handle(p, http.NotFoundHandler())
		}
	}
	return &a11yChecker{t: t, ctx: ctx, mux: mux, visited: map[string]bool{}, desktop: desktop}
}

// mainActions names the main action of pages whose first submit button or
// button link is not it (by the check's name).
var mainActions = map[string]string{
	"login":     `#login-form button[type=submit]`,
	"files":     `#pick-files`,
	"folder":    `#pick-files`,
	"file":      `#file a.button`,
	"account":   `form[action="/account/password"] button[type=submit], main button[type=submit]`,
	"not-found": `main a[href]`,
	// The uniform dead-link page of package links offers nothing to do.
	"package-unknown": "none",
	// Empty lists: nothing to do yet.
	"inbox":               "none",
	"admin-impact-drafts": "none",
	"admin-org-shares":    "none",
	"move":                `#move-here button`,
	"admin-users":         `#user-form button[type=submit]`,
	"admin-login":         `#login-form button[type=submit]`,
	"admin-audit":         `#audit-filter button`,
}

// defaultMain is the main action of any other page: its first submit
// button or button-styled link in <main>, else its first link there.
const defaultMain = `main [type=submit]:not(.link), main a.button`

const labelsJS = `(() => {
	const bad = [];
	const text = (el) => (el.textContent || "").replace(/\s+/g, " ").trim();
	const shown = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
	for (const el of document.querySelectorAll("input, select, textarea, button")) {
		if (el.type === "hidden" || el.closest("[hidden]")) continue;
		if (!shown(el) && !(el.labels && el.labels.length && shown(el.labels[0]))) continue;
		let name = "";
		const by = el.getAttribute("aria-labelledby");
		if (by) name = by.split(/\s+/).map((id) => { const r = document.getElementById(id); return r ? text(r) : ""; }).join(" ").trim();
		if (!name) name = (el.getAttribute("aria-label") || "").trim();
		if (!name && el.labels) name = Array.from(el.labels).map(text).join(" ").trim();
		if (!name && el.tagName === "BUTTON") name = text(el);
		if (!name && el.tagName === "INPUT" && ["submit", "button", "reset"].includes(el.type)) name = el.value || "";
		if (!name) name = (el.getAttribute("title") || "").trim();
		if (!name) bad.push(el.outerHTML.slice(0, 200));
	}
	return bad;
})()`

const overflowJS = `(() => {
	const w = window.innerWidth, sw = document.scrollingElement.scrollWidth;
	if (sw <= w) return "";
	const wide = [];
	const clipped = (el) => {
		for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
			const o = getComputedStyle(p).overflowX;
			if (o === "auto" || o === "scroll" || o === "hidden" || o === "clip") return true;
		}
		return false;
	};
	for (const el of document.querySelectorAll("body *")) {
		const r = el.getBoundingClientRect();
		if (r.right > w + 0.5 && !clipped(el) && wide.length < 6) wide.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (el.className && typeof el.className === "string" ? "." + el.className.trim().replace(/\s+/g, ".") : "") + " right=" + Math.round(r.right));
	}
	return "scrollWidth " + sw + " > innerWidth " + w + "; too wide: " + wide.join(", ");
})()`

// markMain marks the page's main action for the Tab walk and says whether
// there is one.
func markMain(sel string) string {
	return `(() => {
	const shown = (el) => el.getClientRects().length > 0 || (el.labels && el.labels.length && el.labels[0].getClientRects().length > 0);
	let el = Array.from(document.querySelectorAll(` + jsString(sel) + `)).find(shown);
	if (!el) el = Array.from(document.querySelectorAll("main a[href]")).find(shown);
	if (!el) return "";
	el.setAttribute("data-a11y-main", "");
	return el.outerHTML.slice(0, 200);
})()`
}

func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// check runs the checks on the page the tab shows (loaded from path), named
// name for the messages and mainActions.
func (a *a11yChecker) check(name, path string) {
	t := a.t
	t.Helper()
	if u, err := url.Parse(path); err == nil {
		if _, pat := a.mux.Handler(&http.Request{Method: "GET", URL: u, Host: "localhost"}); pat != "" {
			a.visited[pat] = true
		}
	}
	ctx, cancel := context.WithTimeout(a.ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(phoneW, phoneH)); err != nil {
		t.Fatalf("%s: phone viewport: %v", name, err)
	}
	defer func() {
		if err := chromedp.Do(ctx, a.desktop); err != nil {
			t.Fatalf("%s: restore the viewport: %v", name, err)
		}
	}()
	over, err := chromedp.Run(ctx, chromedp.Evaluate[string](overflowJS))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if over != "" {
		t.Errorf("%s (%s) at %d×%d scrolls sideways: %s", name, path, phoneW, phoneH, over)
	}
	bad, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](labelsJS))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, b := range bad {
		t.Errorf("%s (%s): a form control without an accessible name: %s", name, path, b)
	}
	sel := mainActions[name]
	switch sel {
	case "none":
		return
	case "":
		sel = defaultMain
	}
	target, err := chromedp.Run(ctx, chromedp.Evaluate[string](markMain(sel)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if target == "" {
		t.Errorf("%s (%s): no main action found (%s)", name, path, sel)
		return
	}
	// Tab from the top of the document: focus a (not tabbable) element
	// put before everything else.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const s = document.createElement("span"); s.tabIndex = -1; document.body.prepend(s); s.focus(); return true; })()`)); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for i := 0; i < 150; i++ {
		if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)); err != nil {
			t.Fatalf("%s: Tab: %v", name, err)
		}
		on, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(document.activeElement && document.activeElement.hasAttribute("data-a11y-main"))`))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if on {
			return
		}
	}
	t.Errorf("%s (%s): 150 presses of Tab never reach the main action %s", name, path, target)
}

// notPages are the GET routes of each listener that answer with no page to
// check (APIs, downloads, assets, redirects) or with a page that only an
// identity provider or a one-time setup makes reachable, each with why.
// Every path under /api/ and /admin/v1/ is an API.
var notPages = map[bool]map[string]string{
	false: { // the public listener
		"GET /healthz":                      "health check (text)",
		"GET /static/{file}":                "assets",
		"GET /download/{path...}":           "downloads (attachment)",
		"GET /zip/{path...}":                "downloads (attachment)",
		"GET /s/{token}/download/{path...}": "downloads (attachment)",
		"GET /p/{token}/files/{file}":       "downloads (attachment)",
		"GET /packages/{id}/files/{file}":   "downloads (attachment)",
		"GET /login/sso":                    "moves on to the identity provider (TestBrowserSSO goes through it)",
		"GET /login/sso/callback":           "the identity provider's redirect back (TestBrowserSSO)",
	},
	true: { // the admin listener
		"GET /healthz":                  "health check (text)",
		"GET /metrics":                  "Prometheus metrics (text)",
		"GET /admin/static/{file}":      "assets",
		"GET /admin/static/passkey.js":  "asset",
		"GET /admin/audit/export":       "downloads (CSV/JSON)",
		"GET /admin/impact/export":      "downloads (CSV/JSON)",
		"GET /admin/login/sso":          "moves on to the identity provider (TestAdminSSO goes through it)",
		"GET /admin/login/sso/callback": "the identity provider's redirect back (TestAdminSSO)",
		"GET /{$}":                      "redirects to /admin/",
		"GET /login":                    "redirects to /admin/login",
		"GET /setup":                    "the one-time first-administrator form, only before any administrator exists",
	},
}

// missing returns the page routes of the listener not visited.
func (a *a11yChecker) missing(admin bool) []string {
	pub, adm := httpd.RoutePatterns()
	pats := pub
	if admin {
		pats = adm
	}
	var out []string
	for _, p := range pats {
		if !strings.HasPrefix(p, "GET ") || a.visited[p] || notPages[admin][p] != "" ||
			strings.HasPrefix(p, "GET /api/") || strings.HasPrefix(p, "GET /admin/v1/") {
			continue
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// covered fails the test for every page route of the listener that was
// not checked.
func (a *a11yChecker) covered(admin bool) {
	a.t.Helper()
	for _, p := range a.missing(admin) {
		a.t.Errorf("page %q was not checked: visit it in the page test (or list it in notPages with the reason)", p)
	}
}

// enrolTOTP gives the user an authenticator app (through the public
// listener's account page), so that a password sign-in stops at the
// second-factor page.
func enrolTOTP(t *testing.T, s *ferrytest.Server, email, pw string) {
	t.Helper()
	b := newBrowser(t, s)
	if res := b.signIn(email, pw); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in %s: %d", email, res.StatusCode)
	}
	_, page := b.get("/account")
	csrf := csrfOf(t, page)
	_, page = b.post("/account/mfa/totp/begin", url.Values{"csrf": {csrf}})
	m := secretRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no TOTP secret shown:\n%s", page)
	}
	var used int64
	if res, _ := b.post("/account/mfa/totp/confirm", url.Values{"csrf": {csrf}, "code": {freshCode(t, m[1], &used)}}); res.StatusCode != 200 {
		t.Fatalf("confirm TOTP: %d", res.StatusCode)
	}
}
