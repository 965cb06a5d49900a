package sftpd_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/crypto/ssh"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/keys"
	"ferry.dev/ferry/internal/sftpd"
)

// withKey registers a new ed25519 key for the user and returns its signer.
func withKey(t *testing.T, e *env, u *ferry.User) ssh.Signer {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sp, _ := ssh.NewPublicKey(pub)
	k := &ferry.SSHKey{ID: ferry.NewID(nil), UserID: u.ID, Fingerprint: ssh.FingerprintSHA256(sp),
		PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))), Created: time.Now()}
	if err := e.d.AddSSHKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

func (e *env) setPolicy(t *testing.T, change func(*ferry.Policy)) {
	t.Helper()
	ctx := context.Background()
	pol, err := e.d.Policy(ctx, e.org.ID)
	if err != nil {
		t.Fatal(err)
	}
	change(pol)
	if err := e.d.SetPolicy(ctx, pol); err != nil {
		t.Fatal(err)
	}
}

func (e *env) lastDetail(t *testing.T, action string) string {
	t.Helper()
	detail := ""
	audit.Query(context.Background(), e.d, audit.Filter{Action: action}, func(ev *ferry.Event) error {
		detail = ev.Detail
		return nil
	})
	return detail
}

// TestSFTPKeysOnly: an organisation that allows public keys only refuses
// SFTP passwords (audited) and accepts keys.
func TestSFTPKeysOnly(t *testing.T) {
	e := newEnv(t)
	u := e.user(t, "alice@acme.test", "correct horse battery", ferry.RoleAdmin)
	signer := withKey(t, e, u)
	_, addr := e.startServer(t, sftpd.Config{}, nil)
	e.setPolicy(t, func(p *ferry.Policy) { p.SFTPKeysOnly = true })
	if c, err := dialFrom("", addr, "alice@acme.test", ssh.Password("correct horse battery")); err == nil {
		c.Close()
		t.Fatal("password login accepted under keys-only")
	}
	if d := e.lastDetail(t, "auth.ssh"); !strings.Contains(d, "public keys only") {
		t.Fatalf("audit detail %q", d)
	}
	c, err := dialFrom("", addr, "alice@acme.test", ssh.PublicKeys(signer))
	if err != nil {
		t.Fatalf("key login under keys-only: %v", err)
	}
	c.Close()
}

// TestSFTPSecondFactor: when the organisation requires MFA, a password or
// key login needs a TOTP code by keyboard-interactive authentication too.
func TestSFTPSecondFactor(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u := e.user(t, "alice@acme.test", "correct horse battery", ferry.RoleAdmin)
	signer := withKey(t, e, u)
	kek, err := keys.NewFileKEK(filepath.Join(e.dir, "keys"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kek.Close() })
	e.au.SetKEKs(kek)
	_, addr := e.startServer(t, sftpd.Config{}, nil)
	e.setPolicy(t, func(p *ferry.Policy) { p.MFARequired = true })

	answer := func(code string, asked *int) ssh.AuthMethod {
		return ssh.KeyboardInteractive(func(name, instruction string, questions []string, echos []bool) ([]string, error) {
			*asked++
			if len(questions) != 1 || !strings.Contains(questions[0], "code") {
				t.Errorf("questions %q", questions)
			}
			return []string{code}, nil
		})
	}
	// No authenticator enrolled: the code cannot be right.
	var asked int
	if c, err := dialFrom("", addr, "alice@acme.test", ssh.Password("correct horse battery"), answer("123456", &asked)); err == nil {
		c.Close()
		t.Fatal("logged in without an enrolled second factor")
	}
	if asked == 0 {
		t.Fatal("the code was never asked for")
	}
	// The password alone is not a login.
	if c, err := dialFrom("", addr, "alice@acme.test", ssh.Password("correct horse battery")); err == nil {
		c.Close()
		t.Fatal("password alone logged in under mfa-required")
	}
	p := &ferry.Principal{UserID: u.ID, Email: u.Email, OrgID: u.OrgID, Role: u.Role, Remote: "127.0.0.1", Protocol: "https"}
	en, err := e.au.BeginTOTP(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	gen := func(at time.Time) string {
		c, err := totp.GenerateCodeCustom(en.Secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if _, err := e.au.ConfirmTOTP(ctx, p, gen(time.Now().Add(-30*time.Second))); err != nil {
		t.Fatal(err)
	}
	// A wrong code: refused.
	if c, err := dialFrom("", addr, "alice@acme.test", ssh.Password("correct horse battery"), answer("000000", &asked)); err == nil {
		c.Close()
		t.Fatal("wrong code accepted")
	}
	// Password then the right code: in, and SFTP works.
	c, err := dialFrom("", addr, "alice@acme.test", ssh.Password("correct horse battery"), answer(gen(time.Now()), &asked))
	if err != nil {
		t.Fatalf("password + code: %v", err)
	}
	s, err := c.NewSession()
	if err != nil || s.RequestSubsystem("sftp") != nil {
		t.Fatalf("sftp after MFA: %v", err)
	}
	c.Close()
	// The same code again (a replay): refused. A key then the next code: in.
	if c, err := dialFrom("", addr, "alice@acme.test", ssh.PublicKeys(signer), answer(gen(time.Now()), &asked)); err == nil {
		c.Close()
		t.Fatal("replayed code accepted")
	}
	c, err = dialFrom("", addr, "alice@acme.test", ssh.PublicKeys(signer), answer(gen(time.Now().Add(30*time.Second)), &asked))
	if err != nil {
		t.Fatalf("key + code: %v", err)
	}
	c.Close()
	if d := e.lastDetail(t, "auth.mfa"); d != "totp" {
		t.Fatalf("auth.mfa detail %q", d)
	}
}
