package httpd_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry.dev/ferry/internal/ferrytest"
)

type shareResp struct {
	ID           string   `json:"id"`
	URL          string   `json:"url"`
	Token        string   `json:"token"`
	Path         string   `json:"path"`
	Mode         string   `json:"mode"`
	Downloads    int      `json:"downloads"`
	MaxDownloads int      `json:"max_downloads"`
	AllowedIPs   []string `json:"allowed_ips"`
}

func makeShare(t *testing.T, s *ferrytest.Server, token string, req map[string]any) shareResp {
	t.Helper()
	b, _ := json.Marshal(req)
	body := ferrytest.Expect(t, s.Do("POST", "/api/v1/shares", token, bytes.NewReader(b), "Content-Type", "application/json"), 201)
	var sr shareResp
	if err := json.Unmarshal([]byte(body), &sr); err != nil {
		t.Fatal(err)
	}
	if sr.Token == "" || !strings.HasSuffix(sr.URL, "/s/"+sr.Token) {
		t.Fatalf("share response %s", body)
	}
	return sr
}

// curlResult is what curl saw.
type curlResult struct {
	status int
	body   string
	header string
}

// guestCurl runs curl from a given loopback source address (the whole of
// 127.0.0.0/8 reaches the server), with a cookie jar, never following
// redirects.
type guestCurl struct {
	t    *testing.T
	bin  string
	s    *ferrytest.Server
	from string
	jar  string
}

func newGuestCurl(t *testing.T, s *ferrytest.Server, from string) *guestCurl {
	bin, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is required (make test installs it): %v", err)
	}
	return &guestCurl{t: t, bin: bin, s: s, from: from, jar: filepath.Join(t.TempDir(), "jar")}
}

func (c *guestCurl) do(args ...string) curlResult {
	c.t.Helper()
	dir := c.t.TempDir()
	bodyF, hdrF := filepath.Join(dir, "body"), filepath.Join(dir, "hdr")
	full := append([]string{"-sS", "--path-as-is", "--cacert", c.s.CA(), "--interface", c.from, "-b", c.jar, "-c", c.jar,
		"-o", bodyF, "-D", hdrF, "-w", "%{http_code}"}, args...)
	out, err := exec.Command(c.bin, full...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("curl %v: %v\n%s", args, err, out)
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		c.t.Fatalf("curl %v: %s", args, out)
	}
	b, _ := os.ReadFile(bodyF)
	h, _ := os.ReadFile(hdrF)
	return curlResult{status: code, body: string(b), header: string(h)}
}

// password posts a link's password from Ferry's own origin.
func (c *guestCurl) password(url, pw string) curlResult {
	return c.do("-H", "Origin: "+c.s.PublicURL, "--data-urlencode", "password="+pw, url)
}

const goneText = "This link does not exist or is no longer available"

func expectGone(t *testing.T, r curlResult, what string) {
	t.Helper()
	if r.status != 404 || !strings.Contains(r.body, goneText) {
		t.Fatalf("%s: status %d, want the uniform 404 page; body %.300s", what, r.status, r.body)
	}
}

