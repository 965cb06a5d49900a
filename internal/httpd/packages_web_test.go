package httpd_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"ferry.dev/ferry/internal/client"
	"ferry.dev/ferry/internal/ferrytest"
)

func pkgSignIn(t *testing.T, b *browser, email, pw string) {
	t.Helper()
	res, _ := b.post("/login", url.Values{"email": {email}, "password": {pw}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in of %s: %d", email, res.StatusCode)
	}
}

// TestPackageWebPages composes a package in the web UI (form, upload into
// the draft's folder, send), to a Ferry user, who finds it in their inbox
// and downloads it (counted, receipted); the sender sees the receipt in the
// package page and recalls it.
func TestPackageWebPages(t *testing.T) {
	mp := ferrytest.StartMailpit(t)
	s := ferrytest.Start(t, ferrytest.WithMail(mp))
	const pw = "correct horse battery"
	withPassword(t, s, "acme", "alice@acme.test", "user", pw)
	withPassword(t, s, "acme", "dave@acme.test", "user", pw)
	alice := newBrowser(t, s)
	pkgSignIn(t, alice, "alice@acme.test", pw)

	_, page := alice.get("/outbox")
	if !strings.Contains(page, "You have not sent any packages") {
		t.Fatalf("empty outbox:\n%s", page)
	}
	_, page = alice.get("/outbox/new")
	csrf := csrfOf(t, page)
	// Refused input comes back in the form, nothing created.
	res, page := alice.post("/outbox/new", url.Values{"csrf": {csrf}, "to": {"dave@acme.test, dave@acme.test"}, "subject": {"x"}})
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(page, "more than once") || !strings.Contains(page, `value="dave@acme.test, dave@acme.test"`) {
		t.Fatalf("duplicate recipients: %d\n%s", res.StatusCode, page)
	}
	res, _ = alice.post("/outbox/new", url.Values{"csrf": {csrf}, "to": {"dave@acme.test"}, "subject": {"Contract"}, "notify": {"1"}, "max_downloads": {"2"}, "allow_reply": {"1"}})
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/packages/") {
		t.Fatalf("compose: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	pkgURL := res.Header.Get("Location")
	_, page = alice.get(pkgURL)
	m := regexp.MustCompile(`data-folder="([^"]+)"`).FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, "files.js") {
		t.Fatalf("draft page has no uploader:\n%s", page)
	}
	// Sending without files is refused on the page.
	res, page = alice.post(pkgURL+"/send", url.Values{"csrf": {csrf}})
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(page, "no files") {
		t.Fatalf("send without files: %d\n%s", res.StatusCode, page)
	}
	// The upload (the page's script does this with tus; here the API).
	tok := strings.TrimSpace(s.Admin("token", "create", "--user", "alice@acme.test"))
	c, _ := client.New(client.Config{Server: s.PublicURL, Token: tok, CAFile: s.CA()})
	if _, err := c.Upload(context.Background(), bytes.NewReader([]byte("the contract")), 12, m[1]+"/contract.txt", client.UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	res, _ = alice.post(pkgURL+"/send", url.Values{"csrf": {csrf}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("send: %d", res.StatusCode)
	}
	msg := mp.WaitFor(t, "dave@acme.test", "Contract", 20*time.Second)
	if !strings.Contains(msg.Text, "Sign in to Ferry") || !strings.Contains(msg.Text, pkgURL) || strings.Contains(msg.Text, "/p/") {
		t.Errorf("a Ferry user's mail should send them to sign in:\n%s", msg.Text)
	}

	dave := newBrowser(t, s)
	pkgSignIn(t, dave, "dave@acme.test", pw)
	_, page = dave.get("/inbox")
	if !strings.Contains(page, "Contract") || !strings.Contains(page, "alice@acme.test") {
		t.Fatalf("inbox:\n%s", page)
	}
	_, page = dave.get(pkgURL)
	fm := regexp.MustCompile(pkgURL + `/files/([0-9a-f]{32})`).FindStringSubmatch(page)
	if fm == nil || strings.Contains(page, "Receipts") {
		t.Fatalf("recipient's package page:\n%s", page)
	}
	res, err := dave.c.Get(s.PublicURL + fm[0])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "the contract" || !strings.HasPrefix(res.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("recipient download: %d %q", res.StatusCode, body)
	}
	// The second download through the API, the third is past the limit.
	daveTok := strings.TrimSpace(s.Admin("token", "create", "--user", "dave@acme.test"))
	apiPath := "/api/v1" + fm[0]
	if b := ferrytest.Expect(t, s.Do("GET", apiPath, daveTok, nil), http.StatusOK); b != "the contract" {
		t.Errorf("API download: %q", b)
	}
	ferrytest.Expect(t, s.Do("GET", apiPath, daveTok, nil), http.StatusGone)
	if res, _ := dave.get(fm[0]); res.StatusCode != http.StatusGone {
		t.Errorf("third download past the limit of 2: %d", res.StatusCode)
	}
	// Dave replies from the package page.
	if res, b := dave.postFile(pkgURL+"/reply", csrfOf(t, page), "countersigned.txt", []byte("signed")); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("reply: %d\n%s", res.StatusCode, b)
	}
	// Without the CSRF token (a cross-site form), nothing is stored.
	if res, _ := dave.postFile(pkgURL+"/reply", "", "forged.txt", []byte("x")); res.StatusCode == http.StatusSeeOther {
		t.Errorf("reply without the CSRF token: %v", res.StatusCode)
	}
	// Another user of the organisation sees nothing.
	withPassword(t, s, "acme", "eve@acme.test", "admin", pw)
	eve := newBrowser(t, s)
	pkgSignIn(t, eve, "eve@acme.test", pw)
	if res, _ := eve.get(pkgURL); res.StatusCode != http.StatusNotFound {
		t.Errorf("an admin who is neither sender nor recipient: %d", res.StatusCode)
	}
	if res, _ := eve.get(fm[0]); res.StatusCode != http.StatusNotFound {
		t.Errorf("an admin downloading someone's package file: %d", res.StatusCode)
	}

	mp.WaitFor(t, "alice@acme.test", "downloaded contract.txt", 20*time.Second)
	_, page = alice.get(pkgURL)
	if !strings.Contains(page, "dave@acme.test") || !strings.Contains(page, `id="receipts"`) || !strings.Contains(page, "contract.txt</td>") {
		t.Fatalf("sender's package page:\n%s", page)
	}
	rm := regexp.MustCompile(`href="(/download/[^"]+countersigned.txt)"`).FindStringSubmatch(page)
	if rm == nil || strings.Contains(page, "forged.txt") {
		t.Fatalf("the sender's page lacks the reply (or shows the forged one):\n%s", page)
	}
	if res, body := alice.get(rm[1]); res.StatusCode != 200 || body != "signed" {
		t.Errorf("the sender downloads the reply: %d %q", res.StatusCode, body)
	}
	res, _ = alice.post(pkgURL+"/recall", url.Values{"csrf": {csrf}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("recall: %d", res.StatusCode)
	}
	_, page = alice.get("/outbox")
	if !strings.Contains(page, "recalled") {
		t.Errorf("outbox after recall:\n%s", page)
	}
	if res, _ := dave.get(pkgURL); res.StatusCode != http.StatusGone {
		t.Errorf("recipient after recall: %d", res.StatusCode)
	}
}
