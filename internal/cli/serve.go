package cli

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"golang.org/x/mod/sumdb/note"

	"ferry.dev/ferry/internal/admin"
	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/blob/local"
	"ferry.dev/ferry/internal/config"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/guard"
	"ferry.dev/ferry/internal/httpd"
	"ferry.dev/ferry/internal/keys"
	"ferry.dev/ferry/internal/mail"
	"ferry.dev/ferry/internal/outbound"
	"ferry.dev/ferry/internal/sftpd"
	"ferry.dev/ferry/internal/transfer"
)

// SetupCodeTTL is how long the first-administrator setup code is valid.
const SetupCodeTTL = time.Hour

func runServe(ctx context.Context, args []string, env Env) error {
	cfg, err := config.Load(args, env.Getenv, os.ReadFile, env.Stderr)
	if err != nil {
		if err.Error() == "flag: help requested" {
			return nil
		}
		return &UsageError{Msg: err.Error()}
	}
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	logger := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
	return serve(ctx, cfg, env, logger)
}

// serve runs the server until ctx is done, then shuts down gracefully.
func serve(ctx context.Context, cfg *config.Config, env Env, logger *slog.Logger) error {
	now := time.Now
	if err := ensureDir(cfg.Data); err != nil {
		return err
	}
	keyDir := filepath.Join(cfg.Data, "keys")
	if err := ensureDir(keyDir); err != nil {
		return err
	}
	if err := ensureDir(filepath.Join(cfg.Data, "audit")); err != nil {
		return err
	}

	d, err := db.Open(ctx, cfg.DSN())
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer d.Close()
	keks, err := keys.NewFileKEK(keyDir, rand.Reader)
	if err != nil {
		return fmt.Errorf("key-encryption keys: %w", err)
	}
	signer, verifier, err := audit.LoadOrCreateKey(keyDir, "ferry-audit", rand.Reader)
	if err != nil {
		return fmt.Errorf("audit signing key: %w", err)
	}
	alog, err := audit.Open(ctx, d, signer, audit.CheckpointFile(cfg.Data), now, logger)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	defer alog.Close()
	blobs, err := local.New(filepath.Join(cfg.Data, "blobs"))
	if err != nil {
		return fmt.Errorf("blob store: %w", err)
	}
	defer blobs.Close()
	if err := blobs.CleanTemp(24 * time.Hour); err != nil {
		logger.Warn("cleaning temporary blobs", "err", err)
	}

	metrics := httpd.NewMetrics(func() float64 { return float64(alog.Appends()) })
	au := auth.New(d, alog, now, rand.Reader, logger)
	au.SetKEKs(keks)
	au.SetOutboundAllow(cfg.OutboundAllow)
	// The exfiltration guard (internal/guard): consulted by transfer before
	// every read; auth refuses frozen users; Run (below) delivers alerts and
	// verifies the audit log every hour.
	gd, err := guard.New(ctx, guard.Config{DB: d, Audit: alog, Now: now, Rand: rand.Reader, Logger: logger,
		HTTP: outbound.NewClient(cfg.OutboundAllow, 15*time.Second), VerifyAudit: verifyAudit(d, verifier, audit.CheckpointFile(cfg.Data))})
	if err != nil {
		return fmt.Errorf("guard: %w", err)
	}
	au.SetGuard(gd)
	tr := transfer.New(transfer.Config{DB: d, Blobs: blobs, KEKs: keks, Audit: alog, Now: now, Rand: rand.Reader, Logger: logger, Guard: gd,
		Metrics: transfer.Metrics{Transfer: metrics.Transfer}, UploadTTL: cfg.UploadTTL})
	ad := admin.New(d, au, tr, keks, alog, now, rand.Reader, logger)
	ad.SetAuditVerifier(verifier, audit.CheckpointFile(cfg.Data))
	// The mail outbox: queued in the database, delivered by outbox.Run
	// below (internal/mail); give it to whatever sends mail.
	outbox, err := mail.New(mail.Config{DB: d, SMTPURL: cfg.SMTPURL, From: cfg.MailFrom, PublicURL: cfg.PublicURL, Now: now, Logger: logger,
		OnResult: metrics.Mail})
	if err != nil {
		return err
	}
	tr.SetMail(outbox) // package, share and watch notifications
	tr.SetPackageMaxBytes(cfg.PackageMax)
	ad.SetMail(outbox) // email invitations (internal/admin invite.go)
	gd.SetMail(func(ctx context.Context, kind string, to []string, data map[string]string) error {
		return outbox.Notify(ctx, kind, "en", to, data)
	})
	hostKeys, err := sftpd.LoadOrCreateHostKeys(keyDir, rand.Reader, cfg.SFTPLegacy)
	if err != nil {
		return fmt.Errorf("SSH host keys: %w", err)
	}
	// One brute-force defence for every way in: SFTP logins and bearer
	// tokens on the public and admin listeners.
	// Every lock it sets is audited as "alert.lockout".
	limCfg := auth.DefaultLimiterConfig
	limCfg.OnLock = au.AlertLockout
	limiter := auth.NewLimiter(limCfg, now)
	sftpSrv, err := sftpd.New(sftpd.Config{HostKeys: hostKeys, LegacyAlgorithms: cfg.SFTPLegacy, Logger: logger,
		MaxConnsPerIP: cfg.SFTPConnsPerIP, MaxSessions: cfg.SFTPSessions, MaxAuthTries: cfg.SFTPAuthTries,
		IdleTimeout: cfg.SFTPIdle, LoginGraceTime: cfg.SFTPLoginGrace, MaxBufferedWrites: cfg.SFTPBuffered,
		// Between bursts of sessions, give the memory they freed back to
		// the system rather than holding the peak.
		OnIdle: debug.FreeOSMemory}, tr, au, limiter)
	if err != nil {
		return err
	}
	if cfg.SFTPLegacy {
		a := sftpSrv.Algorithms()
		logger.Warn("sftp: legacy SSH algorithms enabled (sftp-legacy-algorithms)", "kex", a.KeyExchanges, "ciphers", a.Ciphers, "macs", a.MACs, "pubkey", a.PublicKeyAuths)
	}

	cert, err := loadOrCreateCert(cfg, now())
	if err != nil {
		return err
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	ready := func(ctx context.Context) error { return d.Ping(ctx) }
	public := httpd.NewPublicHandler(logger, httpd.PublicConfig{MaxUpload: cfg.MaxUpload, Ready: ready, BodyIdle: cfg.UploadIdle, Limiter: limiter}, tr, au, metrics)
	adminH := httpd.NewAdminHandler(logger, httpd.AdminConfig{Ready: ready, Limiter: limiter}, ad, au, metrics)
	socketH := httpd.NewAdminSocketHandler(logger, httpd.AdminConfig{Ready: ready}, ad, au, metrics)

	publicLn, err := net.Listen("tcp", cfg.PublicAddr)
	if err != nil {
		return fmt.Errorf("public listener: %w", err)
	}
	adminLn, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		publicLn.Close()
		return fmt.Errorf("admin listener: %w", err)
	}
	sockPath := filepath.Join(cfg.Data, "admin.sock")
	sockLn, err := listenSocket(sockPath)
	if err != nil {
		publicLn.Close()
		adminLn.Close()
		return err
	}
	if cfg.PublicURL == "" {
		outbox.SetPublicURL("https://" + publicLn.Addr().String())
		if w := linkBaseWarning(publicLn.Addr().String()); w != "" {
			fmt.Fprintln(env.Stderr, w)
		}
	}
	sftpLn, err := net.Listen("tcp", cfg.SFTPAddr)
	if err != nil {
		publicLn.Close()
		adminLn.Close()
		sockLn.Close()
		return fmt.Errorf("sftp listener: %w", err)
	}

	errLog := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	servers := []struct {
		srv *http.Server
		ln  net.Listener
		tls bool
	}{
		{&http.Server{Handler: public, ReadHeaderTimeout: 20 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10, ErrorLog: errLog}, publicLn, true},
		{&http.Server{Handler: adminH, ReadHeaderTimeout: 20 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10, ErrorLog: errLog}, adminLn, true},
		{&http.Server{Handler: socketH, ReadHeaderTimeout: 20 * time.Second, ErrorLog: errLog}, sockLn, false},
	}
	errc := make(chan error, len(servers)+1)
	go func() {
		if err := sftpSrv.Serve(sftpLn); !errors.Is(err, sftpd.ErrServerClosed) {
			errc <- err
		}
	}()
	for _, s := range servers {
		s.srv.BaseContext = func(net.Listener) context.Context { return context.WithoutCancel(ctx) }
		if s.tls {
			s.srv.TLSConfig = tlsCfg.Clone()
		}
		go func() {
			var err error
			if s.tls {
				err = s.srv.ServeTLS(s.ln, "", "")
			} else {
				err = s.srv.Serve(s.ln)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	fmt.Fprintf(env.Stderr, "ferry: public listener https://%s\n", publicLn.Addr())
	fmt.Fprintf(env.Stderr, "ferry: admin listener https://%s\n", adminLn.Addr())
	fmt.Fprintf(env.Stderr, "ferry: admin socket %s\n", sockPath)
	fmt.Fprintf(env.Stderr, "ferry: sftp listener %s\n", sftpLn.Addr())
	fmt.Fprintf(env.Stderr, "ferry: data directory %s (database: %s)\n", cfg.Data, d.Dialect())

	if n, err := d.CountServerAdmins(ctx); err != nil {
		return err
	} else if n == 0 {
		code, err := au.NewSetupCode(ctx, SetupCodeTTL)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "ferry: no administrator yet. Within 1 hour, open this single-use link from this machine to create one:\nferry: setup https://%s/setup?code=%s\n", adminLn.Addr(), code)
	}

	var wg sync.WaitGroup
	sweepCtx, stopSweep := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		sweep(sweepCtx, tr, cfg.SweepInterval, logger)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		outbox.Run(sweepCtx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		gd.Run(sweepCtx)
	}()
	fmt.Fprintln(env.Stderr, "ferry: ready")

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "grace", cfg.ShutdownTimeout)
	case runErr = <-errc:
		logger.Error("listener failed", "err", runErr)
	}
	stopSweep()
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	sftpDone := make(chan struct{})
	go func() {
		defer close(sftpDone)
		sftpSrv.Shutdown(shutCtx)
	}()
	// All listeners stop accepting at once; each then drains its own
	// requests (one after another, the admin listener would keep taking
	// new connections while a public upload drained).
	var shut sync.WaitGroup
	for _, s := range servers {
		shut.Go(func() {
			if err := s.srv.Shutdown(shutCtx); err != nil {
				s.srv.Close()
			}
		})
	}
	shut.Wait()
	<-sftpDone
	wg.Wait()
	os.Remove(sockPath)
	if err := alog.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("closing audit log: %w", err)
	}
	fmt.Fprintln(env.Stderr, "ferry: stopped")
	return runErr
}

