package auth

import (
	"crypto/rand"
	"strings"
	"testing"
)

func TestPasswordHash(t *testing.T) {
	p := PasswordParams{Time: 1, Memory: 8 * 1024, Threads: 1}
	h, err := HashPassword("correct horse battery", p, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=8192,t=1,p=1$") {
		t.Fatalf("hash %q", h)
	}
	if !VerifyPassword(h, "correct horse battery") {
		t.Fatal("right password rejected")
	}
	for _, wrong := range []string{"", "correct horse batter", "correct horse battery "} {
		if VerifyPassword(h, wrong) {
			t.Fatalf("wrong password %q accepted", wrong)
		}
	}
	h2, _ := HashPassword("correct horse battery", p, rand.Reader)
	if h2 == h {
		t.Fatal("same salt twice")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=8,t=1,p=1$AA$AA", "$argon2id$v=19$m=99999999,t=1,p=1$AA$AA", strings.Replace(h, "$argon2id$", "$bcrypt$", 1)} {
		if VerifyPassword(bad, "correct horse battery") {
			t.Fatalf("malformed hash %q accepted", bad)
		}
	}
	if _, err := HashPassword("short", p, rand.Reader); err == nil {
		t.Fatal("short password accepted")
	}
}

func TestParseTokenID(t *testing.T) {
	for tok, want := range map[string]string{
		"ferry_0123456789abcdef_secret": "0123456789abcdef",
		"ferry_0123456789abcdeg_secret": "",
		"ferry_0123456789abcdef":        "",
		"bearer_0123456789abcdef_x":     "",
		"ferry__x":                      "",
	} {
		if got := ParseTokenID(tok); got != want {
			t.Errorf("ParseTokenID(%q) = %q, want %q", tok, got, want)
		}
	}
}
