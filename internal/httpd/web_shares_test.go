package httpd_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"ferry.dev/ferry/internal/ferrytest"
)

var (
	newShareRE = regexp.MustCompile(`id="new-share-url"[^>]*value="([^"]+)"`)
	shareRowRE = regexp.MustCompile(`id="share-([0-9a-f]{32})"`)
	watchRE    = regexp.MustCompile(`action="/watches/([0-9a-f]{32})/delete"`)
)

// TestWebShares: the file browser's Share and Watch forms, the user's share
// links page (revoke, stop watching), and the admin UI's page of the
// organisation's links.
func TestWebShares(t *testing.T) {
	s := ferrytest.Start(t)
	serverAdmin(t, s, "acme", "root@acme.test")
	withPassword(t, s, "acme", "alice@acme.test", "user", "correct horse battery")
	s.Admin("folder", "create", "--org", "acme", "/team")
	s.Admin("grant", "--org", "acme", "--user", "alice@acme.test", "/team", "list,read,write,share")
	tok := strings.TrimSpace(s.Admin("token", "create", "--user", "alice@acme.test"))
	ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/team/f.txt", tok, strings.NewReader("shared by the web")), 201)

	b := newBrowser(t, s)
	res, _ := b.post("/login", url.Values{"email": {"alice@acme.test"}, "password": {"correct horse battery"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", res.StatusCode)
	}
	_, page := b.get("/files/team/")
	if !strings.Contains(page, `id="share-form"`) || !strings.Contains(page, `id="watch-form"`) || !strings.Contains(page, `id="share-dropbox"`) {
		t.Fatalf("folder page lacks the share and watch forms:\n%s", page)
	}
	csrf := csrfOf(t, page)
	_, page = b.get("/files/team/f.txt")
	if !strings.Contains(page, `id="share-form"`) || strings.Contains(page, `id="watch-form"`) || strings.Contains(page, `id="share-dropbox"`) {
		t.Fatalf("file page: share form without watch and drop box expected")
	}

	// Without the CSRF token: refused.
	if res, _ := b.post("/shares", url.Values{"path": {"/team/f.txt"}, "days": {"3"}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("share without CSRF: %d", res.StatusCode)
	}
	res, page = b.post("/shares", url.Values{"csrf": {csrf}, "path": {"/team/f.txt"}, "days": {"3"}, "max_downloads": {"5"}})
	m := newShareRE.FindStringSubmatch(page)
	if res.StatusCode != 200 || m == nil {
		t.Fatalf("share form: %d\n%s", res.StatusCode, page)
	}
	link := m[1]
	visitor := newBrowser(t, s)
	if res, body := visitor.get(strings.TrimPrefix(link, s.PublicURL)); res.StatusCode != 200 || !strings.Contains(body, "f.txt") {
		t.Fatalf("the new link: %d", res.StatusCode)
	}
	// The link is shown once: the list has the link's row, not its URL.
	_, page = b.get("/shares")
	if strings.Contains(page, link) || !strings.Contains(page, "/team/f.txt") {
		t.Fatalf("share links page:\n%s", page)
	}
	id := shareRowRE.FindStringSubmatch(page)[1]

	// The organisation's administrator sees it on the admin listener.
	ab := newTwoPlanes(t, s)
	adminSignIn(t, ab, "root@acme.test", adminPW)
	res, apage := ab.get(s.AdminURL, "/admin/orgs/acme/shares")
	if res.StatusCode != 200 || !strings.Contains(apage, "share-"+id) || !strings.Contains(apage, "alice@acme.test") {
		t.Fatalf("admin share links page: %d\n%s", res.StatusCode, apage)
	}
	// …and is absent from the public listener.
	if res, _ := b.get("/admin/orgs/acme/shares"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("admin page on the public listener: %d", res.StatusCode)
	}

	// Revoke from the user's page: the link stops.
	if res, _ := b.post("/shares/"+id+"/revoke", url.Values{"csrf": {csrf}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d", res.StatusCode)
	}
	if res, _ := visitor.get(strings.TrimPrefix(link, s.PublicURL)); res.StatusCode != http.StatusNotFound {
		t.Fatalf("revoked link: %d", res.StatusCode)
	}

	// A second link, revoked by the administrator.
	_, page = b.post("/shares", url.Values{"csrf": {csrf}, "path": {"/team"}, "days": {"1"}, "dropbox": {"on"}})
	link2 := newShareRE.FindStringSubmatch(page)[1]
	_, page = b.get("/shares")
	id2 := shareRowRE.FindStringSubmatch(page)[1]
	_, apage = ab.get(s.AdminURL, "/admin/orgs/acme/shares")
	res, _ = ab.post(s.AdminURL, "/admin/orgs/acme/shares/"+id2+"/revoke", url.Values{"csrf": {csrfOf(t, apage)}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("admin revoke: %d", res.StatusCode)
	}
	if res, _ := visitor.get(strings.TrimPrefix(link2, s.PublicURL)); res.StatusCode != http.StatusNotFound {
		t.Fatalf("link revoked by the admin: %d", res.StatusCode)
	}

	// Watch the folder, then stop.
	if res, _ := b.post("/watch/team", url.Values{"csrf": {csrf}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("watch: %d", res.StatusCode)
	}
	_, page = b.get("/shares")
	wm := watchRE.FindStringSubmatch(page)
	if wm == nil || !strings.Contains(page, "/team") {
		t.Fatalf("watches on the page:\n%s", page)
	}
	if res, _ := b.post("/watches/"+wm[1]+"/delete", url.Values{"csrf": {csrf}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("unwatch: %d", res.StatusCode)
	}
	if _, page = b.get("/shares"); watchRE.MatchString(page) {
		t.Fatal("still watching")
	}
}
