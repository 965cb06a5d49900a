package httpd_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
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

var (
	packageLinkRE = regexp.MustCompile(`https://[^\s"<>]+/p/([A-Za-z0-9_-]{43})`)
	codeRE        = regexp.MustCompile(`Your Ferry code: (\d{6})`)
	fileLinkRE    = regexp.MustCompile(`/p/[A-Za-z0-9_-]{43}/files/([0-9a-f]{32})`)
)

func packageClient(t *testing.T, s *ferrytest.Server, token string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Server: s.PublicURL, Token: token, CAFile: s.CA()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pkgPostJSON(t *testing.T, s *ferrytest.Server, path, token string, v any) *http.Response {
	t.Helper()
	b, _ := json.Marshal(v)
	return s.Do("POST", path, token, bytes.NewReader(b), "Content-Type", "application/json")
}

// auditLog returns the audit records matching the filter flags.
func pkgAudit(t *testing.T, s *ferrytest.Server, args ...string) string {
	t.Helper()
	out, errOut, err := s.Run("", append([]string{"audit", "log"}, append(args, "--json")...)...)
	if err != nil {
		t.Fatalf("audit log: %v %s", err, errOut)
	}
	return out
}

// TestPackageGuestEndToEnd sends a package to an external address through
// the API with a real SMTP server (Mailpit) and plays the recipient with a
// plain HTTP client: link and code from the mails, wrong codes, download,
// receipt, reply, recall, and a stranger guessing links.
func TestPackageGuestEndToEnd(t *testing.T) {
	mp := ferrytest.StartMailpit(t)
	s := ferrytest.Start(t, ferrytest.WithMail(mp))
	s.Admin("org", "create", "acme")
	s.Admin("party", "create", "--org", "acme", "Partner Ltd", "--contact", "ops@partner.test")
	alice := s.User("acme", "alice@acme.test", "user")
	ctx := context.Background()

	// Bad input is refused before anything is stored or sent.
	for _, tc := range []struct {
		name string
		req  map[string]any
		want string
	}{
		{"invalid address", map[string]any{"to": []string{"bob@partner.test", "not an address"}, "subject": "x"}, "not a valid email address"},
		{"duplicate", map[string]any{"to": []string{"bob@partner.test, BOB@partner.test"}, "subject": "x"}, "more than once"},
		{"none", map[string]any{"to": []string{}, "subject": "x"}, "no recipients"},
		{"CR/LF in subject", map[string]any{"to": []string{"bob@partner.test"}, "subject": "hi\r\nBcc: eve@evil.test"}, "line break"},
		{"bad expiry", map[string]any{"to": []string{"bob@partner.test"}, "subject": "x", "expires": "soon"}, "expiry"},
		{"unknown field", map[string]any{"to": []string{"bob@partner.test"}, "subject": "x", "bcc": "eve@evil.test"}, "malformed"},
	} {
		body := ferrytest.Expect(t, pkgPostJSON(t, s, "/api/v1/packages", alice, tc.req), http.StatusBadRequest)
		if !strings.Contains(body, tc.want) {
			t.Errorf("%s: answer %s, want it to mention %q", tc.name, body, tc.want)
		}
	}
	sent, _, err := packageClient(t, s, alice).Packages(ctx)
	if err != nil || len(sent) != 0 {
		t.Fatalf("packages after refused requests: %v, %v", sent, err)
	}

	c := packageClient(t, s, alice)
	pkg, err := c.CreatePackage(ctx, client.PackageRequest{To: []string{"Bob@Partner.test", "carol@partner.test"}, Subject: "Q3 figures", Message: "Here they are.",
		Expires: "7d", MaxDownloads: 2, Notify: true, AllowReply: true})
	if err != nil {
		t.Fatal(err)
	}
	if pkg.Status != "draft" || pkg.UploadFolder == "" {
		t.Fatalf("new package: %+v", pkg)
	}
	// The package folder is not in normal browsing, even for the sender.
	if body := ferrytest.Expect(t, s.Do("GET", "/api/v1/folders/", alice, nil), http.StatusOK); strings.Contains(body, "ferry-packages") {
		t.Errorf("the root listing shows the package folders: %s", body)
	}
	// Over the package quota: refused at upload creation, before any byte.
	res := s.Do("POST", "/api/v1/uploads/", alice, nil, "Tus-Resumable", "1.0.0", "Upload-Length", fmt.Sprint(int64(11)<<30),
		"Upload-Metadata", "path "+base64.StdEncoding.EncodeToString([]byte(pkg.UploadFolder+"/huge.bin")))
	if body := ferrytest.Expect(t, res, http.StatusRequestEntityTooLarge); !strings.Contains(body, "package may hold") {
		t.Errorf("over-quota upload: %s", body)
	}
	// Nobody else can put files into it.
	carol := s.User("acme", "carol@acme.test", "admin")
	res = s.Do("PUT", "/api/v1/files"+pkg.UploadFolder+"/planted.txt", carol, strings.NewReader("x"))
	ferrytest.Expect(t, res, http.StatusNotFound)

	content := make([]byte, 300<<10)
	rand.Read(content)
	want := sha256.Sum256(content)
	if _, err := c.Upload(ctx, bytes.NewReader(content), int64(len(content)), pkg.UploadFolder+"/figures.bin", client.UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Upload(ctx, bytes.NewReader([]byte("read me")), 7, pkg.UploadFolder+"/readme.txt", client.UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendPackage(ctx, pkg.ID); err != nil {
		t.Fatal(err)
	}
	// Sent: the sender can no longer add files.
	res = s.Do("PUT", "/api/v1/files"+pkg.UploadFolder+"/late.txt", alice, strings.NewReader("x"))
	ferrytest.Expect(t, res, http.StatusNotFound)

	msg := mp.WaitFor(t, "bob@partner.test", "Q3 figures", 20*time.Second)
	m := packageLinkRE.FindStringSubmatch(msg.Text)
	if m == nil {
		t.Fatalf("no package link in the mail:\n%s", msg.Text)
	}
	link := "/p/" + m[1]
	carolMail := mp.WaitFor(t, "carol@partner.test", "Q3 figures", 20*time.Second)
	carolLink := packageLinkRE.FindStringSubmatch(carolMail.Text)
	if carolLink == nil || carolLink[1] == m[1] {
		t.Fatalf("carol's link: %v", carolLink)
	}

	g := newBrowser(t, s)
	res, page := g.get(link)
	if res.StatusCode != 200 || !strings.Contains(page, "Email me a code") || strings.Contains(page, "figures.bin") {
		t.Fatalf("guest page before the code: %d\n%s", res.StatusCode, page)
	}
	if res.Header.Get("Content-Security-Policy") == "" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("guest page headers: %v", res.Header)
	}
	// A form from another site is refused.
	if res, _ := g.post(link+"/code", url.Values{}, "https://evil.test"); res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site code request: %d", res.StatusCode)
	}
	if res, _ := g.post(link+"/code", url.Values{}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("code request: %d", res.StatusCode)
	}
	code1 := pkgWaitCode(t, mp, "bob@partner.test", 1)
	// Five wrong codes use the code up: the right one no longer works.
	for i := 0; i < 5; i++ {
		wrong := fmt.Sprintf("%06d", (pkgAtoi(code1)+1+i)%1000000)
		if res, _ := g.post(link+"/verify", url.Values{"code": {wrong}}); res.StatusCode != http.StatusForbidden {
			t.Fatalf("wrong code %d: %d", i, res.StatusCode)
		}
	}
	if res, _ := g.post(link+"/verify", url.Values{"code": {code1}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("right code after five wrong ones: %d, want 403", res.StatusCode)
	}
	if res, _ := g.post(link+"/code", url.Values{}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("second code request: %d", res.StatusCode)
	}
	pkgWaitCode(t, mp, "bob@partner.test", 2)
	// A third code is allowed, a fourth within ten minutes is not.
	if res, _ := g.post(link+"/code", url.Values{}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("third code request: %d", res.StatusCode)
	}
	code2 := pkgWaitCode(t, mp, "bob@partner.test", 3)
	if res, _ := g.post(link+"/code", url.Values{}); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("fourth code request: %d, want 429", res.StatusCode)
	}
	res, _ = g.post(link+"/verify", url.Values{"code": {code2}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("right code: %d", res.StatusCode)
	}
	if sc := res.Header.Get("Set-Cookie"); !strings.HasPrefix(sc, "__Host-ferry-guest=") || !strings.Contains(sc, "Secure") || !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Strict") {
		t.Errorf("guest cookie: %s", sc)
	}
	// The code works once.
	other := newBrowser(t, s)
	if res, _ := other.post(link+"/verify", url.Values{"code": {code2}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("code used twice: %d", res.StatusCode)
	}
	res, page = g.get(link)
	if res.StatusCode != 200 || !strings.Contains(page, "figures.bin") || !strings.Contains(page, "Here they are.") {
		t.Fatalf("guest page after the code: %d\n%s", res.StatusCode, page)
	}
	// A reply with a file, visible to the sender.
	if res, b := g.postFile(link+"/reply", csrfOf(t, page), "signed.pdf", []byte("%PDF- signed copy")); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("reply: %d %s", res.StatusCode, b)
	}
	mp.WaitFor(t, "alice@acme.test", "replied with signed.pdf", 20*time.Second)
	fm := fileLinkRE.FindStringSubmatch(page)
	if fm == nil {
		t.Fatalf("no file link:\n%s", page)
	}
	dlFile := func(id string) *http.Response {
		res, err := g.c.Get(s.PublicURL + link + "/files/" + id)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	dl := func() *http.Response { return dlFile(fm[1]) }
	// A HEAD (a link preview, a mail scanner) uses up no download: a GET
	// route matches HEAD too, and opening the file counts.
	if res, err := g.c.Head(s.PublicURL + link + "/files/" + fm[1]); err != nil {
		t.Fatal(err)
	} else if res.Body.Close(); res.StatusCode == http.StatusOK {
		t.Fatalf("HEAD of a package file: %d", res.StatusCode)
	}
	res = dl()
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || sha256.Sum256(got) != want {
		t.Fatalf("download: %d, %d bytes, SHA-256 differs", res.StatusCode, len(got))
	}
	if !strings.HasPrefix(res.Header.Get("Content-Disposition"), "attachment") || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("download headers: %v", res.Header)
	}
	mp.WaitFor(t, "alice@acme.test", "downloaded figures.bin", 20*time.Second)
	ferrytest.Body(t, dl())
	// The third download passes the limit of two.
	if res := dl(); res.StatusCode != http.StatusGone {
		t.Errorf("third download: %d, want 410", res.StatusCode)
	}
	// Once every file is used up, the link itself is dead (the same page
	// as any dead link).
	links := fileLinkRE.FindAllStringSubmatch(page, -1)
	if len(links) != 2 {
		t.Fatalf("file links: %v", links)
	}
	ferrytest.Body(t, dlFile(links[1][1]))
	ferrytest.Body(t, dlFile(links[1][1]))
	res, exhaustedPage := g.get(link)
	if res.StatusCode != http.StatusNotFound || !strings.Contains(exhaustedPage, "not available") {
		t.Errorf("exhausted link: %d", res.StatusCode)
	}

	view, err := c.GetPackage(ctx, pkg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(view.Receipts) != 4 || view.Receipts[0].Recipient != "bob@partner.test" || view.Receipts[0].File != "figures.bin" || view.Receipts[0].Remote == "" {
		t.Errorf("receipts: %+v", view.Receipts)
	}
	if len(view.Replies) != 1 || view.Replies[0].Name != "signed.pdf" || view.Replies[0].From != "bob@partner.test" {
		t.Fatalf("replies: %+v", view.Replies)
	}
	res = s.Do("GET", "/api/v1/files"+view.Replies[0].Path, alice, nil)
	if b := ferrytest.Expect(t, res, http.StatusOK); b != "%PDF- signed copy" {
		t.Errorf("reply content: %q", b)
	}

	// The audit log names the guest and the recipient's party.
	if log := pkgAudit(t, s, "--actor", "bob@partner.test", "--action", "file.read"); !strings.Contains(log, "Partner Ltd") {
		t.Errorf("guest download audit records:\n%s", log)
	}
	if log := pkgAudit(t, s, "--action", "package.otp.fail"); strings.Count(log, "\n") < 5 {
		t.Errorf("wrong codes audited:\n%s", log)
	}
	if log := pkgAudit(t, s, "--action", "package.otp.send"); !strings.Contains(log, "too many codes") {
		t.Errorf("the refused code request is not audited:\n%s", log)
	}

	// Recall: carol's link, alive until now, stops at once, with the same
	// page as any dead link.
	carolB := newBrowser(t, s)
	if res, page := carolB.get("/p/" + carolLink[1]); res.StatusCode != 200 || !strings.Contains(page, "Email me a code") {
		t.Fatalf("carol's link before the recall: %d", res.StatusCode)
	}
	if _, err := c.RecallPackage(ctx, pkg.ID); err != nil {
		t.Fatal(err)
	}
	res, recalledPage := carolB.get("/p/" + carolLink[1])
	if res.StatusCode != http.StatusNotFound || !strings.Contains(recalledPage, "not available") {
		t.Fatalf("recalled link: %d\n%s", res.StatusCode, recalledPage)
	}
	if recalledPage != exhaustedPage {
		t.Errorf("a recalled link's page differs from an exhausted one's")
	}
	if res := dl(); res.StatusCode != http.StatusNotFound {
		t.Errorf("download after recall: %d", res.StatusCode)
	}
	res = s.Do("GET", "/api/v1/files"+view.Replies[0].Path, alice, nil)
	ferrytest.Expect(t, res, http.StatusNotFound)

	// Guessing links (on a fresh server: this address has used up its dead
	// links above): the same answer as a recalled link, then 429, audited.
	s2 := ferrytest.Start(t)
	stranger := newBrowser(t, s2)
	for i := 0; i < 5; i++ {
		var b [32]byte
		rand.Read(b[:])
		res, page := stranger.get("/p/" + base64.RawURLEncoding.EncodeToString(b[:]))
		if res.StatusCode != http.StatusNotFound {
			t.Fatalf("guess %d: %d", i, res.StatusCode)
		}
		if page != recalledPage {
			t.Errorf("a guessed link's page differs from a recalled link's:\n%s\n---\n%s", page, recalledPage)
		}
	}
	if res, _ := stranger.get("/p/" + strings.Repeat("A", 43)); res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("after many bad links: %d, want 429", res.StatusCode)
	}
	if log := pkgAudit(t, s2, "--action", "package.open"); strings.Count(log, "unknown link") != 5 {
		t.Errorf("guesses not audited:\n%s", log)
	}
}

func pkgAtoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// pkgWaitCode waits for the n-th one-time code mailed to addr (from 1) and
// returns it.
func pkgWaitCode(t *testing.T, mp *ferrytest.Mailpit, addr string, n int) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var codes []string
		for _, msg := range mp.Messages(t) { // oldest first
			m := codeRE.FindStringSubmatch(msg.Subject)
			if m == nil {
				continue
			}
			for _, to := range msg.To {
				if strings.EqualFold(to, addr) {
					codes = append(codes, m[1])
				}
			}
		}
		if len(codes) >= n {
			return codes[n-1]
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no code number %d mailed to %s", n, addr)
	return ""
}

// TestPackageMaxBytesSetting: --package-max-bytes sets the package quota;
// an upload that would pass it is refused at creation, one within it is not.
func TestPackageMaxBytesSetting(t *testing.T) {
	s := ferrytest.Start(t, ferrytest.WithArgs("--package-max-bytes", "1000"))
	s.Admin("org", "create", "acme")
	alice := s.User("acme", "alice@acme.test", "user")
	pkg, err := packageClient(t, s, alice).CreatePackage(context.Background(), client.PackageRequest{To: []string{"bob@partner.test"}, Subject: "small"})
	if err != nil {
		t.Fatal(err)
	}
	create := func(name string, size int64) *http.Response {
		return s.Do("POST", "/api/v1/uploads/", alice, nil, "Tus-Resumable", "1.0.0", "Upload-Length", fmt.Sprint(size),
			"Upload-Metadata", "path "+base64.StdEncoding.EncodeToString([]byte(pkg.UploadFolder+"/"+name)))
	}
	if body := ferrytest.Expect(t, create("big.bin", 1001), http.StatusRequestEntityTooLarge); !strings.Contains(body, "package may hold") {
		t.Errorf("1001 bytes into a 1000-byte package: %s", body)
	}
	ferrytest.Expect(t, create("fits.bin", 1000), http.StatusCreated)
}
