package keys

import (
	"bytes"
	"testing"

	"ferry.dev/ferry/internal/ferry"
)

func TestSealState(t *testing.T) {
	dek := bytes.Repeat([]byte{7}, DataKeySize)
	state := []byte("sha\x03 midstate holding SECRET-TAIL-BYTES in clear")
	sealed, err := SealState(dek, []byte("upload-1"), state)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("SECRET-TAIL")) {
		t.Fatal("sealed state holds the plaintext")
	}
	again, _ := SealState(dek, []byte("upload-1"), state)
	if bytes.Equal(sealed, again) {
		t.Fatal("two seals of one state are equal: the nonce is not fresh")
	}
	got, err := OpenState(dek, []byte("upload-1"), sealed)
	if err != nil || !bytes.Equal(got, state) {
		t.Fatalf("OpenState = %q, %v", got, err)
	}
	other := bytes.Repeat([]byte{8}, DataKeySize)
	tampered := append([]byte(nil), sealed...)
	tampered[len(tampered)-1] ^= 1
	for name, c := range map[string]struct {
		dek, aad, sealed []byte
	}{
		"other key":    {other, []byte("upload-1"), sealed},
		"other upload": {dek, []byte("upload-2"), sealed},
		"altered":      {dek, []byte("upload-1"), tampered},
		"plain state":  {dek, []byte("upload-1"), state},
		"empty":        {dek, []byte("upload-1"), nil},
	} {
		if _, err := OpenState(c.dek, c.aad, c.sealed); ferry.KindOf(err) != ferry.Integrity {
			t.Errorf("%s: err = %v, want an Integrity error", name, err)
		}
	}
}
