package sftpd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/transfer"
)

// Config configures a Server. Zero values take the defaults named.
type Config struct {
	HostKeys []ssh.Signer // required; see LoadOrCreateHostKeys
	// LegacyAlgorithms offers LegacyAlgorithms instead of ModernAlgorithms.
	LegacyAlgorithms bool
	// MaxConnsPerIP bounds the concurrent connections from one address
	// (an IPv6 /64 counts as one). Default 256.
	MaxConnsPerIP int
	// MaxAuthTries bounds the failed authentication attempts per connection.
	// Default 6.
	MaxAuthTries int
	// MaxSessions bounds the concurrent session channels per connection.
	// Default 10.
	MaxSessions int
	// IdleTimeout closes a connection on which nothing was sent or received
	// for this long. Default 15 minutes.
	IdleTimeout time.Duration
	// LoginGraceTime is how long a client has from connecting to
	// authenticating. Default 60 seconds.
	LoginGraceTime time.Duration
	// MaxBufferedWrites bounds the out-of-order upload data (writes that
	// arrived ahead of the bytes before them) that all sessions together
	// hold in memory; each upload holds at most 8 MiB of its own. An upload
	// whose write does not fit waits for room; the write of the next
	// expected byte never waits. Default 256 MiB.
	MaxBufferedWrites int64
	// OnIdle, when set, is called once the server has had no connection
	// for 5 seconds: the process may then return the memory the sessions
	// freed (ferry serve passes debug.FreeOSMemory; that is a decision for
	// the whole process, so it is not this package's to make).
	OnIdle func()
	Logger *slog.Logger
}

const defaultMaxBufferedWrites = 256 << 20

// Server is Ferry's SFTP server: SSH (golang.org/x/crypto/ssh) with the
// "sftp" subsystem only — no shell, no exec, no forwarding — over transfer.
type Server struct {
	cfg    Config
	algs   Algorithms
	shared *budget // MaxBufferedWrites
	tr     *transfer.Service
	au     *auth.Service
	lim    *auth.Limiter
	logger *slog.Logger

	ctx    context.Context // cancelled by Shutdown after the grace period
	cancel context.CancelFunc

	mu        sync.Mutex
	closing   bool
	listeners map[net.Listener]bool
	perIP     map[string]int
	conns     map[*conn]bool
	// Refused connections are logged as a warning at most every
	// refusedEvery, with the count since the last one.
	refusedAt    time.Time
	refusedCount int
	idleFree     *time.Timer // see release
	wg           sync.WaitGroup
}

// idleFreeAfter is how long the server must have had no connection before
// it returns freed memory to the operating system (see release).
const idleFreeAfter = 5 * time.Second

// New returns a Server. lim is the brute-force limiter shared with the other
// login paths.
func New(cfg Config, tr *transfer.Service, au *auth.Service, lim *auth.Limiter) (*Server, error) {
	if len(cfg.HostKeys) == 0 {
		return nil, errors.New("sftpd: no host keys")
	}
	if cfg.MaxConnsPerIP <= 0 {
		cfg.MaxConnsPerIP = 256
	}
	if cfg.MaxAuthTries <= 0 {
		cfg.MaxAuthTries = 6
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 10
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 15 * time.Minute
	}
	if cfg.LoginGraceTime <= 0 {
		cfg.LoginGraceTime = time.Minute
	}
	if cfg.MaxBufferedWrites <= 0 {
		cfg.MaxBufferedWrites = defaultMaxBufferedWrites
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	algs := ModernAlgorithms.Available()
	if cfg.LegacyAlgorithms {
		algs = LegacyAlgorithms.Available()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{cfg: cfg, algs: algs, shared: newBudget(cfg.MaxBufferedWrites), tr: tr, au: au, lim: lim, logger: cfg.Logger, ctx: ctx, cancel: cancel,
		listeners: map[net.Listener]bool{}, perIP: map[string]int{}, conns: map[*conn]bool{}}, nil
}

// Algorithms returns the algorithms the server offers (after the FIPS 140-3
// filter; see Algorithms.Available).
func (s *Server) Algorithms() Algorithms { return s.algs }

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("sftpd: server closed")

// Serve accepts connections on ln until Shutdown; it then returns
// ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = true
	s.mu.Unlock()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: back off and retry.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.logger.Warn("sftp accept", "err", err, "retry", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(nc)
		}()
	}
}

