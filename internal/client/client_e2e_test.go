package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry.dev/ferry/internal/client"
	"ferry.dev/ferry/internal/ferrytest"
)

// setup starts a server where alice may do anything in /finance, and
// returns her token.
func setup(t *testing.T) (*ferrytest.Server, string) {
	t.Helper()
	s := ferrytest.Start(t)
	s.User("acme", "admin@acme.test", "admin")
	s.Admin("folder", "create", "--org", "acme", "/finance")
	alice := s.User("acme", "alice@acme.test", "user")
	s.Admin("grant", "--org", "acme", "--user", "alice@acme.test", "/finance", "list,read,write,delete")
	return s, alice
}

func newClient(t *testing.T, server, token, ca string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Server: server, Token: token, CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	c.Backoff = 10 * time.Millisecond
	return c
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// rawPatch sends one PATCH outside the client, as another process would.
func rawPatch(t *testing.T, s *ferrytest.Server, token, loc string, off int64, b []byte) {
	t.Helper()
	res := s.Do("PATCH", strings.TrimPrefix(loc, s.PublicURL), token, bytes.NewReader(b),
		"Tus-Resumable", "1.0.0", "Content-Type", "application/offset+octet-stream", "Upload-Offset", strconv.FormatInt(off, 10))
	ferrytest.Expect(t, res, 204)
}

// TestUploadResumesAndFollowsTheServer resumes an upload another client
// began, and continues from the server's offset when a PATCH of its own
// loses a race (409).
func TestUploadResumesAndFollowsTheServer(t *testing.T) {
	s, alice := setup(t)
	c := newClient(t, s.PublicURL, alice, s.CA())
	ctx := context.Background()
	content := random(1 << 20)
	sum := hexSum(content)
	const remote = "/finance/r.bin"

	// An upload begun elsewhere, 100 KiB in.
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	res := s.Do("POST", "/api/v1/uploads/", alice, nil, "Tus-Resumable", "1.0.0", "Upload-Length", strconv.Itoa(len(content)),
		"Upload-Metadata", "path "+b64(remote)+",sha256 "+b64(sum))
	ferrytest.Expect(t, res, 201)
	loc := res.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = s.PublicURL + loc
	}
	rawPatch(t, s, alice, loc, 0, content[:100<<10])

	// While the client starts, someone else sends the next 50 KiB: the
	// client's first PATCH gets a 409 and it follows the server.
	var once sync.Once
	progress := func(done int64) {
		once.Do(func() { rawPatch(t, s, alice, loc, done, content[done:done+50<<10]) })
	}
	up, err := c.Upload(ctx, bytes.NewReader(content), int64(len(content)), remote, client.UploadOptions{ChunkSize: 256 << 10, Progress: progress})
	if err != nil {
		t.Fatal(err)
	}
	if up.ResumedFrom != 100<<10 || up.SHA256 != sum || up.Size != int64(len(content)) {
		t.Errorf("upload: %+v", up)
	}
	// It sent the rest once, plus the chunk the server refused (409 before
	// reading, or after reading some of it).
	if rest := int64(len(content) - 150<<10); up.Sent < rest || up.Sent > rest+256<<10 {
		t.Errorf("sent %d bytes, want %d to %d", up.Sent, rest, rest+256<<10)
	}
	fi, err := c.Stat(ctx, remote)
	if err != nil || fi.SHA256 != sum || fi.Size != int64(len(content)) {
		t.Fatalf("stat after upload: %+v %v", fi, err)
	}
	if ups, err := c.Uploads(ctx, ""); err != nil || len(ups) != 0 {
		t.Errorf("unfinished uploads after completion: %v %v", ups, err)
	}

	// A different file to the same path does not resume the wrong upload.
	other := random(300 << 10)
	up, err = c.Upload(ctx, bytes.NewReader(other), int64(len(other)), remote, client.UploadOptions{})
	if err != nil || up.ResumedFrom != 0 || up.SHA256 != hexSum(other) {
		t.Fatalf("second upload: %+v %v", up, err)
	}
}

