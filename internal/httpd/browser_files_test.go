package httpd_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"ferry.dev/ferry/internal/ferrytest"
)

// cutProxy is a TCP proxy in front of the server that slows the browser's
// uploads down (so that a test can watch them) and can drop every
// connection and refuse new ones for a while: a network outage.
type cutProxy struct {
	ln     net.Listener
	target string
	rate   int // bytes per second, browser to server

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

func startCutProxy(t *testing.T, target string, rate int) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, rate: rate, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go p.serve()
	return p
}

func (p *cutProxy) port() string {
	_, port, _ := net.SplitHostPort(p.ln.Addr().String())
	return port
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = true, true
		p.mu.Unlock()
		go p.pipe(s, c, p.rate)
		go p.pipe(c, s, 0)
	}
}

// pipe copies src to dst, at most rate bytes per second (0: unlimited).
func (p *cutProxy) pipe(dst, src net.Conn, rate int) {
	defer func() {
		dst.Close()
		src.Close()
		p.mu.Lock()
		delete(p.conns, dst)
		delete(p.conns, src)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	start, sent := time.Now(), 0
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			sent += n
			if rate > 0 {
				if ahead := time.Duration(sent)*time.Second/time.Duration(rate) - time.Since(start); ahead > 0 {
					time.Sleep(ahead)
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// cut drops every connection and refuses new ones until restore.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
}

func (p *cutProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// uploadOffset is the server's offset of the caller's unfinished upload to
// path, or -1 when there is none.
func uploadOffset(t *testing.T, s *ferrytest.Server, tok, path string) int64 {
	t.Helper()
	res := s.Do("GET", "/api/v1/uploads/?path="+url.QueryEscape(path), tok, nil)
	var out struct {
		Uploads []struct {
			Offset int64 `json:"offset"`
		} `json:"uploads"`
	}
	if err := json.Unmarshal([]byte(ferrytest.Expect(t, res, http.StatusOK)), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) == 0 {
		return -1
	}
	return out.Uploads[0].Offset
}

// waitDownload waits for Chromium to finish saving name into dir.
func waitDownload(t *testing.T, dir, name string) []byte {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(dir, name+".crdownload")); err != nil {
			if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
				return b
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	entries, _ := os.ReadDir(dir)
	t.Fatalf("no download %s in %s (holds %v)", name, dir, entries)
	return nil
}

// TestBrowserFiles drives the file pages in headless Chromium: upload a
// 50 MiB file with the progress bar moving, through a network outage that
// it resumes from; download it and compare its SHA-256; create, rename and
// delete a folder; download a folder as a zip.
func TestBrowserFiles(t *testing.T) {
	ctx := newChromium(t)
	s := ferrytest.Start(t)
	withPassword(t, s, "acme", "carol@acme.test", "user", "correct horse battery")
	s.Admin("folder", "create", "--org", "acme", "/finance")
	s.Admin("grant", "--org", "acme", "--user", "carol@acme.test", "/finance", "list,read,write,delete")
	tok := strings.TrimSpace(s.Admin("token", "create", "--user", "carol@acme.test"))
	u, _ := url.Parse(s.PublicURL)
	proxy := startCutProxy(t, u.Host, 6<<20)
	base := "https://localhost:" + proxy.port()

	downloads := t.TempDir()
	if _, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads}); err != nil {
		t.Fatalf("Browser.setDownloadBehavior: %v", err)
	}
	run(t, ctx, "password sign-in", signInWithPassword(base, "carol@acme.test", "correct horse battery"), signedInHome)

	// Upload 50 MiB.
	const size = 50 << 20
	content := make([]byte, size)
	rand.Read(content)
	src := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(src, content, 0o600); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(content)
	run(t, ctx, "choose the file",
		chromedp.Navigate(base+"/files/finance"),
		chromedp.WaitReady(chromedp.CSS(`#pick-files`)),
		chromedp.SetUploadFiles(chromedp.CSS(`#pick-files`), []string{src}),
		chromedp.WaitVisible(chromedp.CSS(`#overall`)),
	)
	// The overall bar moves, and the server holds part of the file, before
	// the network goes away.
	var seen []float64
	var offset int64
	deadline := time.Now().Add(3 * time.Minute)
	for (len(seen) < 2 || offset <= 0) && time.Now().Before(deadline) {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.getElementById('overall').value`))
		if err != nil {
			t.Fatal(err)
		}
		if v > 0 && v < size && (len(seen) == 0 || v > seen[len(seen)-1]) {
			seen = append(seen, v)
		}
		offset = uploadOffset(t, s, tok, "/finance/big.bin")
		time.Sleep(200 * time.Millisecond)
	}
	if len(seen) < 2 || offset <= 0 || offset >= size {
		t.Fatalf("before the outage: progress values %v, server offset %d", seen, offset)
	}
	t.Logf("progress %v; server offset %d; cutting the network", seen, offset)
	proxy.cut()
	time.Sleep(3 * time.Second)
	if o := uploadOffset(t, s, tok, "/finance/big.bin"); o < offset || o >= size {
		t.Fatalf("during the outage the server offset is %d (was %d)", o, offset)
	}
	proxy.restore()
	run(t, ctx, "the upload resumes and completes",
		chromedp.WaitVisible(chromedp.CSS(`#uploads-done`)),
		chromedp.WaitVisible(chromedp.Search(`//ul[@id="queue"]/li[contains(@class, "done")]`)),
	)
	if o := uploadOffset(t, s, tok, "/finance/big.bin"); o != -1 {
		t.Fatalf("the upload is still open at %d", o)
	}
	res := s.Do("HEAD", "/api/v1/files/finance/big.bin", tok, nil)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("ETag") != `"`+hex.EncodeToString(want[:])+`"` {
		t.Fatalf("uploaded file: %d, ETag %s", res.StatusCode, res.Header.Get("ETag"))
	}

	// Download it from its page.
	run(t, ctx, "download",
		chromedp.Click(chromedp.CSS(`#uploads-done`)),
		chromedp.WaitVisible(chromedp.CSS(`a.file[href="/files/finance/big.bin"]`)),
		chromedp.Click(chromedp.CSS(`a.file[href="/files/finance/big.bin"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#file-sha256`)),
	)
	if got := text(t, ctx, `#file-sha256`); got != hex.EncodeToString(want[:]) {
		t.Fatalf("page shows SHA-256 %s", got)
	}
	run(t, ctx, "click download", chromedp.Click(chromedp.CSS(`#file a.button`)))
	if got := sha256.Sum256(waitDownload(t, downloads, "big.bin")); got != want {
		t.Fatalf("downloaded file differs")
	}

	// Create, rename and delete a folder.
	run(t, ctx, "create a folder",
		chromedp.Navigate(base+"/files/finance"),
		chromedp.SendKeys(chromedp.CSS(`#mkdir-name`), "Reports 2026"),
		chromedp.Click(chromedp.CSS(`#new-folder button`)),
		chromedp.WaitVisible(chromedp.CSS(`a.folder[href="/files/finance/Reports%202026/"]`)),
		chromedp.Click(chromedp.CSS(`a.folder[href="/files/finance/Reports%202026/"]`)),
		// /files/finance has a #rename-form too (every folder but the
		// root does): wait for the new folder's own.
		chromedp.WaitVisible(chromedp.CSS(`#rename-form #rename-name[value="Reports 2026"]`)),
	)
	run(t, ctx, "rename it",
		chromedp.Clear(chromedp.CSS(`#rename-name`)),
		chromedp.SendKeys(chromedp.CSS(`#rename-name`), "Reports"),
		chromedp.Click(chromedp.CSS(`#rename-form button`)),
		chromedp.WaitVisible(chromedp.Search(`//p[@role="status"][contains(., "Renamed.")]`)),
		chromedp.WaitVisible(chromedp.CSS(`a.folder[href="/files/finance/Reports/"]`)),
		chromedp.Click(chromedp.CSS(`a.folder[href="/files/finance/Reports/"]`)),
		// /files/finance, where the click is made, has a #delete-form
		// too: wait for the page of the folder to delete.
		chromedp.WaitVisible(chromedp.CSS(`#rename-form #rename-name[value="Reports"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#delete-form`)),
	)
	run(t, ctx, "delete it",
		chromedp.Click(chromedp.CSS(`#delete-form button`)),
		chromedp.WaitVisible(chromedp.Search(`//p[@role="status"][contains(., "Deleted.")]`)),
	)
	if page := text(t, ctx, `#listing`); strings.Contains(page, "Reports") {
		t.Fatalf("the folder is still listed:\n%s", page)
	}

	// A folder as a zip.
	files := map[string][]byte{"/finance/zipme/one.txt": []byte("one\n"), "/finance/zipme/sub/two.bin": bytes.Repeat([]byte{7}, 100000)}
	s.Admin("folder", "create", "--org", "acme", "/finance/zipme/sub")
	for p, b := range files {
		ferrytest.Expect(t, s.Do("PUT", "/api/v1/files"+p, tok, bytes.NewReader(b)), http.StatusCreated)
	}
	run(t, ctx, "download a folder as a zip",
		chromedp.Navigate(base+"/files/finance/zipme"),
		chromedp.Click(chromedp.CSS(`#zip-link`)),
	)
	checkZip(t, waitDownload(t, downloads, "zipme.zip"), files, "/finance/zipme/")

	// A whole folder, through the folder picker: its sub-folders are
	// created, then its files uploaded.
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "batch", "sub"), 0o755)
	os.WriteFile(filepath.Join(tree, "batch", "a.txt"), []byte("a\n"), 0o644)
	os.WriteFile(filepath.Join(tree, "batch", "sub", "b.txt"), []byte("bb\n"), 0o644)
	run(t, ctx, "upload a folder",
		chromedp.Navigate(base+"/files/finance"),
		chromedp.WaitReady(chromedp.CSS(`#pick-folder`)),
		chromedp.SetUploadFiles(chromedp.CSS(`#pick-folder`), []string{filepath.Join(tree, "batch")}),
		chromedp.WaitVisible(chromedp.CSS(`#uploads-done`)),
	)

	// Dragged and dropped: a folder with a sub-folder, and a file beside it.
	os.MkdirAll(filepath.Join(tree, "dropped", "deep"), 0o755)
	os.WriteFile(filepath.Join(tree, "dropped", "deep", "c.txt"), []byte("ccc\n"), 0o644)
	os.WriteFile(filepath.Join(tree, "loose.txt"), []byte("loose\n"), 0o644)
	run(t, ctx, "show the drop zone",
		chromedp.Navigate(base+"/files/finance"),
		chromedp.ScrollIntoView(chromedp.CSS(`#drop`)),
	)
	box, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`(() => { const r = document.getElementById('drop').getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()`))
	if err != nil {
		t.Fatal(err)
	}
	drag := &input.DragData{Items: []*input.DragDataItem{}, Files: []string{filepath.Join(tree, "dropped"), filepath.Join(tree, "loose.txt")}, DragOperationsMask: 1}
	for _, typ := range []input.DispatchDragEventType{input.DispatchDragEventTypeDragEnter, input.DispatchDragEventTypeDragOver, input.DispatchDragEventTypeDrop} {
		if _, err := chromedp.Call(ctx, input.DispatchDragEvent, input.DispatchDragEventParams{Type: typ, X: box[0], Y: box[1], Data: drag}); err != nil {
			t.Fatalf("Input.dispatchDragEvent %s: %v", typ, err)
		}
	}
	run(t, ctx, "the drop uploads", chromedp.WaitVisible(chromedp.CSS(`#uploads-done`)))
	for p, want := range map[string]string{"/finance/batch/a.txt": "a\n", "/finance/batch/sub/b.txt": "bb\n", "/finance/dropped/deep/c.txt": "ccc\n", "/finance/loose.txt": "loose\n"} {
		if got := ferrytest.Body(t, s.Do("GET", "/api/v1/files"+p, tok, nil)); got != want {
			t.Errorf("%s: %q", p, got)
		}
	}
}
