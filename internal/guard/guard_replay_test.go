package guard_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/blob/local"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/ferrytest"
	"ferry.dev/ferry/internal/keys"
	"ferry.dev/ferry/internal/transfer"
)

// The replay: an organisation with 20,000 files across 20 parties, and a
// thief holding a partner's credentials who lists and downloads everything
// as fast as it can, over REST and over SFTP.

const (
	replayParties = 20
	replayFolder  = "/parties"
)

// replaySite is a running server with a seeded organisation.
type replaySite struct {
	*ferrytest.Server
	mp     *ferrytest.Mailpit
	paths  []string // every seeded file
	total  int64    // their bytes
	folder []string // the folders holding them
}

// replayFiles is how many files the replay seeds: 20,000, or 2,000 with
// -short (then the 1 % figure is not what is checked, only the freeze).
func replayFiles() int {
	if testing.Short() {
		return 2000
	}
	return 20000
}

func startReplay(t *testing.T) *replaySite {
	t.Helper()
	mp := ferrytest.StartMailpit(t)
	// Loopback is allow-listed for the webhook receiver of the test. The
	// data directory is on tmpfs when there is one, so that seeding 20,000
	// files takes seconds of fsync less.
	opts := []ferrytest.Option{ferrytest.WithMail(mp), ferrytest.WithArgs("--outbound-allow", "127.0.0.1/32")}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "ferry-guard-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			opts = append(opts, ferrytest.WithData(filepath.Join(dir, "data")))
		}
	}
	s := &replaySite{Server: ferrytest.Start(t, opts...), mp: mp}
	s.Admin("org", "create", "acme")
	if _, errOut, err := s.Run("quartz-lantern-meadow-admin\n", "admin", "user", "create", "--org", "acme", "--email", "admin@acme.test", "--role", "admin", "--password-stdin"); err != nil {
		t.Fatalf("admin user: %v\n%s", err, errOut)
	}
	s.Admin("folder", "create", "--org", "acme", replayFolder)
	for i := range replayParties {
		party := fmt.Sprintf("customer%02d", i)
		s.Admin("party", "create", "--org", "acme", party, "--contact", "dpo@"+party+".test")
		dir := fmt.Sprintf("%s/%s", replayFolder, party)
		s.Admin("folder", "create", "--org", "acme", dir, "--party", party)
		s.folder = append(s.folder, dir)
	}
	// The server stops while the files are seeded in-process on its data
	// directory (through transfer, like any upload, only faster).
	s.Stop()
	start := time.Now()
	s.seed(t, replayFiles())
	t.Logf("seeded %d files (%d bytes) in %v", len(s.paths), s.total, time.Since(start).Round(time.Millisecond))
	s.Restart()
	return s
}

func (s *replaySite) seed(t *testing.T, n int) {
	ctx := context.Background()
	dir := s.Data
	d, err := db.Open(ctx, filepath.Join(dir, "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	keks, err := keys.NewFileKEK(filepath.Join(dir, "keys"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, _, err := audit.LoadOrCreateKey(filepath.Join(dir, "keys"), "ferry-audit", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	alog, err := audit.Open(ctx, d, signer, filepath.Join(dir, "audit", "checkpoint"), time.Now, logger)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := local.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	defer blobs.Close()
	tr := transfer.New(transfer.Config{DB: d, Blobs: blobs, KEKs: keks, Audit: alog, Now: time.Now, Rand: rand.Reader, Logger: logger})
	org, err := d.OrgByName(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	op := &ferry.Principal{Operator: true, OrgID: org.ID, Remote: "seed", Protocol: "seed"}
	s.paths = make([]string, n)
	for i := range n {
		s.paths[i] = fmt.Sprintf("%s/invoice_%05d.csv", s.folder[i%len(s.folder)], i)
	}
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		total atomic.Int64
		fail  atomic.Value
	)
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || fail.Load() != nil {
					return
				}
				body := bytes.Repeat([]byte(fmt.Sprintf("invoice %05d;customer;amount\n", i)), 30+i%10)
				if _, err := tr.Put(ctx, op, s.paths[i], bytes.NewReader(body)); err != nil {
					fail.Store(err)
					return
				}
				total.Add(int64(len(body)))
			}
		})
	}
	wg.Wait()
	if err := alog.Close(); err != nil {
		t.Fatal(err)
	}
	if err, _ := fail.Load().(error); err != nil {
		t.Fatal(err)
	}
	s.total = total.Load()
}

