package sftpd_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/sftpd"
)

// dialFrom opens an SSH connection from a given loopback source address.
func dialFrom(src, addr, user string, methods ...ssh.AuthMethod) (*ssh.Client, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ClientConfig{User: user, Auth: methods, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}
	c, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// TestFailedLoginsLockOutOneAddress: 1,000 failed logins from 127.0.0.2 lock
// that address out after the first few, without hashing the rest, while a
// user on 127.0.0.1 logs in as fast as ever, and a correct password from the
// locked address is refused too.
func TestFailedLoginsLockOutOneAddress(t *testing.T) {
	e := newEnv(t)
	e.user(t, "alice@acme.test", "correct horse battery", ferry.RoleAdmin)
	e.user(t, "mallory@acme.test", "mallory's password", ferry.RoleUser)
	_, addr := e.startServer(t, sftpd.Config{}, nil)

	login := func(src, user, pw string) (time.Duration, error) {
		start := time.Now()
		c, err := dialFrom(src, addr, user, ssh.Password(pw))
		if err == nil {
			c.Close()
		}
		return time.Since(start), err
	}
	before, err := login("127.0.0.1", "alice@acme.test", "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}

	attempts, refusedConns := 0, 0
	for attempts < 1000 {
		tries := 0
		cb := ssh.RetryableAuthMethod(ssh.PasswordCallback(func() (string, error) {
			tries++
			return "guess " + time.Now().String(), nil
		}), 6)
		if _, err := dialFrom("127.0.0.2", addr, "alice@acme.test", cb); err == nil {
			t.Fatal("a guessed password logged in")
		}
		if tries == 0 {
			refusedConns++
			tries = 1 // the connection itself was the attempt
		}
		attempts += tries
		if attempts%200 < 6 {
			// Meanwhile, alice logs in from elsewhere as usual.
			if d, err := login("127.0.0.1", "alice@acme.test", "correct horse battery"); err != nil || d > before*5+time.Second {
				t.Fatalf("login from another address during the attack: %v after %v (before: %v)", err, d, before)
			}
		}
	}
	if refusedConns < 900 {
		t.Fatalf("only %d of ~1000 attempts were refused before checking a password", refusedConns)
	}
	// The right password from the locked address is refused too.
	if _, err := login("127.0.0.2", "mallory@acme.test", "mallory's password"); err == nil {
		t.Fatal("locked-out address logged in")
	}
	if _, err := login("127.0.0.1", "mallory@acme.test", "mallory's password"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	ctx := context.Background()
	denied, lockouts := 0, 0
	audit.Query(ctx, e.d, audit.Filter{Action: "auth.*"}, func(ev *ferry.Event) error {
		switch {
		case ev.Action == "auth.ssh" && ev.Outcome == ferry.OutcomeDenied:
			denied++
		case ev.Action == "auth.lockout":
			lockouts++
			if !strings.Contains(ev.Detail, "127.0.0.2") {
				t.Errorf("lockout event %+v", ev)
			}
		}
		return nil
	})
	// The account+address lock stops the password checks first; the
	// attempts it refuses still count against the address, which is then
	// locked out at the connection.
	if want := auth.DefaultLimiterConfig.AccountAddr.Burst; denied != want || lockouts != 1 {
		t.Fatalf("audited %d denials and %d lockouts; want %d and 1", denied, lockouts, want)
	}
}

// TestOnlySFTP: no shell, no exec, no forwarding; the sftp subsystem only.
func TestOnlySFTP(t *testing.T) {
	e := newEnv(t)
	e.user(t, "alice@acme.test", "correct horse battery", ferry.RoleAdmin)
	_, addr := e.startServer(t, sftpd.Config{}, nil)
	c, err := dialFrom("", addr, "alice@acme.test", ssh.Password("correct horse battery"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, run := range []func(*ssh.Session) error{
		func(s *ssh.Session) error { return s.Run("id") },
		func(s *ssh.Session) error { return s.Shell() },
		func(s *ssh.Session) error { return s.RequestSubsystem("netconf") },
		func(s *ssh.Session) error { return s.RequestPty("xterm", 80, 24, nil) },
	} {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		if err := run(s); err == nil {
			t.Error("a non-sftp request was accepted")
		}
		s.Close()
	}
	if _, err := c.Dial("tcp", addr); err == nil {
		t.Error("port forwarding was accepted")
	}
	if _, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		t.Error("remote forwarding was accepted")
	}
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RequestSubsystem("sftp"); err != nil {
		t.Fatalf("sftp subsystem refused: %v", err)
	}
	s.Close()
}

// TestConnectionLimits: per-address connection cap, login grace time and
// idle timeout.
func TestConnectionLimits(t *testing.T) {
	e := newEnv(t)
	e.user(t, "alice@acme.test", "correct horse battery", ferry.RoleAdmin)
	_, addr := e.startServer(t, sftpd.Config{MaxConnsPerIP: 2, LoginGraceTime: 500 * time.Millisecond, IdleTimeout: 700 * time.Millisecond}, nil)
	pw := ssh.Password("correct horse battery")
	c1, err := dialFrom("127.0.0.1", addr, "alice@acme.test", pw)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c2, err := dialFrom("127.0.0.1", addr, "alice@acme.test", pw)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if c3, err := dialFrom("127.0.0.1", addr, "alice@acme.test", pw); err == nil {
		c3.Close()
		t.Fatal("a third connection from one address was accepted")
	}
	if c4, err := dialFrom("127.0.0.3", addr, "alice@acme.test", pw); err != nil {
		t.Fatalf("another address: %v", err)
	} else {
		c4.Close()
	}

	// A connection that never logs in is closed after the grace time.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 256)
	start := time.Now()
	for {
		if _, err := nc.Read(buf); err != nil {
			break
		}
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("silent connection kept for %v", el)
	}

	// An idle logged-in connection is closed after the idle timeout.
	done := make(chan error, 1)
	go func() { done <- c1.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("idle connection not closed")
	}
}
