package keys

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json from the implementation")

const vectorsFile = "testdata/vectors.json"

// vectors is the layout of testdata/vectors.json; docs/FORMAT.md repeats it.
type vectors struct {
	Comment string          `json:"comment"`
	Stream  streamVectors   `json:"stream"`
	Wrap    wrapVectorEntry `json:"wrap"`
}

type streamVectors struct {
	Key     string         `json:"key"`    // hex
	KeyID   string         `json:"key_id"` // hex
	Pattern string         `json:"pattern"`
	Vectors []streamVector `json:"vectors"`
}

type streamVector struct {
	Name string `json:"name"`
	// The plaintext is PlaintextHex if PatternLen is 0, else PatternLen
	// bytes of the pattern.
	PlaintextHex     string `json:"plaintext_hex"`
	PatternLen       int    `json:"pattern_len,omitempty"`
	CiphertextLen    int64  `json:"ciphertext_len"`
	CiphertextHex    string `json:"ciphertext_hex,omitempty"`
	CiphertextSHA256 string `json:"ciphertext_sha256,omitempty"`
}

type wrapVectorEntry struct {
	KEK     string `json:"kek"` // hex, contents of the key file after its 5-byte header
	OrgID   string `json:"org_id"`
	KEKID   string `json:"kek_id"`
	AAD     string `json:"aad"`     // hex
	DEK     string `json:"dek"`     // hex
	Wrapped string `json:"wrapped"` // hex; the nonce is random, so any valid wrapping will do
}

// pattern returns n bytes where byte i is i mod 251.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func seq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func (v streamVector) plaintext(t *testing.T) []byte {
	if v.PatternLen > 0 {
		return pattern(v.PatternLen)
	}
	b, err := hex.DecodeString(v.PlaintextHex)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeKEKFile stores kek as version 1 of org's key in dir.
func writeKEKFile(t *testing.T, dir, org string, kek []byte) {
	b := append([]byte(kekMagic+"\x01"), kek...)
	if err := os.WriteFile(filepath.Join(dir, org+".1.kek"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVectors(t *testing.T) {
	if *update {
		writeVectors(t)
	}
	data, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var vs vectors
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&vs); err != nil {
		t.Fatal(err)
	}
	key := unhex(t, vs.Stream.Key)
	keyID := [KeyIDSize]byte(unhex(t, vs.Stream.KeyID))
	if len(vs.Stream.Vectors) < 3 {
		t.Fatalf("only %d stream vectors", len(vs.Stream.Vectors))
	}
	for _, v := range vs.Stream.Vectors {
		plain := v.plaintext(t)
		c := encrypt(t, plain, key, keyID)
		if int64(len(c)) != v.CiphertextLen {
			t.Errorf("%s: ciphertext is %d bytes, want %d", v.Name, len(c), v.CiphertextLen)
		}
		if v.CiphertextHex != "" && hex.EncodeToString(c) != v.CiphertextHex {
			t.Errorf("%s: ciphertext\n%x\nwant\n%s", v.Name, c, v.CiphertextHex)
		}
		sum := sha256.Sum256(c)
		if v.CiphertextSHA256 != "" && hex.EncodeToString(sum[:]) != v.CiphertextSHA256 {
			t.Errorf("%s: ciphertext SHA-256 %x, want %s", v.Name, sum, v.CiphertextSHA256)
		}
		if v.CiphertextHex == "" && v.CiphertextSHA256 == "" {
			t.Errorf("%s: no expected ciphertext", v.Name)
		}
	}

	w := vs.Wrap
	dir := t.TempDir()
	writeKEKFile(t, dir, w.OrgID, unhex(t, w.KEK))
	k := newFileKEK(t, dir)
	got, err := k.Unwrap(context.Background(), w.OrgID, w.KEKID, unhex(t, w.Wrapped), unhex(t, w.AAD))
	if err != nil || !bytes.Equal(got, unhex(t, w.DEK)) {
		t.Errorf("wrap vector: Unwrap = %x, %v; want %s", got, err, w.DEK)
	}
}

func writeVectors(t *testing.T) {
	key, keyID := seq(0x00, 32), [KeyIDSize]byte(seq(0xa0, 16))
	vs := vectors{
		Comment: "Test vectors for the Ferry encrypted stream and wrapped data keys; see docs/FORMAT.md. Regenerate with go test ./internal/keys -run TestVectors -update.",
		Stream: streamVectors{
			Key:     hex.EncodeToString(key),
			KeyID:   hex.EncodeToString(keyID[:]),
			Pattern: "byte i of the plaintext is i mod 251",
		},
	}
	for _, v := range []streamVector{
		{Name: "empty"},
		{Name: "hello", PlaintextHex: hex.EncodeToString([]byte("hello"))},
		{Name: "one segment and 5 bytes", PatternLen: SegmentSize + 5},
	} {
		c := encrypt(t, v.plaintext(t), key, keyID)
		v.CiphertextLen = int64(len(c))
		if len(c) < 1024 {
			v.CiphertextHex = hex.EncodeToString(c)
		} else {
			sum := sha256.Sum256(c)
			v.CiphertextSHA256 = hex.EncodeToString(sum[:])
		}
		vs.Stream.Vectors = append(vs.Stream.Vectors, v)
	}

	kek, org, aad := seq(0x20, 32), "acme", []byte("file-0001")
	dir := t.TempDir()
	writeKEKFile(t, dir, org, kek)
	k := newFileKEK(t, dir)
	wrapped, kekID, err := k.Wrap(context.Background(), org, key, aad)
	if err != nil {
		t.Fatal(err)
	}
	vs.Wrap = wrapVectorEntry{
		KEK:     hex.EncodeToString(kek),
		OrgID:   org,
		KEKID:   kekID,
		AAD:     hex.EncodeToString(aad),
		DEK:     hex.EncodeToString(key),
		Wrapped: hex.EncodeToString(wrapped),
	}
	out, err := json.MarshalIndent(vs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vectorsFile, append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
