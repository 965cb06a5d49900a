package keys

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// TestPartKeyVector pins the derivation to a value computed independently
// (Python's hmac module, RFC 5869 by hand); docs/FORMAT.md quotes it.
func TestPartKeyVector(t *testing.T) {
	dek := make([]byte, DataKeySize)
	for i := range dek {
		dek[i] = byte(i)
	}
	var id [KeyIDSize]byte
	for i := range id {
		id[i] = byte(0x40 + i)
	}
	k, err := PartKey(dek, id)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(k), "4af00ed985254e6ab108a40838765d86e1df37b68f1718f20a5639ac4491d845"; got != want {
		t.Fatalf("PartKey = %s, want %s", got, want)
	}
	id[15] ^= 1
	k2, _ := PartKey(dek, id)
	if bytes.Equal(k, k2) {
		t.Fatal("different part ids gave the same key")
	}
	if _, err := PartKey(dek[:31], id); err == nil {
		t.Fatal("short data key accepted")
	}
}
