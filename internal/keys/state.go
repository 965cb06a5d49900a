package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"

	"ferry.dev/ferry/internal/ferry"
)

// stateKeyInfo is the HKDF info of the key that seals a resumable upload's
// saved hash state.
const stateKeyInfo = "ferry upload state v1\x00"

// stateVersion is the first byte of a sealed state. A saved SHA-256 state
// holds the bytes of the last incomplete 64-byte block in clear, so it is
// file content and is never stored unsealed.
const stateVersion = 1

// SealState encrypts a resumable upload's saved state (its SHA-256 midstate,
// which holds up to 63 bytes of the content in clear) under a key derived
// from the file's data key with HKDF-SHA256 (info "ferry upload state
// v1\x00"), AES-256-GCM with a random nonce, bound to aad (the upload's id).
// The result is one version byte, the 12-byte nonce and the sealed state.
func SealState(dek, aad, state []byte) ([]byte, error) {
	aead, err := stateAEAD("keys.SealState", dek)
	if err != nil {
		return nil, err
	}
	return aead.Seal([]byte{stateVersion}, nil, state, aad), nil
}

// OpenState reverses SealState. A state sealed under another key or for
// another upload, or altered, is an Integrity error.
func OpenState(dek, aad, sealed []byte) ([]byte, error) {
	const op = "keys.OpenState"
	aead, err := stateAEAD(op, dek)
	if err != nil {
		return nil, err
	}
	if len(sealed) < 1 || sealed[0] != stateVersion {
		return nil, ferry.E(op, ferry.Integrity, "not a sealed upload state")
	}
	plain, err := aead.Open(nil, nil, sealed[1:], aad)
	if err != nil {
		return nil, ferry.E(op, ferry.Integrity, "the upload's saved state does not authenticate")
	}
	return plain, nil
}

func stateAEAD(op string, dek []byte) (cipher.AEAD, error) {
	if len(dek) != DataKeySize {
		return nil, ferry.E(op, ferry.Invalid, "data key must be 32 bytes")
	}
	k, err := hkdf.Key(sha256.New, dek, nil, stateKeyInfo, DataKeySize)
	if err != nil {
		return nil, ferry.E(op, ferry.Internal, err)
	}
	defer clear(k)
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, ferry.E(op, ferry.Internal, err)
	}
	// The nonce is random and carried in the output (FIPS 140-3 approved
	// construction); each upload seals one state per part.
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, ferry.E(op, ferry.Internal, err)
	}
	return aead, nil
}