// TestTransfersSurviveDroppedConnections cuts every connection in the middle
// of an upload and of a download: both retry and finish from where the
// server (or the partial file) is.
func TestTransfersSurviveDroppedConnections(t *testing.T) {
	s, alice := setup(t)
	proxy := ferrytest.StartProxy(t, strings.TrimPrefix(s.PublicURL, "https://"))
	c := newClient(t, "https://"+proxy.Addr, alice, s.CA())
	ctx := context.Background()
	content := random(24 << 20)
	size := int64(len(content))

	var cut sync.Once
	up, err := c.Upload(ctx, bytes.NewReader(content), size, "/finance/d.bin", client.UploadOptions{ChunkSize: 1 << 20,
		Progress: func(done int64) {
			if done > size/2 {
				cut.Do(proxy.Cut)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if up.SHA256 != hexSum(content) || up.Sent < size || up.Sent > size+2<<20 {
		t.Errorf("upload over a cut connection: %+v", up)
	}
	if n := proxy.Accepted(); n < 2 {
		t.Fatalf("the upload used %d connection(s): the cut did not happen", n)
	}
	conns := proxy.Accepted()

	target := filepath.Join(t.TempDir(), "d.bin")
	var cut2 sync.Once
	// Cut early: a late cut may find the rest in socket buffers already.
	down, err := c.Download(ctx, "/finance/d.bin", target, client.DownloadOptions{Progress: func(done int64) {
		if done > 0 {
			cut2.Do(proxy.Cut)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(target)
	if !bytes.Equal(got, content) || down.SHA256 != hexSum(content) || down.Received != size {
		t.Errorf("download over a cut connection: %+v, content equal %v", down, bytes.Equal(got, content))
	}
	// The download starts on the upload's idle connection; a new one means
	// the cut happened.
	if n := proxy.Accepted() - conns; n < 1 {
		t.Errorf("the download opened %d connection(s): the cut did not happen", n)
	}
}

// TestErrorsCarryTheAPIKind checks the client's error values against the
// real server.
func TestErrorsCarryTheAPIKind(t *testing.T) {
	s, alice := setup(t)
	ctx := context.Background()
	bad := newClient(t, s.PublicURL, "ferry_0123456789abcdef_wrong", s.CA())
	if _, err := bad.Me(ctx); !client.IsKind(err, "unauthenticated") || !client.IsStatus(err, 401) {
		t.Errorf("wrong token: %v", err)
	}
	c := newClient(t, s.PublicURL, alice, s.CA())
	me, err := c.Me(ctx)
	if err != nil || me.Email != "alice@acme.test" || me.Org != "acme" || me.Role != "user" {
		t.Errorf("me: %+v %v", me, err)
	}
	if err := c.Mkdir(ctx, "/finance/x"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mkdir(ctx, "/finance/x"); !client.IsKind(err, "exist") {
		t.Errorf("mkdir of an existing folder: %v", err)
	}
	if _, err := c.Stat(ctx, "/finance/none"); !client.IsKind(err, "not_exist") {
		t.Errorf("stat of nothing: %v", err)
	}
	// Without the CA, the self-signed certificate is refused.
	noCA := newClient(t, s.PublicURL, alice, "")
	noCA.Retries = 0
	if _, err := noCA.Me(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("no CA: %v", err)
	}
}

// TestSendPackageIsIdempotent: when the answer to a send was lost and the
// client tries again, the server says the package was sent already; the
// client reports it sent (ferry send then exits 0), and a recalled package
// is still an error.
func TestSendPackageIsIdempotent(t *testing.T) {
	s, alice := setup(t)
	ctx := context.Background()
	c := newClient(t, s.PublicURL, alice, s.CA())
	pkg, err := c.CreatePackage(ctx, client.PackageRequest{To: []string{"partner@example.test"}, Subject: "Statements"})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("statement")
	if _, err := c.Upload(ctx, bytes.NewReader(body), int64(len(body)), pkg.UploadFolder+"/s.txt", client.UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	// The first try reached the server; its answer did not reach the client.
	ferrytest.Expect(t, s.Do("POST", "/api/v1/packages/"+pkg.ID+"/send", alice, strings.NewReader("{}"), "Content-Type", "application/json"), 200)
	sent, err := c.SendPackage(ctx, pkg.ID)
	if err != nil || sent.Status != "sent" || sent.Sent == nil || len(sent.Files) != 1 {
		t.Fatalf("send again: %+v %v", sent, err)
	}
	if _, err := c.RecallPackage(ctx, pkg.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendPackage(ctx, pkg.ID); !client.IsKind(err, "conflict") {
		t.Fatalf("sending a recalled package: %v", err)
	}
}