// linkBaseWarning is the start-up warning for links (in mails, share links)
// built on the bound public address when no --public-url is set: an
// all-interfaces address such as 0.0.0.0 opens nowhere. "" when addr is
// usable.
func linkBaseWarning(addr string) string {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsUnspecified() {
		return ""
	}
	return "ferry: warning: links in mails and share links will name " + addr + ", which nobody can open; set --public-url (e.g. https://files.example.com)"
}

// verifyAudit returns the guard's periodic audit verification: an error
// only when the log fails verification (ferry.Integrity), not when it could
// not be read.
func verifyAudit(d *db.DB, v note.Verifier, checkpointFile string) func(context.Context) error {
	return func(ctx context.Context) error {
		latest, err := audit.ReadCheckpoint(checkpointFile)
		if err != nil {
			return nil
		}
		if _, err := audit.Verify(ctx, d, v, nil, latest); ferry.KindOf(err) == ferry.Integrity {
			return err
		}
		return nil
	}
}

// sweep crypto-shreds expired files every interval.
func sweep(ctx context.Context, tr *transfer.Service, every time.Duration, logger *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := tr.Sweep(ctx); err != nil && ctx.Err() == nil {
			logger.Error("retention sweep", "err", err)
		} else if n > 0 {
			logger.Info("retention sweep shredded expired files", "files", n)
		}
		if _, err := tr.NotifyExpiring(ctx); err != nil && ctx.Err() == nil {
			logger.Error("package expiry notices", "err", err)
		}
		// Watch mails held back for batching are also sent from here, so
		// a restart does not lose the ones its in-process timer owed.
		if err := tr.FlushWatches(ctx); err != nil && ctx.Err() == nil {
			logger.Error("folder watch notices", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ensureDir creates dir with mode 0700, or tightens an existing one to it.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return os.Chmod(dir, 0o700)
}

// listenSocket listens on the admin socket with mode 0600, removing a stale
// socket left by a crashed server but refusing to steal a live one.
func listenSocket(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another ferry server is already running on this data directory (%s answers)", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale admin socket: %w", err)
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
