// Package bench holds Ferry's cross-package benchmarks.
package bench

import (
	"bytes"
	"io"
	"testing"

	"ferry.dev/ferry/internal/keys"
)

const benchSize = 64 << 20 // 64 MiB of plaintext

var (
	benchKey   = bytes.Repeat([]byte{0x5a}, keys.DataKeySize)
	benchKeyID = [keys.KeyIDSize]byte{0xfe, 0x77}
)

func benchPlaintext() []byte {
	p := make([]byte, benchSize)
	for i := range p {
		p[i] = byte(i * 7)
	}
	return p
}

func encryptTo(b *testing.B, w io.Writer, plain []byte) {
	ew, err := keys.NewWriter(w, benchKey, benchKeyID)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ew.Write(plain); err != nil {
		b.Fatal(err)
	}
	if err := ew.Close(); err != nil {
		b.Fatal(err)
	}
}

func decryptAll(b *testing.B, c []byte) {
	r, err := keys.NewReader(bytes.NewReader(c), int64(len(c)), benchKey, benchKeyID)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, r)
	if err != nil || n != benchSize {
		b.Fatalf("decrypted %d bytes: %v", n, err)
	}
}

// BenchmarkSegmentEncrypt measures encrypting 64 MiB into io.Discard.
func BenchmarkSegmentEncrypt(b *testing.B) {
	plain := benchPlaintext()
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		encryptTo(b, io.Discard, plain)
	}
}

// BenchmarkSegmentDecrypt measures decrypting 64 MiB from a bytes.Reader.
func BenchmarkSegmentDecrypt(b *testing.B) {
	var c bytes.Buffer
	encryptTo(b, &c, benchPlaintext())
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		decryptAll(b, c.Bytes())
	}
}

// BenchmarkSegmentEncryptDecrypt measures encrypting 64 MiB into memory and
// decrypting it again; bytes per second count the plaintext once.
func BenchmarkSegmentEncryptDecrypt(b *testing.B) {
	plain := benchPlaintext()
	var c bytes.Buffer
	c.Grow(int(keys.CiphertextSize(benchSize)))
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		c.Reset()
		encryptTo(b, &c, plain)
		decryptAll(b, c.Bytes())
	}
}