// TestShareLinks is the share-link story end to end with curl and Mailpit:
// password and download limit, expiry, address ranges, revocation, token
// guessing, drop boxes, escaping the shared folder, and the mails.
func TestShareLinks(t *testing.T) {
	mp := ferrytest.StartMailpit(t)
	s := ferrytest.Start(t, ferrytest.WithMail(mp))
	alice := s.User("acme", "alice@acme.test", "admin")
	s.Admin("party", "create", "--org", "acme", "Globex", "--contact", "it@globex.test")
	s.Admin("folder", "create", "--org", "acme", "/docs", "--party", "Globex")
	for _, f := range []string{"docs/sub", "other", "inbox"} {
		ferrytest.Expect(t, s.Do("POST", "/api/v1/folders/"+f, alice, nil), 201)
	}
	report := "quarterly report " + strings.Repeat("x", 5000)
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/docs/report.txt", alice, strings.NewReader(report)), 201)
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/docs/sub/deep.txt", alice, strings.NewReader("deep content")), 201)
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/other/secret.txt", alice, strings.NewReader("TOP SECRET")), 201)
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/inbox/existing.txt", alice, strings.NewReader("already here")), 201)
	var goneBodies []string

	t.Run("password and download limit", func(t *testing.T) {
		c := newGuestCurl(t, s, "127.0.0.2")
		sh := makeShare(t, s, alice, map[string]any{"path": "/docs/report.txt", "password": "correct horse battery", "max_downloads": 2})
		r := c.do(sh.URL)
		if r.status != 200 || !strings.Contains(r.body, "protected by a password") || strings.Contains(r.body, "report.txt") {
			t.Fatalf("first visit: %d %.400s", r.status, r.body)
		}
		for _, h := range []string{"Content-Security-Policy: default-src 'none'", "X-Content-Type-Options: nosniff"} {
			if !strings.Contains(strings.ToLower(r.header), strings.ToLower(h)) {
				t.Errorf("guest page lacks %q:\n%s", h, r.header)
			}
		}
		// The download needs the password too.
		if r := c.do(sh.URL + "/download/"); r.status != 303 {
			t.Fatalf("download before the password: %d", r.status)
		}
		for i := 0; i < 2; i++ {
			if r := c.password(sh.URL, "wrong password here"); r.status != 401 || !strings.Contains(r.body, "Wrong password") {
				t.Fatalf("wrong password: %d %.300s", r.status, r.body)
			}
		}
		// A form from another site is refused before the password is looked at.
		if r := c.do("-H", "Origin: https://evil.example", "--data-urlencode", "password=correct horse battery", sh.URL); r.status != 403 {
			t.Fatalf("cross-site password form: %d", r.status)
		}
		if r := c.password(sh.URL, "correct horse battery"); r.status != 303 {
			t.Fatalf("right password: %d %.300s", r.status, r.body)
		}
		r = c.do(sh.URL)
		if r.status != 200 || !strings.Contains(r.body, "report.txt") || !strings.Contains(r.body, "Downloads left") {
			t.Fatalf("page after the password: %d %.400s", r.status, r.body)
		}
		// A HEAD (link previews, mail scanners) counts nothing.
		if r := c.do("-I", sh.URL+"/download/"); r.status == 200 {
			t.Fatalf("HEAD of a download: %d", r.status)
		}
		for i := 0; i < 2; i++ {
			r := c.do(sh.URL + "/download/")
			if r.status != 200 || r.body != report {
				t.Fatalf("download %d: %d %.200s", i+1, r.status, r.body)
			}
			hdr := strings.ToLower(r.header)
			for _, h := range []string{"content-disposition: attachment", "x-content-type-options: nosniff", "content-security-policy: sandbox"} {
				if !strings.Contains(hdr, h) {
					t.Errorf("download lacks %q:\n%s", h, r.header)
				}
			}
		}
		r = c.do(sh.URL + "/download/")
		expectGone(t, r, "third download")
		expectGone(t, c.do(sh.URL), "page after the limit")
		goneBodies = append(goneBodies, r.body)
		// The sharer hears of it, once for the hour.
		msg := mp.WaitFor(t, "alice@acme.test", "Your share link was used", 20*time.Second)
		if !strings.Contains(msg.Text, "/docs/report.txt") || !strings.Contains(msg.Text, "127.0.0.2") {
			t.Errorf("share_used mail: %s", msg.Text)
		}
		var list struct {
			Shares []shareResp `json:"shares"`
		}
		json.Unmarshal([]byte(ferrytest.Expect(t, s.Do("GET", "/api/v1/shares", alice, nil), 200)), &list)
		for _, x := range list.Shares {
			if x.ID == sh.ID && (x.Downloads != 2 || x.Token != "" || x.URL != "") {
				t.Errorf("listed share: %+v", x)
			}
		}
	})

	t.Run("password rate limit", func(t *testing.T) {
		c := newGuestCurl(t, s, "127.0.0.3")
		sh := makeShare(t, s, alice, map[string]any{"path": "/docs/report.txt", "password": "another long password"})
		limited := false
		for i := 0; i < 8 && !limited; i++ {
			r := c.password(sh.URL, fmt.Sprintf("guess number %d!", i))
			switch r.status {
			case 401:
			case 429:
				limited = true
				if i < 3 {
					t.Fatalf("limited after only %d tries", i)
				}
			default:
				t.Fatalf("guess %d: %d", i, r.status)
			}
		}
		if !limited {
			t.Fatal("8 wrong passwords in a row were never rate-limited")
		}
		// From another address the link is still limited: the limit is
		// per link as well as per address.
		if r := newGuestCurl(t, s, "127.0.0.4").password(sh.URL, "yet another guess"); r.status != 429 {
			t.Fatalf("other address on a limited link: %d", r.status)
		}
	})

	t.Run("expiry", func(t *testing.T) {
		c := newGuestCurl(t, s, "127.0.0.5")
		// Creating the link and the first visit (a curl process) must both
		// happen before it expires: a few seconds, for a loaded machine.
		expires := time.Now().Add(5 * time.Second)
		sh := makeShare(t, s, alice, map[string]any{"path": "/docs/report.txt", "expires": expires.UTC().Format(time.RFC3339Nano)})
		if r := c.do(sh.URL); r.status != 200 {
			t.Fatalf("before expiry: %d", r.status)
		}
		time.Sleep(time.Until(expires) + 500*time.Millisecond)
		r := c.do(sh.URL + "/download/")
		expectGone(t, r, "after expiry")
		goneBodies = append(goneBodies, r.body)
	})

	t.Run("address ranges", func(t *testing.T) {
		sh := makeShare(t, s, alice, map[string]any{"path": "/docs/report.txt", "allowed_ips": []string{"127.0.0.6/32"}})
		r := newGuestCurl(t, s, "127.0.0.7").do(sh.URL + "/download/")
		expectGone(t, r, "outside the range")
		goneBodies = append(goneBodies, r.body)
		if r := newGuestCurl(t, s, "127.0.0.6").do(sh.URL + "/download/"); r.status != 200 || r.body != report {
			t.Fatalf("inside the range: %d", r.status)
		}
	})

	t.Run("revoke", func(t *testing.T) {
		c := newGuestCurl(t, s, "127.0.0.8")
		sh := makeShare(t, s, alice, map[string]any{"path": "/docs"})
		if r := c.do(sh.URL); r.status != 200 || !strings.Contains(r.body, "report.txt") {
			t.Fatalf("before revoking: %d", r.status)
		}
		ferrytest.Expect(t, s.Do("DELETE", "/api/v1/shares/"+sh.ID, alice, nil), 204)
		r := c.do(sh.URL)
		expectGone(t, r, "after revoking")
		goneBodies = append(goneBodies, r.body)
		expectGone(t, c.do(sh.URL+"/download/report.txt"), "download after revoking")
	})

	t.Run("token guessing", func(t *testing.T) {
		c := newGuestCurl(t, s, "127.0.0.9")
		limited := 0
		for i := 0; i < 14; i++ {
			var b [32]byte
			rand.Read(b[:])
			r := c.do(s.PublicURL + "/s/" + base64.RawURLEncoding.EncodeToString(b[:]))
			switch r.status {
			case 404:
				if limited > 0 {
					t.Fatalf("guess %d answered 404 after a 429", i)
				}
				goneBodies = append(goneBodies, r.body)
			case 429:
				limited++
			default:
				t.Fatalf("guess %d: %d", i, r.status)
			}
		}
		if limited == 0 {
			t.Fatal("14 wrong tokens were never rate-limited")
		}
		// Malformed tokens get the same answer.
		expectGone(t, newGuestCurl(t, s, "127.0.0.10").do(s.PublicURL+"/s/short"), "malformed token")
		// The answer is the same whatever the reason: no oracle.
		for i, b := range goneBodies {
			if b != goneBodies[0] {
				t.Errorf("gone page %d differs from the first:\n%s\n---\n%s", i, b, goneBodies[0])
			}
		}
	})

	t.Run("drop box", func(t *testing.T) {
		c := newGuestCurl(t, s, "127.0.0.11")
		sh := makeShare(t, s, alice, map[string]any{"path": "/inbox", "mode": "dropbox"})
		r := c.do(sh.URL)
		if r.status != 200 || !strings.Contains(r.body, `enctype="multipart/form-data"`) || strings.Contains(r.body, "existing.txt") {
			t.Fatalf("drop box page: %d %.400s", r.status, r.body)
		}
		src := filepath.Join(t.TempDir(), "existing.txt")
		os.WriteFile(src, []byte("from a visitor"), 0o600)
		if r := c.do("-H", "Origin: "+s.PublicURL, "-F", "file=@"+src, sh.URL+"/upload"); r.status != 303 {
			t.Fatalf("upload: %d %.300s", r.status, r.body)
		}
		// Without Ferry's origin the upload is refused.
		if r := c.do("-F", "file=@"+src, sh.URL+"/upload"); r.status != 403 {
			t.Fatalf("upload without origin: %d", r.status)
		}
		// The visitor's file did not replace the one already there.
		if got := ferrytest.Expect(t, s.Do("GET", "/api/v1/files/inbox/existing.txt", alice, nil), 200); got != "already here" {
			t.Fatalf("existing file now %q", got)
		}
		list := ferrytest.Expect(t, s.Do("GET", "/api/v1/folders/inbox", alice, nil), 200)
		if strings.Count(list, "existing") != 2 {
			t.Fatalf("inbox after the upload: %s", list)
		}
		for _, u := range []string{sh.URL + "/browse/", sh.URL + "/download/existing.txt", sh.URL + "/browse/x"} {
			if r := c.do(u); r.status != 403 || strings.Contains(r.body, "already here") {
				t.Errorf("%s on a drop box: %d %.200s", u, r.status, r.body)
			}
		}
	})

	t.Run("visitor stays inside the shared folder", func(t *testing.T) {
		c := newGuestCurl(t, s, "127.0.0.12")
		sh := makeShare(t, s, alice, map[string]any{"path": "/docs"})
		if r := c.do(sh.URL + "/download/sub/deep.txt"); r.status != 200 || r.body != "deep content" {
			t.Fatalf("file in a sub-folder: %d", r.status)
		}
		if r := c.do(sh.URL + "/browse/sub"); r.status != 200 || !strings.Contains(r.body, "deep.txt") {
			t.Fatalf("sub-folder: %d", r.status)
		}
		// Files have no id-addressed route for visitors; a guessed id is
		// just a name that does not exist in the shared folder.
		fileID := "0123456789abcdef0123456789abcdef"
		file := makeShare(t, s, alice, map[string]any{"path": "/docs/report.txt"})
		for _, u := range []string{
			sh.URL + "/download/../other/secret.txt",
			sh.URL + "/download/%2e%2e/other/secret.txt",
			sh.URL + "/download/..%2fother%2fsecret.txt",
			sh.URL + "/download/%2E%2E%2Fother%2Fsecret.txt",
			sh.URL + "/browse/../other",
			sh.URL + "/browse/..%2f..%2f",
			sh.URL + "/download//other/secret.txt",
			sh.URL + "/download/sub/../../other/secret.txt",
			sh.URL + "/download/other/secret.txt",
			sh.URL + "/download/" + fileID,
			file.URL + "/download/../../other/secret.txt",
			file.URL + "/download/other/secret.txt",
			file.URL + "/download/secret.txt",
			file.URL + "/browse/",
			s.PublicURL + "/s/" + sh.Token + "%2f..%2f/download/other/secret.txt",
			s.PublicURL + "/api/v1/files/other/secret.txt",
			s.PublicURL + "/files/other/",
		} {
			r := c.do(u)
			if r.status == 200 || strings.Contains(r.body, "TOP SECRET") || strings.Contains(r.body, "secret.txt") {
				t.Errorf("%s: %d %.200s", u, r.status, r.body)
			}
		}
	})

	t.Run("audit", func(t *testing.T) {
		out, errOut, err := s.Run("", "audit", "log", "--json")
		if err != nil {
			t.Fatalf("audit log: %v %s", err, errOut)
		}
		seen := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var ev struct {
				Action, Outcome, Actor, Object, Path, Party, Detail, Remote string
			}
			if json.Unmarshal([]byte(line), &ev) != nil {
				continue
			}
			switch {
			case ev.Action == "file.read" && strings.HasPrefix(ev.Actor, "share:") && strings.HasPrefix(ev.Detail, "interrupted"):
				t.Logf("interrupted read: %+v", ev) // a client that hung up early
			case ev.Action == "file.read" && strings.HasPrefix(ev.Actor, "share:"):
				if !strings.Contains(ev.Detail, "via share link") || !strings.Contains(ev.Detail, "alice@acme.test") || (ev.Outcome == "ok" && ev.Party != "Globex") {
					t.Errorf("visitor's read: %+v", ev)
				}
				seen["read"]++
			case ev.Action == "share.use" && strings.Contains(ev.Detail, "download"):
				if ev.Object == "" || !strings.Contains(ev.Detail, "shared by alice@acme.test") || ev.Party != "Globex" || ev.Remote == "" {
					t.Errorf("share.use: %+v", ev)
				}
				seen["use"]++
			case ev.Action == "share.use" && strings.Contains(ev.Detail, "upload"):
				seen["upload"]++
			case ev.Action == "share.denied":
				seen[ev.Detail[:min(len(ev.Detail), 14)]]++
			case ev.Action == "share.create" || ev.Action == "share.revoke":
				if ev.Object == "" || ev.Actor != "alice@acme.test" {
					t.Errorf("%s: %+v", ev.Action, ev)
				}
				seen[ev.Action]++
			}
		}
		for _, k := range []string{"read", "use", "upload", "share.create", "share.revoke", "unknown token", "wrong password", "download limit", "expired; share", "address outsid", "revoked; share"} {
			if seen[k] == 0 {
				t.Errorf("no audit record for %q (seen %v)", k, seen)
			}
		}
	})
}