// thief is a partner account whose credentials were stolen.
type thief struct {
	email, password, token string
	key                    ssh.Signer
}

func (s *replaySite) newThief(t *testing.T, email string) *thief {
	t.Helper()
	th := &thief{email: email, password: "violet-harbor-trumpet-partner"}
	if _, errOut, err := s.Run(th.password+"\n", "admin", "user", "create", "--org", "acme", "--email", email, "--password-stdin"); err != nil {
		t.Fatalf("user create: %v\n%s", err, errOut)
	}
	s.Admin("grant", "--org", "acme", "--user", email, replayFolder, "list,read")
	th.token = strings.TrimSpace(s.Admin("token", "create", "--user", email))
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if th.key, err = ssh.NewSignerFromKey(priv); err != nil {
		t.Fatal(err)
	}
	kf := filepath.Join(t.TempDir(), "id.pub")
	if err := os.WriteFile(kf, ssh.MarshalAuthorizedKey(th.key.PublicKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Admin("sshkey", "add", "--user", email, "--key-file", kf)
	return th
}

// clientFrom returns a client of the public listener whose connections
// come from the given local address, with a cookie jar.
func (s *replaySite) clientFrom(t *testing.T, local string) *http.Client {
	t.Helper()
	tr := s.Client.Transport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
	tr.DialContext = d.DialContext
	jar, _ := cookiejar.New(nil)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Jar: jar, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// session signs in on the web UI and returns a client holding the session
// cookie.
func (s *replaySite) session(t *testing.T, th *thief) *http.Client {
	t.Helper()
	return s.sessionWith(t, s.clientFrom(t, "127.0.0.1"), th)
}

// sessionWith signs in on the web UI with the client c, in a new cookie jar.
func (s *replaySite) sessionWith(t *testing.T, c *http.Client, th *thief) *http.Client {
	t.Helper()
	c.Jar, _ = cookiejar.New(nil)
	req, _ := http.NewRequest(http.MethodPost, s.PublicURL+"/login", strings.NewReader(url.Values{"email": {th.email}, "password": {th.password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("web sign-in: %s", res.Status)
	}
	return c
}

// webStatus returns the status of the web UI's home page for a session.
func (s *replaySite) webStatus(t *testing.T, c *http.Client) int {
	t.Helper()
	res, err := c.Get(s.PublicURL + "/files/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// steal downloads every file with get, 8 at a time, until every worker was
// refused; it returns the files and bytes that left.
func steal(paths []string, get func(path string) (int64, error)) (files int, bytes int64, firstErr error) {
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		next    atomic.Int64
		refused atomic.Int64
	)
	for range 8 {
		wg.Go(func() {
			for refused.Load() < 50 { // keep trying a while after the first refusal
				i := int(next.Add(1) - 1)
				if i >= len(paths) {
					return
				}
				n, err := get(paths[i])
				mu.Lock()
				if err == nil {
					files++
					bytes += n
				} else {
					refused.Add(1)
					if firstErr == nil {
						firstErr = err
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return files, bytes, firstErr
}

// TestGuardReplay replays the theft over REST and over SFTP on an
// organisation of 20,000 files: frozen before 1 % of the files and of the
// bytes left; the administrators get the alert by mail; the token and the
// web session are refused afterwards; a restart keeps the freeze; one
// unfreeze restores access. Canary files freeze at the first read, over
// REST, SFTP and a share link, within that request; sharing a folder that
// holds one freezes the sharer.
func TestGuardReplay(t *testing.T) {
	s := startReplay(t)
	limit := len(s.paths) / 100

	t.Run("rest", func(t *testing.T) {
		th := s.newThief(t, "partner@customer.test")
		web := s.session(t, th)
		if st := s.webStatus(t, web); st != http.StatusOK {
			t.Fatalf("web page before the theft: %d", st)
		}
		// List every folder, then download everything.
		for _, f := range s.folder {
			ferrytest.Expect(t, s.Do("GET", "/api/v1/folders"+f, th.token, nil), http.StatusOK)
		}
		start := time.Now()
		files, bytes, err := steal(s.paths, func(p string) (int64, error) {
			req, _ := http.NewRequest("GET", s.PublicURL+"/api/v1/files"+p, nil)
			req.Header.Set("Authorization", "Bearer "+th.token)
			res, err := s.Client.Do(req)
			if err != nil {
				return 0, err
			}
			defer res.Body.Close()
			b, err := io.ReadAll(res.Body)
			if err != nil {
				return 0, err
			}
			if res.StatusCode != http.StatusOK {
				return 0, fmt.Errorf("%s: %s", res.Status, b)
			}
			return int64(len(b)), nil
		})
		t.Logf("REST: %d of %d files (%.2f%%), %d of %d bytes (%.2f%%) left before the freeze, in %v; then: %v",
			files, len(s.paths), 100*float64(files)/float64(len(s.paths)), bytes, s.total, 100*float64(bytes)/float64(s.total), time.Since(start).Round(time.Millisecond), err)
		if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "frozen by the guard") {
			t.Fatalf("the thief was not stopped by the guard: %v", err)
		}
		if !testing.Short() && (files >= limit || bytes*100 >= s.total) {
			t.Fatalf("%d files / %d bytes left, want fewer than 1 %% (%d files, %d bytes)", files, bytes, limit, s.total/100)
		}
		// The alert reaches the administrators.
		msg := s.mp.WaitFor(t, "admin@acme.test", "partner@customer.test was frozen", 30*time.Second)
		if !strings.Contains(msg.Text, "distinct files") {
			t.Errorf("alert mail lacks the reason:\n%s", msg.Text)
		}
		// The token and the web session are refused.
		body := ferrytest.Expect(t, s.Do("GET", "/api/v1/me", th.token, nil), http.StatusForbidden)
		if !strings.Contains(body, "frozen by the guard; ask an administrator") {
			t.Fatalf("token refusal: %s", body)
		}
		if st := s.webStatus(t, web); st == http.StatusOK {
			t.Fatal("the web session still works")
		}
		// A restart keeps the freeze.
		s.Restart()
		ferrytest.Expect(t, s.Do("GET", "/api/v1/files"+s.paths[0], th.token, nil), http.StatusForbidden)
		// One action unfreezes: reads, token and session work again.
		out := s.Admin("unfreeze", "--org", "acme", th.email)
		if !strings.Contains(out, "unfroze") {
			t.Fatalf("unfreeze: %s", out)
		}
		ferrytest.Expect(t, s.Do("GET", "/api/v1/files"+s.paths[len(s.paths)-1], th.token, nil), http.StatusOK)
		if st := s.webStatus(t, web); st != http.StatusOK {
			t.Fatalf("web page after unfreeze: %d", st)
		}
		assertAudit(t, s, "alert.freeze", "guard.unfreeze")
	})

	t.Run("sftp", func(t *testing.T) {
		th := s.newThief(t, "sftp-partner@customer.test")
		c := s.sftp(t, th)
		defer c.Close()
		var walked []string
		for _, f := range s.folder {
			entries, err := c.ReadDir(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				walked = append(walked, f+"/"+e.Name())
			}
		}
		if len(walked) != len(s.paths) {
			t.Fatalf("listed %d files, want %d", len(walked), len(s.paths))
		}
		files, bytes, err := steal(walked, func(p string) (int64, error) {
			f, err := c.Open(p)
			if err != nil {
				return 0, err
			}
			defer f.Close()
			return io.Copy(io.Discard, f)
		})
		t.Logf("SFTP: %d of %d files (%.2f%%), %d of %d bytes (%.2f%%) left before the freeze; then: %v",
			files, len(s.paths), 100*float64(files)/float64(len(s.paths)), bytes, s.total, 100*float64(bytes)/float64(s.total), err)
		if err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("the SFTP thief was not refused with permission denied: %v", err)
		}
		if !testing.Short() && (files >= limit || bytes*100 >= s.total) {
			t.Fatalf("%d files / %d bytes left, want fewer than 1 %%", files, bytes)
		}
		s.mp.WaitFor(t, "admin@acme.test", "sftp-partner@customer.test was frozen", 30*time.Second)
		// The SSH connection stays up, but a frozen account does nothing
		// through it: not even a listing.
		if _, err := c.ReadDir(s.folder[0]); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("listing while frozen: %v", err)
		}
		ferrytest.Expect(t, s.Do("GET", "/api/v1/me", th.token, nil), http.StatusForbidden)
		// A new SSH login of the frozen account is refused outright.
		if conn, err := ssh.Dial("tcp", s.SFTPAddr, &ssh.ClientConfig{User: th.email, Auth: []ssh.AuthMethod{ssh.PublicKeys(th.key)},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}); err == nil {
			conn.Close()
			t.Fatal("a frozen account logged in over SSH")
		}
		s.Admin("unfreeze", "--org", "acme", th.email)
		if _, err := c.Stat(walked[0]); err != nil {
			t.Fatal(err)
		}
		f, err := c.Open(walked[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, f); err != nil {
			t.Fatalf("SFTP read after unfreeze: %v", err)
		}
		f.Close()
	})

	t.Run("canary", func(t *testing.T) {
		// An administrator generates decoys and marks an existing file;
		// listing them is fine, the first read of one freezes the reader and
		// is refused.
		out := s.Admin("canary", "generate", "--org", "acme", "--folder", s.folder[3], "--count", "2")
		decoys := strings.Fields(out)
		if len(decoys) != 2 {
			t.Fatalf("generate: %q", out)
		}
		marked := s.paths[7]
		s.Admin("canary", "mark", "--org", "acme", marked)
		list := s.Admin("canary", "list", "--org", "acme")
		for _, p := range append(decoys, marked) {
			if !strings.Contains(list, p) {
				t.Fatalf("canary list lacks %s:\n%s", p, list)
			}
		}

		rest := s.newThief(t, "curious@customer.test")
		ferrytest.Expect(t, s.Do("GET", "/api/v1/folders"+s.folder[3], rest.token, nil), http.StatusOK)
		ferrytest.Expect(t, s.Do("GET", "/api/v1/files"+s.paths[3], rest.token, nil), http.StatusOK)
		body := ferrytest.Expect(t, s.Do("GET", "/api/v1/files"+decoys[0], rest.token, nil), http.StatusForbidden)
		if !strings.Contains(body, "frozen by the guard") || strings.Contains(strings.ToLower(body), "canary") {
			t.Fatalf("canary read over REST: %s", body)
		}
		ferrytest.Expect(t, s.Do("GET", "/api/v1/files"+s.paths[3], rest.token, nil), http.StatusForbidden)
		s.mp.WaitFor(t, "admin@acme.test", "Canary file touched by curious@customer.test", 30*time.Second)

		th := s.newThief(t, "curious-sftp@customer.test")
		c := s.sftp(t, th)
		defer c.Close()
		if _, err := c.ReadDir(filepath.Dir(marked)); err != nil {
			t.Fatalf("listing a folder with a canary: %v", err)
		}
		f, err := c.Open(marked)
		if err == nil {
			_, err = io.Copy(io.Discard, f)
			f.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("canary read over SFTP: %v", err)
		}
		if f, err := c.Open(s.paths[3]); err == nil {
			_, err = io.Copy(io.Discard, f)
			f.Close()
			if err == nil {
				t.Fatal("a frozen SFTP user still reads")
			}
		}
		status := s.Admin("guard", "show", "--org", "acme")
		for _, who := range []string{"curious@customer.test", "curious-sftp@customer.test"} {
			if !strings.Contains(status, who) {
				t.Fatalf("guard show lacks %s:\n%s", who, status)
			}
		}
		assertAudit(t, s, "alert.canary", "guard.canary.generate", "guard.canary.mark")
	})

	t.Run("share", func(t *testing.T) {
		// A partner shares a folder; later a file in it becomes a canary.
		// The link's visitor who reads it is frozen within that request
		// (the link is suspended); sharing a folder that holds a canary
		// freezes the sharer and is refused.
		sharer := s.newThief(t, "sharer@customer.test")
		dir := s.folder[5]
		s.Admin("grant", "--org", "acme", "--user", sharer.email, dir, "list,read,share")
		body := ferrytest.Expect(t, s.Do("POST", "/api/v1/shares", sharer.token, strings.NewReader(`{"path":"`+dir+`"}`), "Content-Type", "application/json"), http.StatusCreated)
		var sh struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal([]byte(body), &sh); err != nil || sh.Token == "" {
			t.Fatalf("share: %v %s", err, body)
		}
		visit := func(name string) int {
			res, err := s.Client.Get(s.PublicURL + "/s/" + sh.Token + "/download/" + name)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			return res.StatusCode
		}
		plain, canary := filepath.Base(s.paths[5]), filepath.Base(s.paths[25])
		if st := visit(plain); st != http.StatusOK {
			t.Fatalf("share download before: %d", st)
		}
		s.Admin("canary", "mark", "--org", "acme", s.paths[25])
		if st := visit(canary); st != http.StatusForbidden {
			t.Fatalf("canary through the share link: %d, want 403", st)
		}
		if st := visit(plain); st != http.StatusForbidden {
			t.Fatalf("the share link still works after touching a canary: %d", st)
		}
		// The sharer is not frozen by the visitor; sharing the folder that
		// now holds a canary freezes them.
		ferrytest.Expect(t, s.Do("GET", "/api/v1/me", sharer.token, nil), http.StatusOK)
		body = ferrytest.Expect(t, s.Do("POST", "/api/v1/shares", sharer.token, strings.NewReader(`{"path":"`+dir+`"}`), "Content-Type", "application/json"), http.StatusForbidden)
		if !strings.Contains(body, "frozen by the guard") {
			t.Fatalf("share of a folder with a canary: %s", body)
		}
		ferrytest.Expect(t, s.Do("GET", "/api/v1/me", sharer.token, nil), http.StatusForbidden)
		status := s.Admin("guard", "show", "--org", "acme")
		if !strings.Contains(status, "sharer@customer.test") || !strings.Contains(status, "share:") {
			t.Fatalf("guard show lacks the sharer or the link:\n%s", status)
		}
	})

	t.Run("webhook", func(t *testing.T) {
		// An administrator sets the webhook with the CLI; the next freeze
		// reaches the receiver, signed (the receiver checks the HMAC).
		const secret = "webhook-secret-of-the-test"
		r := newReceiver(t, secret)
		if out, errOut, err := s.Run(secret+"\n", "admin", "guard", "webhook", "--org", "acme", "--url", r.srv.URL+"/hook", "--secret-stdin"); err != nil {
			t.Fatalf("guard webhook: %v\n%s%s", err, out, errOut)
		}
		out := s.Admin("guard", "policy", "--org", "acme", "--max-files", "500")
		if !strings.Contains(out, "max-files       500") {
			t.Fatalf("guard policy:\n%s", out)
		}
		s.Admin("guard", "policy", "--org", "acme", "--max-files", "180")
		s.Admin("canary", "mark", "--org", "acme", s.paths[9])
		th := s.newThief(t, "hooked@customer.test")
		ferrytest.Expect(t, s.Do("GET", "/api/v1/files"+s.paths[9], th.token, nil), http.StatusForbidden)
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, bad := r.payloads()
			kinds := map[string]bool{}
			for _, p := range got {
				if p.Principal == th.email && p.Org == "acme" {
					kinds[p.Alert] = true
				}
			}
			if bad != 0 {
				t.Fatalf("%d deliveries failed the signature check", bad)
			}
			if kinds["canary"] && kinds["freeze"] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("webhook got %+v, want canary and freeze alerts for %s", got, th.email)
			}
			time.Sleep(200 * time.Millisecond)
		}
		assertAudit(t, s, "guard.webhook", "guard.policy")
	})

	t.Run("signin-alerts", func(t *testing.T) {
		// Loopback has more than one /24 and /16: 127.0.0.1 and 127.1.0.1
		// stand for two distant networks.
		th := s.newThief(t, "traveller@customer.test")
		home, away := s.clientFrom(t, "127.0.0.1"), s.clientFrom(t, "127.1.0.1")
		s.sessionWith(t, home, th)
		s.sessionWith(t, home, th) // the same range again: nothing
		s.sessionWith(t, away, th)
		msg := s.mp.WaitFor(t, "admin@acme.test", "traveller@customer.test signed in from a new address range", 30*time.Second)
		if !strings.Contains(msg.Text, "127.1.0.0/24") {
			t.Fatalf("new-range alert:\n%s", msg.Text)
		}
		n := 0
		for _, m := range s.mp.Messages(t) {
			if strings.Contains(m.Subject, "traveller@customer.test signed in from a new address range") {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d new-range alerts, want 1 (the first sign-in and the same /24 again do not alert)", n)
		}
		for _, c := range []*http.Client{home, away} {
			req, _ := http.NewRequest("GET", s.PublicURL+"/api/v1/me", nil)
			req.Header.Set("Authorization", "Bearer "+th.token)
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("token use: %s", res.Status)
			}
		}
		msg = s.mp.WaitFor(t, "admin@acme.test", "Token of traveller@customer.test used from two distant networks", 30*time.Second)
		if !strings.Contains(msg.Text, "127.0.0.1") || !strings.Contains(msg.Text, "127.1.0.1") {
			t.Fatalf("token-ranges alert:\n%s", msg.Text)
		}
		assertAudit(t, s, "alert.newaddr", "alert.tokenranges")
	})

	t.Run("adminui", func(t *testing.T) {
		// The admin UI's guard page lists who is frozen and why; one click
		// unfreezes.
		c := s.adminSession(t)
		page := s.adminGet(t, c, "/admin/orgs/acme/guard")
		for _, want := range []string{"curious@customer.test", "canary", "Unfreeze", "generated decoy", "Save guard policy"} {
			if !strings.Contains(page, want) {
				t.Fatalf("guard page lacks %q", want)
			}
		}
		csrf := between(page, `name="csrf" value="`, `"`)
		form := url.Values{"csrf": {csrf}, "who": {"curious@customer.test"}}
		req, _ := http.NewRequest(http.MethodPost, s.AdminURL+"/admin/orgs/acme/guard/unfreeze", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("unfreeze form: %s", res.Status)
		}
		page = s.adminGet(t, c, "/admin/orgs/acme/guard?done=Unfrozen.")
		if strings.Contains(page, "<td>curious@customer.test<br>") {
			t.Fatal("still listed as frozen after the unfreeze")
		}
		th := thief{email: "curious@customer.test"}
		out, _, err := s.Run("", "admin", "token", "create", "--user", th.email)
		if err != nil {
			t.Fatal(err)
		}
		ferrytest.Expect(t, s.Do("GET", "/api/v1/me", strings.TrimSpace(out), nil), http.StatusOK)
		assertAudit(t, s, "guard.unfreeze")
	})
}

// adminSession signs the organisation's administrator in on the admin UI.
func (s *replaySite) adminSession(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: s.Client.Transport, Jar: jar, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodPost, s.AdminURL+"/admin/login", strings.NewReader(url.Values{"email": {"admin@acme.test"}, "password": {"quartz-lantern-meadow-admin"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/admin/" {
		t.Fatalf("admin sign-in: %s to %s", res.Status, res.Header.Get("Location"))
	}
	return c
}

func (s *replaySite) adminGet(t *testing.T, c *http.Client, path string) string {
	t.Helper()
	res, err := c.Get(s.AdminURL + path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", path, res.Status, b)
	}
	return string(b)
}

func between(s, start, end string) string {
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, end)
	return v
}

func (s *replaySite) sftp(t *testing.T, th *thief) *sftp.Client {
	t.Helper()
	cfg := &ssh.ClientConfig{User: th.email, Auth: []ssh.AuthMethod{ssh.PublicKeys(th.key)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}
	conn, err := ssh.Dial("tcp", s.SFTPAddr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sftp.NewClient(conn)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return c
}

// assertAudit checks that the audit log holds each action.
func assertAudit(t *testing.T, s *replaySite, actions ...string) {
	t.Helper()
	for _, a := range actions {
		out, errOut, err := s.Run("", "audit", "log", "--action", a)
		if err != nil {
			t.Fatalf("audit log: %v\n%s", err, errOut)
		}
		if !strings.Contains(out, a) {
			t.Errorf("the audit log has no %s", a)
		}
	}
}