// Shutdown stops accepting connections, closes the idle ones at once and the
// ones with open files as their transfers end, and when ctx is done closes
// the rest (aborting their uploads). It waits for every connection to end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	if s.idleFree != nil {
		s.idleFree.Stop()
	}
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var err error
	for {
		s.mu.Lock()
		n := 0
		for c := range s.conns {
			if !c.busy() {
				c.Close()
			} else {
				n++
			}
		}
		s.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-t.C:
			continue
		case <-ctx.Done():
			err = ctx.Err()
		}
		break
	}
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// conn is one client connection.
type conn struct {
	net.Conn
	remote string
	key    string // auth.AddrKey of remote
	last   atomic.Int64

	mu       sync.Mutex
	sessions map[*session]bool
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// busy reports whether a session of the connection has files open.
func (c *conn) busy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.sessions {
		if s.h.busy() {
			return true
		}
	}
	return false
}

// admit registers a new connection unless the server is closing or its
// address has too many connections or is locked out.
func (s *Server) admit(c *conn) error {
	if ok, retry := s.lim.Allow(c.key); !ok {
		return fmt.Errorf("address locked out for another %v after failed logins", retry.Round(time.Second))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return errors.New("server shutting down")
	case s.perIP[c.key] >= s.cfg.MaxConnsPerIP:
		return fmt.Errorf("too many connections from %s", c.key)
	}
	s.perIP[c.key]++
	s.conns[c] = true
	return nil
}

// release unregisters a connection. When the last one has gone and no other
// has come for idleFreeAfter, Config.OnIdle is called (ferry serve returns
// the memory the sessions used to the operating system): transfers allocate in bursts (about 10 MB per
// session, mostly pkg/sftp's request buffers), and the Go runtime would
// otherwise keep the pages of a busy hour until its next collection (up to
// two minutes away while idle), and release them slowly after that.
func (s *Server) release(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if s.perIP[c.key]--; s.perIP[c.key] <= 0 {
		delete(s.perIP, c.key)
	}
	if len(s.conns) > 0 || s.closing || s.cfg.OnIdle == nil {
		return
	}
	if s.idleFree == nil {
		s.idleFree = time.AfterFunc(idleFreeAfter, s.freeIfIdle)
	} else {
		s.idleFree.Reset(idleFreeAfter)
	}
}

// freeIfIdle returns freed memory to the operating system if the server has
// no connection.
func (s *Server) freeIfIdle() {
	s.mu.Lock()
	idle := len(s.conns) == 0 && !s.closing
	s.mu.Unlock()
	if idle && s.cfg.OnIdle != nil {
		s.cfg.OnIdle()
	}
}

const refusedEvery = 10 * time.Second

// refused logs a refused connection: always at debug level, and as a
// warning (with how many were refused since the last warning) at most every
// refusedEvery, so an operator sees why a partner cannot connect without a
// flood of lines during an attack.
func (s *Server) refused(remote string, why error) {
	s.logger.Debug("sftp connection refused", "remote", remote, "reason", why)
	s.mu.Lock()
	s.refusedCount++
	n, warn := s.refusedCount, time.Since(s.refusedAt) >= refusedEvery
	if warn {
		s.refusedAt, s.refusedCount = time.Now(), 0
	}
	s.mu.Unlock()
	if warn {
		s.logger.Warn("sftp connections refused", "count", n, "latest", remote, "reason", why)
	}
}

// handle runs one connection: handshake and authentication, then its
// channels.
func (s *Server) handle(nc net.Conn) {
	c := &conn{Conn: nc, remote: nc.RemoteAddr().String(), sessions: map[*session]bool{}}
	c.key = auth.AddrKey(c.remote)
	c.last.Store(time.Now().UnixNano())
	if err := s.admit(c); err != nil {
		s.refused(c.remote, err)
		nc.Close()
		return
	}
	defer s.release(c)
	defer c.Close()

	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	a := &authState{s: s, ctx: ctx, c: c, offered: map[string]*ferry.Principal{}}
	c.SetDeadline(time.Now().Add(s.cfg.LoginGraceTime))
	cw := newCoalescer(c)
	defer cw.Close()
	sc, chans, reqs, err := ssh.NewServerConn(cw, s.serverConfig(a))
	if err != nil {
		a.ended()
		s.logger.Debug("sftp handshake or login failed", "remote", c.remote, "err", err)
		return
	}
	defer sc.Close()
	c.SetDeadline(time.Time{})
	p := a.principal
	if p == nil { // cannot happen: every accepting callback sets it
		s.logger.Error("sftp login without a principal", "remote", c.remote)
		return
	}
	s.logger.Debug("sftp login", "user", p.Email, "remote", c.remote, "client", string(sc.ClientVersion()))

	defer s.watchIdle(c)()
	go ssh.DiscardRequests(reqs)

	var wg sync.WaitGroup
	defer wg.Wait()
	var open atomic.Int32
	for nch := range chans {
		if nch.ChannelType() != "session" {
			nch.Reject(ssh.Prohibited, "only sftp sessions are served")
			continue
		}
		if int(open.Load()) >= s.cfg.MaxSessions {
			nch.Reject(ssh.ResourceShortage, "too many sessions on this connection")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		open.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer open.Add(-1)
			s.channel(ctx, c, ch, creqs, p)
		}()
	}
}

