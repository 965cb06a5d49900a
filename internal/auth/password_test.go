package auth

import (
	"encoding/base64"
	"fmt"
	"testing"

	"golang.org/x/crypto/argon2"
)

// TestVerifyPasswordKeyLength checks that VerifyPassword derives a key only
// as long as a stored hash's key when that is at most 64 bytes (HashPassword
// writes 32), refusing longer ones instead of spending time and memory on
// them, or truncating their length to uint32.
func TestVerifyPasswordKeyLength(t *testing.T) {
	const pw = "correct horse battery"
	salt := []byte("0123456789abcdef")
	b64 := base64.RawStdEncoding
	for _, tc := range []struct {
		n    uint32
		want bool
	}{{16, true}, {32, true}, {64, true}, {65, false}, {1 << 16, false}} {
		key := argon2.IDKey([]byte(pw), salt, 1, 8*1024, 1, tc.n)
		h := fmt.Sprintf("$argon2id$v=%d$m=8192,t=1,p=1$%s$%s", argon2.Version, b64.EncodeToString(salt), b64.EncodeToString(key))
		if got := VerifyPassword(h, pw); got != tc.want {
			t.Errorf("VerifyPassword with a %d-byte key = %v, want %v", tc.n, got, tc.want)
		}
	}
}
