package audit

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// The key files, in the key directory.
const (
	KeyFile       = "audit.key" // the private signing key (note signer key), mode 0600
	PublicKeyFile = "audit.pub" // the public verifier key, mode 0644
)

// LoadOrCreateKey returns the log's checkpoint signing key and its verifier,
// reading dir/audit.key, or, when it does not exist, generating an Ed25519
// key named name with randomness from rand and writing it there (mode 0600)
// and the verifier key to dir/audit.pub (mode 0644), each atomically. An
// existing key keeps the name it was created with. The name becomes the
// log's origin in checkpoints; it may not contain spaces or "+".
func LoadOrCreateKey(dir, name string, rand io.Reader) (note.Signer, note.Verifier, error) {
	keyPath, pubPath := filepath.Join(dir, KeyFile), filepath.Join(dir, PublicKeyFile)
	skey, err := os.ReadFile(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(dir, name, rand)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("audit key: %w", err)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, nil, fmt.Errorf("audit key %s: %w", keyPath, err)
	}
	vkey, err := verifierKey(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, nil, fmt.Errorf("audit key %s: %w", keyPath, err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, fmt.Errorf("audit key %s: %w", keyPath, err)
	}
	// Rewrite the public key if it is missing or does not match (a crash
	// between writing the two files, or an edit).
	if pub, err := os.ReadFile(pubPath); err != nil || strings.TrimSpace(string(pub)) != vkey {
		if err := writeFileAtomic(pubPath, []byte(vkey+"\n"), 0o644); err != nil {
			return nil, nil, fmt.Errorf("audit public key: %w", err)
		}
	}
	return signer, verifier, nil
}

func createKey(dir, name string, rand io.Reader) (note.Signer, note.Verifier, error) {
	skey, vkey, err := note.GenerateKey(rand, name)
	if err != nil {
		return nil, nil, fmt.Errorf("generate audit key: %w", err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, nil, fmt.Errorf("generate audit key named %q: %w", name, err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, fmt.Errorf("generate audit key named %q: %w", name, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("audit key: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, KeyFile), []byte(skey+"\n"), 0o600); err != nil {
		return nil, nil, fmt.Errorf("audit key: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, PublicKeyFile), []byte(vkey+"\n"), 0o644); err != nil {
		return nil, nil, fmt.Errorf("audit public key: %w", err)
	}
	return signer, verifier, nil
}

// verifierKey derives the verifier key from a note signer key
// ("PRIVATE+KEY+name+hash+base64(alg||seed)").
func verifierKey(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("malformed signer key")
	}
	key, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(key) != 1+ed25519.SeedSize || key[0] != 1 {
		return "", errors.New("malformed signer key: want an Ed25519 key")
	}
	pub := ed25519.NewKeyFromSeed(key[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[2], pub)
}

// LoadVerifier reads the log's public verifier key from dir/audit.pub.
func LoadVerifier(dir string) (note.Verifier, error) {
	b, err := os.ReadFile(filepath.Join(dir, PublicKeyFile))
	if err != nil {
		return nil, fmt.Errorf("audit public key: %w", err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("audit public key %s: %w", filepath.Join(dir, PublicKeyFile), err)
	}
	return v, nil
}