// channel serves one session channel: it accepts the "sftp" subsystem and
// refuses everything else (shell, exec, pty, forwarding agents…).
func (s *Server) channel(ctx context.Context, c *conn, ch ssh.Channel, reqs <-chan *ssh.Request, p *ferry.Principal) {
	defer ch.Close()
	done := make(chan struct{})
	started := false
	for {
		select {
		case req, ok := <-reqs:
			if !ok {
				return
			}
			if req.Type != "subsystem" || started || !isSFTP(req.Payload) {
				req.Reply(false, nil)
				continue
			}
			started = true
			req.Reply(true, nil)
			sess := newSession(ctx, ch, s.tr, p, s.shared, s.logger)
			c.mu.Lock()
			c.sessions[sess] = true
			c.mu.Unlock()
			go func() {
				defer close(done)
				if err := sess.serve(); err != nil {
					s.logger.Debug("sftp session ended", "user", p.Email, "remote", c.remote, "err", err)
				}
				c.mu.Lock()
				delete(c.sessions, sess)
				c.mu.Unlock()
				ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
				ch.Close()
			}()
		case <-done:
			// Drain the requests that may still come until the channel closes.
			for req := range reqs {
				req.Reply(false, nil)
			}
			return
		}
	}
}

// isSFTP reports whether a subsystem request's payload names "sftp".
func isSFTP(payload []byte) bool {
	var m struct{ Name string }
	return ssh.Unmarshal(payload, &m) == nil && m.Name == "sftp"
}

// watchIdle closes c once nothing has been sent or received for the idle
// timeout; calling the returned function stops watching.
func (s *Server) watchIdle(c *conn) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTimer(s.cfg.IdleTimeout)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			idle := time.Since(time.Unix(0, c.last.Load()))
			if idle >= s.cfg.IdleTimeout {
				s.logger.Debug("sftp idle timeout", "remote", c.remote)
				c.Close()
				return
			}
			t.Reset(s.cfg.IdleTimeout - idle)
		}
	}()
	return func() { close(done) }
}

func (s *Server) serverConfig(a *authState) *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		Config:                    ssh.Config{KeyExchanges: s.algs.KeyExchanges, Ciphers: s.algs.Ciphers, MACs: s.algs.MACs},
		PublicKeyAuthAlgorithms:   s.algs.PublicKeyAuths,
		MaxAuthTries:              s.cfg.MaxAuthTries,
		ServerVersion:             "SSH-2.0-Ferry",
		PasswordCallback:          a.password,
		PublicKeyCallback:         a.publicKey,
		VerifiedPublicKeyCallback: a.verified,
	}
	for _, k := range s.cfg.HostKeys {
		cfg.AddHostKey(k)
	}
	return cfg
}

// authState is the authentication of one connection.
type authState struct {
	s         *Server
	ctx       context.Context
	c         *conn
	offered   map[string]*ferry.Principal // fingerprint → principal, keys accepted so far
	principal *ferry.Principal            // set on success
	keyFails  int
	pwFails   int
	user      string // the user name of the latest attempt
}

var errDenied = errors.New("denied")

// attempt names a login attempt for the limiter: the account (the SSH user
// name, an email) from this connection's address.
func (a *authState) attempt() auth.Attempt {
	return auth.Attempt{Account: a.user, Remote: a.c.remote, Protocol: "sftp"}
}

// allowed consults the brute-force limiter (the same buckets as the web and
// API logins: per address, per account and address, per account from
// unfamiliar addresses) before any credential of user is checked.
//
// An attempt refused by a lock still counts against the address: a client
// that keeps guessing after its account+address lock soon locks its
// address out, at the connection, before any authentication.
func (a *authState) allowed(user string) bool {
	a.user = user
	ok, _ := a.s.lim.Check(a.attempt())
	if !ok {
		if locked, d := a.s.lim.Fail(a.c.key); locked {
			a.lockedOut(d)
		}
	}
	return ok
}

