package sftpd

import (
	"crypto/fips140"
	"slices"

	"golang.org/x/crypto/ssh"
)

// Algorithms is the SSH algorithm set the server offers.
type Algorithms struct {
	KeyExchanges   []string
	Ciphers        []string
	MACs           []string // used only with the CTR ciphers: AEAD ciphers carry their own
	PublicKeyAuths []string // client key signature algorithms
}

// ModernAlgorithms is the default: hybrid post-quantum ML-KEM-768 + X25519,
// X25519 and NIST ECDH key exchange; AEAD ciphers only (no CBC, no CTR);
// SHA-2 signatures only (host keys: ed25519, rsa-sha2-512/256; no ssh-rsa).
//
// In FIPS 140-3 mode, which `ferry serve` runs in (DESIGN invariant 10),
// golang.org/x/crypto/ssh silently drops what the Go Cryptographic Module
// does not approve: curve25519-sha256 and chacha20-poly1305. Clients then
// get mlkem768x25519-sha256 (OpenSSH ≥ 9.9) or ecdh-sha2-nistp256, and
// AES-GCM. Available returns what is really offered.
var ModernAlgorithms = Algorithms{
	KeyExchanges: []string{ssh.KeyExchangeMLKEM768X25519, ssh.KeyExchangeCurve25519,
		ssh.KeyExchangeECDHP256, ssh.KeyExchangeECDHP384, ssh.KeyExchangeECDHP521},
	Ciphers: []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM, ssh.CipherChaCha20Poly1305},
	MACs:    []string{ssh.HMACSHA256ETM, ssh.HMACSHA512ETM},
	PublicKeyAuths: []string{ssh.KeyAlgoED25519, ssh.KeyAlgoSKED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoSKECDSA256,
		ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256},
}

// LegacyAlgorithms widens ModernAlgorithms for partners whose SSH stacks
// predate it (sftp-legacy-algorithms = true): finite-field Diffie-Hellman
// (including group14 with SHA-1), AES-CTR with HMAC-SHA2 and HMAC-SHA1, and
// ssh-rsa (SHA-1) signatures for client keys and the RSA host key. CBC
// ciphers, arcfour and 3DES stay off. In FIPS 140-3 mode only AES-CTR and
// HMAC-SHA2 of these are available (see Available).
var LegacyAlgorithms = Algorithms{
	KeyExchanges: concat(ModernAlgorithms.KeyExchanges,
		ssh.KeyExchangeDH16SHA512, ssh.KeyExchangeDH14SHA256, ssh.KeyExchangeDHGEXSHA256, ssh.InsecureKeyExchangeDH14SHA1),
	Ciphers:        concat(ModernAlgorithms.Ciphers, ssh.CipherAES128CTR, ssh.CipherAES192CTR, ssh.CipherAES256CTR),
	MACs:           concat(ModernAlgorithms.MACs, ssh.HMACSHA256, ssh.HMACSHA512, ssh.HMACSHA1),
	PublicKeyAuths: concat(ModernAlgorithms.PublicKeyAuths, ssh.KeyAlgoRSA),
}

// notFIPS are the algorithms above that golang.org/x/crypto/ssh does not
// negotiate in FIPS 140-3 mode.
var notFIPS = []string{
	ssh.KeyExchangeCurve25519, ssh.KeyExchangeDH16SHA512, ssh.KeyExchangeDH14SHA256, ssh.KeyExchangeDHGEXSHA256,
	ssh.InsecureKeyExchangeDH14SHA1, ssh.CipherChaCha20Poly1305, ssh.HMACSHA1, ssh.KeyAlgoRSA,
}

// Available returns a without what the SSH library will not negotiate in the
// current FIPS 140-3 mode.
func (a Algorithms) Available() Algorithms {
	if !fips140.Enabled() {
		return a
	}
	drop := func(l []string) []string {
		return slices.DeleteFunc(slices.Clone(l), func(s string) bool { return slices.Contains(notFIPS, s) })
	}
	return Algorithms{KeyExchanges: drop(a.KeyExchanges), Ciphers: drop(a.Ciphers), MACs: drop(a.MACs), PublicKeyAuths: drop(a.PublicKeyAuths)}
}

func concat(a []string, more ...string) []string {
	return append(slices.Clone(a), more...)
}
