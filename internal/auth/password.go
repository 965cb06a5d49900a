package auth

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/argon2"

	"ferry.dev/ferry/internal/ferry"
)

// PasswordParams are argon2id parameters. They are recorded in every hash, so
// they can be raised later and old hashes upgraded at login.
type PasswordParams struct {
	Time    uint32
	Memory  uint32 // KiB
	Threads uint8
}

// DefaultPasswordParams follow the argon2id recommendation of RFC 9106 for
// memory-constrained servers (64 MiB, 3 passes).
var DefaultPasswordParams = PasswordParams{Time: 3, Memory: 64 * 1024, Threads: 2}

// MinPasswordLen is the shortest password accepted.
const MinPasswordLen = 12

// HashPassword returns an argon2id hash of pw in PHC string form
// ($argon2id$v=19$m=…,t=…,p=…$salt$hash).
func HashPassword(pw string, p PasswordParams, rand io.Reader) (string, error) {
	if len(pw) < MinPasswordLen {
		return "", ferry.Errorf("auth.HashPassword", ferry.Invalid, "password must be at least %d characters", MinPasswordLen)
	}
	if len(pw) > 1024 {
		return "", ferry.Errorf("auth.HashPassword", ferry.Invalid, "password is too long")
	}
	salt := make([]byte, 16)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return "", ferry.E("auth.HashPassword", ferry.Internal, err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, 32)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// hashParams returns the parameters recorded in a PHC argon2id hash.
func hashParams(hash string) (PasswordParams, bool) {
	parts := strings.Split(hash, "$")
	var p PasswordParams
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return p, false
	}
	return p, true
}

// VerifyPassword reports whether pw matches the PHC hash, in constant time
// with respect to the hash.
func VerifyPassword(hash, pw string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return false
	}
	var p PasswordParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return false
	}
	if p.Memory > 1<<21 || p.Time > 64 || p.Threads == 0 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	n := len(want)
	if n > 64 { // HashPassword writes 32-byte keys; a longer one is not its hash and would only cost time
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(n))
	return subtle.ConstantTimeCompare(got, want) == 1
}
