package bench

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"ferry.dev/ferry/internal/keys"
)

// BenchmarkUploadCrypto measures, on one core, the cryptography every byte
// of an SFTP upload goes through in Ferry: SSH's AES-128-GCM decryption
// (32 KiB packets, what OpenSSH's client sends), the SHA-256 of the plaintext
// that Ferry records for every file, and the AES-256-GCM encryption at rest
// (keys.SegmentSize segments). OpenSSH's sftp-server does only the first.
// Run in FIPS mode, as the server does:
//
//	GODEBUG=fips140=on go test -run '^$' -bench UploadCrypto -count 5 ./bench/
//
// s/GiB = 1.074e9 / (MB/s × 1e6); docs/BENCHMARKS.md uses it to show the
// floor under Ferry's upload CPU per GiB.
func BenchmarkUploadCrypto(b *testing.B) {
	key := make([]byte, 32)
	rand.Read(key)
	gcm := func(n int) cipher.AEAD {
		blk, err := aes.NewCipher(key[:n])
		if err != nil {
			b.Fatal(err)
		}
		a, err := cipher.NewGCMWithRandomNonce(blk)
		if err != nil {
			b.Fatal(err)
		}
		return a
	}
	b.Run("op=ssh-aes128gcm-open/size=32KiB", func(b *testing.B) {
		a := gcm(16)
		pt := make([]byte, 32<<10)
		ct := a.Seal(nil, nil, pt, nil)
		dst := make([]byte, 0, len(pt))
		b.SetBytes(int64(len(pt)))
		for b.Loop() {
			if _, err := a.Open(dst[:0], nil, ct, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("op=sha256/size=32KiB", func(b *testing.B) {
		h := sha256.New()
		p := make([]byte, 32<<10)
		b.SetBytes(int64(len(p)))
		for b.Loop() {
			h.Write(p)
		}
	})
	b.Run("op=rest-aes256gcm-seal/size=segment", func(b *testing.B) {
		a := gcm(32)
		p := make([]byte, keys.SegmentSize)
		dst := make([]byte, 0, len(p)+a.Overhead()+a.NonceSize())
		b.SetBytes(int64(len(p)))
		for b.Loop() {
			dst = a.Seal(dst[:0], nil, p, nil)
		}
	})
}
