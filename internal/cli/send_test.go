package cli_test

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"ferry.dev/ferry/internal/ferrytest"
)

// TestSendBinary runs the real ferry binary's send command against a server
// that mails through Mailpit: a refused recipient list stops it before any
// upload or mail; then two files go to two recipients, who each get their
// own link, and one of them opens it (code from the mail) and downloads.
func TestSendBinary(t *testing.T) {
	mp := ferrytest.StartMailpit(t)
	s := ferrytest.Start(t, ferrytest.WithMail(mp))
	s.Admin("org", "create", "acme")
	alice := s.User("acme", "alice@acme.test", "user")
	bin := ferrytest.Binary(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.csv")
	os.WriteFile(a, []byte("alpha"), 0o600)
	os.WriteFile(b, []byte("x,y\n1,2\n"), 0o600)
	run := func(args ...string) (string, string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "XDG_CONFIG_HOME=" + dir,
			"FERRY_SERVER=" + s.PublicURL, "FERRY_TOKEN=" + alice, "FERRY_CA=" + s.CA()}
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}

	for _, bad := range [][]string{
		{"send", a, "--to", "bob@partner.test,bob@partner.test"},
		{"send", a, "--to", "bob@partner.test", "--to", "not-an-address"},
		{"send", a, "--to", "bob@partner.test", "--subject", "x\nBcc: eve@evil.test"},
	} {
		_, errOut, err := run(bad...)
		if err == nil || !strings.Contains(errOut, "recipient") && !strings.Contains(errOut, "line break") {
			t.Errorf("%v: err %v, stderr %s", bad, err, errOut)
		}
	}
	if res := s.Do("GET", "/api/v1/uploads/", alice, nil); !strings.Contains(ferrytest.Body(t, res), `"uploads": []`) {
		t.Errorf("a refused send left uploads behind")
	}

	out, errOut, err := run("send", a, b, "--to", "bob@partner.test, carol@client.test", "--subject", "Both files", "--expires", "3d", "--notify")
	if err != nil {
		t.Fatalf("ferry send: %v\n%s", err, errOut)
	}
	if !regexp.MustCompile(`^package [0-9a-f]{32} sent to bob@partner.test, carol@client.test \(2 files`).MatchString(out) {
		t.Errorf("ferry send printed %q", out)
	}
	links := map[string]string{}
	for _, to := range []string{"bob@partner.test", "carol@client.test"} {
		m := mp.WaitFor(t, to, "Both files", 20*time.Second)
		l := regexp.MustCompile(`/p/[A-Za-z0-9_-]{43}`).FindString(m.Text)
		if l == "" || !strings.Contains(m.Text, "a.txt") || !strings.Contains(m.Text, "b.csv") {
			t.Fatalf("mail to %s:\n%s", to, m.Text)
		}
		links[to] = l
	}
	if links["bob@partner.test"] == links["carol@client.test"] {
		t.Errorf("the two recipients got the same link")
	}
	if n := len(mp.Messages(t)); n != 2 {
		t.Errorf("%d mails, want 2 (nothing for the refused sends)", n)
	}

	// Bob opens his link with a plain HTTP client: code by mail, then the
	// files.
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Transport: s.Client.Transport, Jar: jar}
	post := func(path string, form url.Values) *http.Response {
		req, _ := http.NewRequest("POST", s.PublicURL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", s.PublicURL)
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	link := links["bob@partner.test"]
	ferrytest.Expect(t, post(link+"/code", url.Values{}), 200) // followed to the code form
	cm := mp.WaitFor(t, "bob@partner.test", "Your Ferry code", 20*time.Second)
	code := regexp.MustCompile(`\d{6}`).FindString(cm.Subject)
	page := ferrytest.Expect(t, post(link+"/verify", url.Values{"code": {code}}), 200)
	fl := regexp.MustCompile(`href="(/p/[^"]+/files/[0-9a-f]+)"[^>]*>Download</a>`).FindAllStringSubmatch(page, -1)
	if len(fl) != 2 || !strings.Contains(page, "a.txt") || !strings.Contains(page, "b.csv") {
		t.Fatalf("bob's package page:\n%s", page)
	}
	res, err := hc.Get(s.PublicURL + fl[0][1])
	if err != nil {
		t.Fatal(err)
	}
	if body := ferrytest.Expect(t, res, 200); body != "alpha" {
		t.Errorf("a.txt as bob downloads it: %q", body)
	}
	mp.WaitFor(t, "alice@acme.test", "downloaded a.txt", 20*time.Second)
}