// TestShareDownloadLimitConcurrent races many downloads of a link allowed 3:
// exactly 3 succeed (the count is one conditional UPDATE).
func TestShareDownloadLimitConcurrent(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { shareLimitRace(t, ferrytest.Start(t)) })
	t.Run("postgres", func(t *testing.T) { shareLimitRace(t, ferrytest.Start(t, ferrytest.WithPostgres())) })
}

func shareLimitRace(t *testing.T, s *ferrytest.Server) {
	alice := s.User("acme", "alice@acme.test", "admin")
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/f.txt", alice, strings.NewReader("content")), 201)
	sh := makeShare(t, s, alice, map[string]any{"path": "/f.txt", "max_downloads": 3})
	var mu sync.Mutex
	ok := 0
	var wg sync.WaitGroup
	for i := 0; i < 12; i++ {
		wg.Go(func() {
			tr := s.Client.Transport.(*http.Transport).Clone()
			tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(i+1))}}).DialContext
			c := &http.Client{Transport: tr}
			res, err := c.Get(sh.URL + "/download/")
			if err != nil {
				t.Error(err)
				return
			}
			b := ferrytest.Body(t, res)
			if res.StatusCode == 200 && b == "content" {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 3 {
		t.Fatalf("%d downloads succeeded, want exactly 3", ok)
	}
}

