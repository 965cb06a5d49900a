package cli_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestShareCommand: ferry share makes a link the public can download
// through (password from stdin and from a file, download limit), lists and
// revokes links, and refuses what the user may not share.
func TestShareCommand(t *testing.T) {
	c := newClientEnv(t)
	c.s.Admin("grant", "--org", "acme", "--user", "alice@acme.test", "/finance", "list,read,write,delete,share")
	src := filepath.Join(t.TempDir(), "q3.csv")
	os.WriteFile(src, []byte("a,b\n1,2\n"), 0o600)
	c.ok(t, "put", src, "/finance/")

	out, errOut, err := c.run("a long enough password\n", "share", "--password-stdin", "--max-downloads", "1", "--expires", "2d", "/finance/q3.csv")
	if err != nil {
		t.Fatalf("share: %v %s", err, errOut)
	}
	link := strings.TrimSpace(out)
	if !strings.HasPrefix(link, c.s.PublicURL+"/s/") || !strings.Contains(errOut, "password") || !strings.Contains(errOut, "1 downloads") {
		t.Fatalf("share printed %q / %q", out, errOut)
	}
	// The link works (after its password) without any credentials.
	res, err := c.s.Client.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "protected by a password") {
		t.Fatalf("visiting the link: %d", res.StatusCode)
	}

	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("another long password\r\n"), 0o600)
	out = c.ok(t, "share", "--json", "--password-file", pw, "--allow-ip", "192.0.2.0/24", "--expires", "12h", "/finance")
	var sh struct {
		ID, URL, Mode string
		Password      bool
		AllowedIPs    []string `json:"allowed_ips"`
		Expires       time.Time
	}
	if err := json.Unmarshal([]byte(out), &sh); err != nil || !sh.Password || len(sh.AllowedIPs) != 1 || time.Until(sh.Expires) > 13*time.Hour {
		t.Fatalf("share --json: %s %v", out, err)
	}

	ls := c.ok(t, "share", "ls")
	if !strings.Contains(ls, sh.ID) || !strings.Contains(ls, "/finance/q3.csv") || !strings.Contains(ls, "0/1") {
		t.Fatalf("share ls:\n%s", ls)
	}
	c.ok(t, "share", "revoke", sh.ID)
	if ls := c.ok(t, "share", "ls"); strings.Contains(ls, sh.ID) {
		t.Fatalf("revoked link still listed:\n%s", ls)
	}
	res, err = c.s.Client.Get(sh.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("revoked link: %d", res.StatusCode)
	}

	// Refusals: no share permission, a file as a drop box, a bad lifetime,
	// two password sources, a lifetime past the retention.
	for _, args := range [][]string{
		{"share", "/reports"},
		{"share", "--dropbox", "/finance/q3.csv"},
		{"share", "--expires", "soon", "/finance"},
		{"share", "--password-stdin", "--password-file", pw, "/finance"},
		{"share", "--expires", "400d", "/finance"},
		{"share", "revoke", "0123456789abcdef0123456789abcdef"},
	} {
		if _, _, err := c.run("", args...); err == nil {
			t.Errorf("ferry %s succeeded", strings.Join(args, " "))
		}
	}
}
