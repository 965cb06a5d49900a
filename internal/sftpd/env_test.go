package sftpd_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/blob/local"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/keys"
	"ferry.dev/ferry/internal/sftpd"
	"ferry.dev/ferry/internal/transfer"
)

// env is the whole stack below sftpd, in process: SQLite, keys, blobs,
// audit, transfer and auth, with one organisation.
type env struct {
	d      *db.DB
	tr     *transfer.Service
	au     *auth.Service
	org    *ferry.Org
	admin  *ferry.Principal
	logger *slog.Logger
	dir    string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	d := dbtest.SQLite(t)
	keks, err := keys.NewFileKEK(filepath.Join(dir, "keys"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, _, err := audit.LoadOrCreateKey(filepath.Join(dir, "keys"), "test", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	alog, err := audit.Open(ctx, d, signer, filepath.Join(dir, "checkpoint"), time.Now, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alog.Close() })
	blobs, err := local.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	org := &ferry.Org{ID: ferry.NewID(nil), Name: "acme", RetentionDays: 30, Created: time.Now()}
	if err := keks.Ensure(ctx, org.ID); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateOrg(ctx, org, ferry.NewID(nil)); err != nil {
		t.Fatal(err)
	}
	tr := transfer.New(transfer.Config{DB: d, Blobs: blobs, KEKs: keks, Audit: alog, Now: time.Now, Rand: rand.Reader, Logger: logger})
	au := auth.New(d, alog, time.Now, rand.Reader, logger)
	admin := &ferry.Principal{UserID: "admin", Email: "admin@acme.test", OrgID: org.ID, Role: ferry.RoleAdmin, Remote: "test", Protocol: "sftp"}
	return &env{d: d, tr: tr, au: au, org: org, admin: admin, logger: logger, dir: dir}
}

// user creates a user with a password (cheap argon2 parameters).
func (e *env) user(t testing.TB, email, password string, role ferry.Role) *ferry.User {
	t.Helper()
	hash, err := auth.HashPassword(password, auth.PasswordParams{Time: 1, Memory: 8 * 1024, Threads: 1}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u := &ferry.User{ID: ferry.NewID(nil), OrgID: e.org.ID, Email: email, Role: role, PasswordHash: hash, Created: time.Now()}
	if err := e.d.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

// pipeSession serves SFTP for p on one end of an in-memory pipe and returns
// a pkg/sftp client on the other, and a channel that yields ServeSFTP's
// result.
func (e *env) pipeSession(t testing.TB, p *ferry.Principal, opts ...sftp.ClientOption) (*sftp.Client, <-chan error) {
	t.Helper()
	cs, ss := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- sftpd.ServeSFTP(context.Background(), ss, e.tr, p, e.logger) }()
	c, err := sftp.NewClientPipe(cs, cs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, done
}

// startServer runs an sftpd.Server on 127.0.0.1:0.
func (e *env) startServer(t testing.TB, cfg sftpd.Config, lim *auth.Limiter) (*sftpd.Server, string) {
	t.Helper()
	if cfg.HostKeys == nil {
		hk, err := sftpd.LoadOrCreateHostKeys(filepath.Join(e.dir, "keys"), rand.Reader, false)
		if err != nil {
			t.Fatal(err)
		}
		cfg.HostKeys = hk
	}
	cfg.Logger = e.logger
	if lim == nil {
		lim = auth.NewLimiter(auth.LimiterConfig{}, time.Now)
	}
	srv, err := sftpd.New(cfg, e.tr, e.au, lim)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		wg.Wait()
	})
	return srv, ln.Addr().String()
}

// need returns the path of a client program, or skips the test when it is
// missing — except under CI=true, where a missing client fails it.
func need(t testing.TB, prog string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (scripts/test.sh installs it)", prog)
	}
	t.Skipf("%s is not installed; run scripts/test.sh to install it", prog)
	return ""
}