// TestFolderWatch: a watcher is mailed once when another user uploads into
// the folder; a second file within the batching window sends no second mail.
func TestFolderWatch(t *testing.T) {
	mp := ferrytest.StartMailpit(t)
	s := ferrytest.Start(t, ferrytest.WithMail(mp))
	alice := s.User("acme", "alice@acme.test", "admin")
	bob := s.User("acme", "bob@acme.test", "user")
	ferrytest.Expect(t, s.Do("POST", "/api/v1/folders/team", alice, nil), 201)
	s.Admin("grant", "--org", "acme", "--user", "bob@acme.test", "/team", "list,read,write")
	// Bob may not watch what he cannot see.
	ferrytest.Expect(t, s.Do("POST", "/api/v1/folders/private", alice, nil), 201)
	if res := s.Do("POST", "/api/v1/watches", bob, strings.NewReader(`{"path":"/private"}`), "Content-Type", "application/json"); res.StatusCode != 404 {
		t.Fatalf("watching an invisible folder: %d", res.StatusCode)
	}
	body := ferrytest.Expect(t, s.Do("POST", "/api/v1/watches", alice, strings.NewReader(`{"path":"/team"}`), "Content-Type", "application/json"), 201)
	if !strings.Contains(body, `"/team"`) {
		t.Fatalf("watch: %s", body)
	}
	ferrytest.Expect(t, s.Do("POST", "/api/v1/watches", alice, strings.NewReader(`{"path":"/team"}`), "Content-Type", "application/json"), 409)
	// Alice's own upload mails nobody.
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/team/mine.txt", alice, strings.NewReader("mine")), 201)
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/team/plan.txt", bob, strings.NewReader("the plan")), 201)
	msg := mp.WaitFor(t, "alice@acme.test", "New files in /team", 20*time.Second)
	if !strings.Contains(msg.Text, "plan.txt") || strings.Contains(msg.Text, "mine.txt") {
		t.Fatalf("watch mail: %s", msg.Text)
	}
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/team/second.txt", bob, strings.NewReader("more")), 201)
	time.Sleep(3 * time.Second)
	n := 0
	for _, m := range mp.Messages(t) {
		if strings.Contains(m.Subject, "New files in /team") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d watch mails, want 1 within the batching window", n)
	}
	// Unwatch.
	var ws struct {
		Watches []struct{ ID string } `json:"watches"`
	}
	json.Unmarshal([]byte(ferrytest.Expect(t, s.Do("GET", "/api/v1/watches", alice, nil), 200)), &ws)
	if len(ws.Watches) != 1 {
		t.Fatalf("watches: %+v", ws)
	}
	ferrytest.Expect(t, s.Do("DELETE", "/api/v1/watches/"+ws.Watches[0].ID, bob, nil), 404)
	ferrytest.Expect(t, s.Do("DELETE", "/api/v1/watches/"+ws.Watches[0].ID, alice, nil), 204)
}