func (a *authState) lockedOut(d time.Duration) {
	a.s.logger.Warn("sftp: address locked out after repeated failed logins", "addr", a.c.key, "for", d)
	if err := a.s.au.SSHLockout(a.ctx, a.c.key, a.c.remote, d); err != nil {
		a.s.logger.Error("audit lockout", "err", err)
	}
}

// fail records a failed login with the limiter and audits an address
// lockout (every lock is also an alert.lockout through the limiter).
func (a *authState) fail() {
	for _, lk := range a.s.lim.Failure(a.attempt()) {
		if lk.Scope == auth.LockAddress {
			a.lockedOut(lk.For)
		}
	}
}

// succeeded tells the limiter the account signed in from this address.
func (a *authState) succeeded(p *ferry.Principal) {
	a.principal = p
	a.s.lim.Success(a.attempt())
}

// ended is called when the connection ends without a login: one that only
// offered unknown keys counts as one failure (a client with several keys in
// its agent offers them all, so each refused key is not a failure).
func (a *authState) ended() {
	if a.principal == nil && a.keyFails > 0 && a.pwFails == 0 {
		a.fail()
	}
}

func (a *authState) password(meta ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
	if !a.allowed(meta.User()) {
		return nil, errDenied
	}
	p, err := a.s.au.SSHPassword(a.ctx, meta.User(), string(pw), a.c.remote)
	if err != nil {
		if ferry.KindOf(err) == ferry.Unauthenticated {
			a.pwFails++
			a.fail()
		} else {
			a.s.logger.Error("sftp password login", "err", err)
		}
		return nil, errDenied
	}
	return a.secondStep(p, &ssh.Permissions{})
}

func (a *authState) publicKey(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	if !a.allowed(meta.User()) {
		return nil, errDenied
	}
	p, err := a.s.au.SSHPublicKey(a.ctx, meta.User(), key, a.c.remote)
	if err != nil {
		if ferry.KindOf(err) == ferry.Unauthenticated {
			a.keyFails++
		} else {
			a.s.logger.Error("sftp public key login", "err", err)
		}
		return nil, errDenied
	}
	fp := ssh.FingerprintSHA256(key)
	a.offered[fp] = p
	return &ssh.Permissions{Extensions: map[string]string{"fingerprint": fp}}, nil
}

func (a *authState) verified(meta ssh.ConnMetadata, key ssh.PublicKey, perms *ssh.Permissions, alg string) (*ssh.Permissions, error) {
	fp := ssh.FingerprintSHA256(key)
	p := a.offered[fp]
	if p == nil {
		return nil, errDenied
	}
	if err := a.s.au.SSHAccepted(a.ctx, p, "publickey "+key.Type()+" "+fp, "signature "+alg); err != nil {
		a.s.logger.Error("audit ssh login", "err", err)
		return nil, errDenied
	}
	return a.secondStep(p, perms)
}

// secondStep completes a login whose password or key p has passed: at
// once, or — when p's organisation requires a second factor or p has one —
// with a partial success that asks for a TOTP (or recovery) code by
// keyboard-interactive authentication. A wrong code counts as a failed
// login with the limiter; VerifyTOTP audits every attempt.
func (a *authState) secondStep(p *ferry.Principal, perms *ssh.Permissions) (*ssh.Permissions, error) {
	due, err := a.s.au.SecondFactorDue(a.ctx, p.UserID)
	if err != nil {
		a.s.logger.Error("sftp second factor", "err", err)
		return nil, errDenied
	}
	if !due {
		a.succeeded(p)
		return perms, nil
	}
	return nil, &ssh.PartialSuccessError{Next: ssh.ServerAuthCallbacks{
		KeyboardInteractiveCallback: func(meta ssh.ConnMetadata, client ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			if !a.allowed(meta.User()) {
				return nil, errDenied
			}
			answers, err := client("", "A second factor is required.", []string{"Authenticator code: "}, []bool{false})
			if err != nil || len(answers) != 1 || len(answers[0]) > 64 {
				return nil, errDenied
			}
			if err := a.s.au.VerifyTOTP(a.ctx, p.UserID, strings.TrimSpace(answers[0]), a.c.remote); err != nil {
				if ferry.KindOf(err) == ferry.Unauthenticated {
					a.pwFails++
					a.fail()
				} else {
					a.s.logger.Error("sftp second factor", "err", err)
				}
				return nil, errDenied
			}
			a.succeeded(p)
			return perms, nil
		},
	}}
}
