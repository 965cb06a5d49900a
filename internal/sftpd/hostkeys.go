package sftpd

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// HostKeyFiles are the names, in the key directory, of the server's SSH host
// keys (OpenSSH private key format, mode 0600); each has a ".pub" beside it
// in authorized_keys format (mode 0644).
var HostKeyFiles = []string{"ssh_host_ed25519_key", "ssh_host_rsa_key"}

// RSAHostKeyBits is the size of the generated RSA host key.
const RSAHostKeyBits = 3072

// LoadOrCreateHostKeys returns the server's host keys from dir, generating
// those missing (an ed25519 key, and an RSA key for old clients) on first
// start. Each file is written atomically. The RSA signer offers only
// rsa-sha2-512 and rsa-sha2-256 (no SHA-1) unless legacy is set.
func LoadOrCreateHostKeys(dir string, rand io.Reader, legacy bool) ([]ssh.Signer, error) {
	var signers []ssh.Signer
	for _, name := range HostKeyFiles {
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			b, err = newHostKey(name, rand)
			if err != nil {
				return nil, fmt.Errorf("generate SSH host key %s: %w", name, err)
			}
			if err := writeAtomic(path, b, 0o600); err != nil {
				return nil, err
			}
		} else if err != nil {
			return nil, fmt.Errorf("read SSH host key: %w", err)
		}
		signer, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("SSH host key %s: %w", path, err)
		}
		pub := ssh.MarshalAuthorizedKey(signer.PublicKey())
		pub = append(pub[:len(pub)-1], " ferry\n"...)
		if old, err := os.ReadFile(path + ".pub"); err != nil || string(old) != string(pub) {
			if err := writeAtomic(path+".pub", pub, 0o644); err != nil {
				return nil, err
			}
		}
		if signer.PublicKey().Type() == ssh.KeyAlgoRSA {
			algs := []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
			if legacy {
				algs = append(algs, ssh.KeyAlgoRSA)
			}
			as, ok := signer.(ssh.AlgorithmSigner)
			if !ok {
				return nil, fmt.Errorf("SSH host key %s: RSA signer without algorithm selection", path)
			}
			if signer, err = ssh.NewSignerWithAlgorithms(as, algs); err != nil {
				return nil, fmt.Errorf("SSH host key %s: %w", path, err)
			}
		}
		signers = append(signers, signer)
	}
	return signers, nil
}

func newHostKey(name string, rand io.Reader) ([]byte, error) {
	var key crypto.PrivateKey
	var err error
	switch {
	case strings.Contains(name, "ed25519"):
		_, key, err = ed25519.GenerateKey(rand)
	case strings.Contains(name, "rsa"):
		key, err = rsa.GenerateKey(rand, RSAHostKeyBits)
	default:
		err = fmt.Errorf("unknown host key type %q", name)
	}
	if err != nil {
		return nil, err
	}
	blk, err := ssh.MarshalPrivateKey(key, "ferry")
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(blk), nil
}

// HostKey describes one host key as `ssh-keygen -l` prints it.
type HostKey struct {
	Bits        int
	Type        string // "ED25519", "RSA"
	Fingerprint string // SHA256:…
	File        string
}

// String formats k like `ssh-keygen -l`: "256 SHA256:… ferry (ED25519)".
func (k HostKey) String() string {
	return fmt.Sprintf("%d %s ferry (%s)", k.Bits, k.Fingerprint, k.Type)
}

// ReadHostKeys reads the public host keys in dir (written by
// LoadOrCreateHostKeys) without touching the private keys.
func ReadHostKeys(dir string) ([]HostKey, error) {
	var out []HostKey
	for _, name := range HostKeyFiles {
		path := filepath.Join(dir, name+".pub")
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, err
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		k := HostKey{Fingerprint: ssh.FingerprintSHA256(pub), File: path}
		switch pub.Type() {
		case ssh.KeyAlgoED25519:
			k.Bits, k.Type = 256, "ED25519"
		case ssh.KeyAlgoRSA:
			k.Type = "RSA"
			if cpk, ok := pub.(ssh.CryptoPublicKey); ok {
				if rk, ok := cpk.CryptoPublicKey().(*rsa.PublicKey); ok {
					k.Bits = rk.N.BitLen()
				}
			}
		default:
			k.Type = strings.ToUpper(pub.Type())
		}
		out = append(out, k)
	}
	return out, nil
}

// writeAtomic writes a file through a temporary file in the same directory:
// write, fsync, close, rename, then fsync the directory.
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