// TestShareCanary: sharing a canary file, or a folder holding one, is
// refused and freezes the sharer (the exfiltration guard).
func TestShareCanary(t *testing.T) {
	s := ferrytest.Start(t)
	alice := s.User("acme", "alice@acme.test", "admin")
	bob := s.User("acme", "bob@acme.test", "user")
	ferrytest.Expect(t, s.Do("POST", "/api/v1/folders/hr", alice, nil), 201)
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/hr/salaries.xlsx", alice, strings.NewReader("bait")), 201)
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/hr/handbook.pdf", alice, strings.NewReader("ok")), 201)
	s.Admin("grant", "--org", "acme", "--user", "bob@acme.test", "/hr", "list,read,share")
	s.Admin("canary", "mark", "--org", "acme", "/hr/salaries.xlsx")
	// A file beside the canary may be shared.
	makeShare(t, s, bob, map[string]any{"path": "/hr/handbook.pdf"})
	res := s.Do("POST", "/api/v1/shares", bob, strings.NewReader(`{"path":"/hr"}`), "Content-Type", "application/json")
	if body := ferrytest.Body(t, res); res.StatusCode < 400 || strings.Contains(body, `"token"`) {
		t.Fatalf("sharing a folder with a canary: %d %s", res.StatusCode, body)
	}
	// Bob is frozen now: reading what he could read before is refused.
	if res := s.Do("GET", "/api/v1/files/hr/handbook.pdf", bob, nil); res.StatusCode == 200 {
		t.Fatalf("a frozen sharer still reads: %d", res.StatusCode)
	}
}

// TestShareRootHidesPackages: a link to the root folder does not reach the
// system folder of packages, listed or by name.
func TestShareRootHidesPackages(t *testing.T) {
	s := ferrytest.Start(t)
	alice := s.User("acme", "alice@acme.test", "admin")
	body := ferrytest.Expect(t, s.Do("POST", "/api/v1/packages", alice, strings.NewReader(`{"to":["partner@example.test"],"subject":"Q3","message":"hi"}`), "Content-Type", "application/json"), 201)
	var pkg struct {
		UploadFolder string `json:"upload_folder"`
	}
	json.Unmarshal([]byte(body), &pkg)
	if !strings.HasPrefix(pkg.UploadFolder, "/") {
		t.Fatalf("package: %s", body)
	}
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files"+pkg.UploadFolder+"/confidential.txt", alice, strings.NewReader("PACKAGE CONTENT")), 201)
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/open.txt", alice, strings.NewReader("open")), 201)
	sh := makeShare(t, s, alice, map[string]any{"path": "/"})
	c := newGuestCurl(t, s, "127.0.0.20")
	r := c.do(sh.URL)
	top := strings.Split(strings.TrimPrefix(pkg.UploadFolder, "/"), "/")[0]
	if r.status != 200 || !strings.Contains(r.body, "open.txt") || strings.Contains(r.body, top) {
		t.Fatalf("root listing: %d %.500s", r.status, r.body)
	}
	for _, u := range []string{sh.URL + "/browse" + pkg.UploadFolder, sh.URL + "/download" + pkg.UploadFolder + "/confidential.txt", sh.URL + "/browse/" + top} {
		if r := c.do(u); r.status == 200 || strings.Contains(r.body, "PACKAGE CONTENT") || strings.Contains(r.body, "confidential") {
			t.Errorf("%s: %d %.200s", u, r.status, r.body)
		}
	}
	// Nor can a package folder itself be shared.
	res := s.Do("POST", "/api/v1/shares", alice, strings.NewReader(`{"path":"`+pkg.UploadFolder+`"}`), "Content-Type", "application/json")
	if b := ferrytest.Body(t, res); res.StatusCode < 400 || strings.Contains(b, `"token"`) {
		t.Fatalf("sharing a package folder: %d %s", res.StatusCode, b)
	}
}

// TestShareEndsWithItsMaker: a link stops when its maker loses the share
// permission or is disabled.
func TestShareEndsWithItsMaker(t *testing.T) {
	s := ferrytest.Start(t)
	alice := s.User("acme", "alice@acme.test", "admin")
	bob := s.User("acme", "bob@acme.test", "user")
	for _, f := range []string{"a", "b"} {
		ferrytest.Expect(t, s.Do("POST", "/api/v1/folders/"+f, alice, nil), 201)
		ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/"+f+"/x.txt", alice, strings.NewReader("x")), 201)
	}
	s.Admin("grant", "--org", "acme", "--user", "bob@acme.test", "/a", "list,read,share")
	s.Admin("grant", "--org", "acme", "--user", "bob@acme.test", "/b", "list,read,share")
	la := makeShare(t, s, bob, map[string]any{"path": "/a/x.txt"})
	lb := makeShare(t, s, bob, map[string]any{"path": "/b"})
	c := newGuestCurl(t, s, "127.0.0.21")
	for _, u := range []string{la.URL, lb.URL} {
		if r := c.do(u); r.status != 200 {
			t.Fatalf("%s: %d", u, r.status)
		}
	}
	s.Admin("grant", "--org", "acme", "--user", "bob@acme.test", "/a", "list,read")
	expectGone(t, c.do(la.URL), "after the share permission was withdrawn")
	if r := c.do(lb.URL); r.status != 200 {
		t.Fatalf("the other link: %d", r.status)
	}
	s.Admin("user", "disable", "bob@acme.test")
	expectGone(t, c.do(lb.URL), "after the maker was disabled")
}

// TestShareURLIgnoresHost: a share link is handed out on the configured
// public URL, not on the request's Host header (which a forged request
// could point at another site).
func TestShareURLIgnoresHost(t *testing.T) {
	s := ferrytest.Start(t)
	alice := s.User("acme", "alice@acme.test", "admin")
	ferrytest.Expect(t, s.Do("POST", "/api/v1/folders/docs", alice, nil), 201)
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/docs/a.txt", alice, strings.NewReader("a")), 201)
	req, err := http.NewRequest("POST", s.PublicURL+"/api/v1/shares", strings.NewReader(`{"path":"/docs/a.txt"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "evil.example"
	req.Header.Set("Authorization", "Bearer "+alice)
	req.Header.Set("Content-Type", "application/json")
	res, err := s.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var sr shareResp
	if err := json.Unmarshal([]byte(ferrytest.Expect(t, res, 201)), &sr); err != nil {
		t.Fatal(err)
	}
	if want := s.PublicURL + "/s/" + sr.Token; sr.URL != want {
		t.Fatalf("share URL %q, want %q", sr.URL, want)
	}
}
