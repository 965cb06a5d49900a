package keys

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"

	"ferry.dev/ferry/internal/ferry"
)

// KEKProvider wraps and unwraps data keys with an organisation's
// key-encryption key (KEK). KEKs never enter the metadata database; only
// wrapped data keys and KEK ids do.
type KEKProvider interface {
	// Ensure creates the organisation's KEK if it has none.
	Ensure(ctx context.Context, orgID string) error
	// Wrap encrypts dek with the organisation's current KEK; aad binds it to
	// its use (the caller passes the file id).
	Wrap(ctx context.Context, orgID string, dek, aad []byte) (wrapped []byte, kekID string, err error)
	// Unwrap decrypts a data key wrapped by Wrap, given the same orgID and aad
	// and the kekID Wrap returned. Any mismatch fails with kind
	// ferry.Integrity.
	Unwrap(ctx context.Context, orgID, kekID string, wrapped, aad []byte) ([]byte, error)
}

var _ KEKProvider = (*FileKEK)(nil)

// FileKEK is a KEKProvider keeping each organisation's KEKs as files in one
// directory (the server uses DATA/keys).
//
// Version n of organisation org's KEK is the file "org.n.kek" (mode 0600):
// the 4 bytes "FKEK", a format version byte (1) and the 32-byte AES-256 key.
// Its KEK id is "file:org:n". Ensure creates version 1; Rotate adds the next
// version, which Wrap then uses, while Unwrap still accepts every version.
// A KEK file is never replaced or rewritten once created.
//
// A wrapped key is a version byte (1), a random 12-byte nonce and the
// AES-256-GCM ciphertext and tag of the data key; see docs/FORMAT.md for the
// additional data.
//
// A FileKEK is safe for concurrent use. It caches the keys it has loaded;
// several processes may share the directory, though each sees a version added
// by another's Rotate only after its own restart.
type FileKEK struct {
	root *os.Root
	rand io.Reader

	mu   sync.Mutex
	orgs map[string]*orgKEKs
}

// orgKEKs are the loaded KEKs of one organisation.
type orgKEKs struct {
	current int                 // highest version on disk; 0 when there is none
	aeads   map[int]cipher.AEAD // loaded versions
}

// The KEK file and wrapped-key formats.
const (
	kekMagic       = "FKEK"
	kekFileVersion = 1
	kekFileSize    = len(kekMagic) + 1 + 32
	wrapVersion    = 1
	wrapAADPrefix  = "ferry.dev/ferry/internal/keys wrap v1\x00"
	maxOrgIDLen    = 64
	maxKEKVersion  = 1 << 20
)

// NewFileKEK returns a FileKEK storing keys in dir, which is created with mode
// 0700 if missing. New KEKs are read from rand (crypto/rand.Reader when nil);
// wrapping nonces always come from crypto/rand (cipher.NewGCMWithRandomNonce,
// the FIPS 140-3 approved form). Close releases the directory.
func NewFileKEK(dir string, rand io.Reader) (*FileKEK, error) {
	const op = "keys.NewFileKEK"
	if dir == "" {
		return nil, ferry.E(op, ferry.Invalid, "empty key directory")
	}
	if rand == nil {
		rand = crand.Reader
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, ferry.E(op, ferry.Internal, "cannot create the key directory", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, ferry.E(op, ferry.Internal, "cannot open the key directory", err)
	}
	return &FileKEK{root: root, rand: rand, orgs: make(map[string]*orgKEKs)}, nil
}

// Close releases the key directory. The FileKEK must not be used afterwards.
func (k *FileKEK) Close() error { return k.root.Close() }

// Ensure implements KEKProvider.
func (k *FileKEK) Ensure(ctx context.Context, orgID string) error {
	const op = "keys.FileKEK.Ensure"
	if err := check(ctx, op, orgID); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	o, err := k.orgLocked(op, orgID)
	if err != nil {
		return err
	}
	if o.current > 0 {
		return nil
	}
	return k.createLocked(op, orgID, o, 1)
}

// Rotate adds a new version of the organisation's KEK, which Wrap uses from
// then on, and returns its id. Data keys wrapped by earlier versions still
// unwrap; re-wrapping them (Unwrap, then Wrap) lets an old version be retired.
func (k *FileKEK) Rotate(ctx context.Context, orgID string) (string, error) {
	const op = "keys.FileKEK.Rotate"
	if err := check(ctx, op, orgID); err != nil {
		return "", err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	o, err := k.orgLocked(op, orgID)
	if err != nil {
		return "", err
	}
	if o.current >= maxKEKVersion {
		return "", ferry.E(op, ferry.Invalid, "too many key versions")
	}
	if err := k.createLocked(op, orgID, o, o.current+1); err != nil {
		return "", err
	}
	return kekID(orgID, o.current), nil
}

// Wrap implements KEKProvider. dek must be DataKeySize bytes. It fails with
// kind ferry.NotExist if the organisation has no KEK (see Ensure).
func (k *FileKEK) Wrap(ctx context.Context, orgID string, dek, aad []byte) ([]byte, string, error) {
	const op = "keys.FileKEK.Wrap"
	if err := check(ctx, op, orgID); err != nil {
		return nil, "", err
	}
	if len(dek) != DataKeySize {
		return nil, "", ferry.E(op, ferry.Invalid, "data key must be 32 bytes")
	}
	k.mu.Lock()
	o, err := k.orgLocked(op, orgID)
	var (
		version int
		aead    cipher.AEAD
	)
	if err == nil {
		if o.current == 0 {
			err = ferry.E(op, ferry.NotExist, "organisation has no key-encryption key")
		} else {
			version = o.current
			aead, err = k.aeadLocked(op, orgID, o, version)
		}
	}
	k.mu.Unlock()
	if err != nil {
		return nil, "", err
	}
	id := kekID(orgID, version)
	out := make([]byte, 1, 1+aead.Overhead()+len(dek))
	out[0] = wrapVersion
	out = aead.Seal(out, nil, dek, wrapAAD(orgID, id, aad))
	return out, id, nil
}

// Unwrap implements KEKProvider.
func (k *FileKEK) Unwrap(ctx context.Context, orgID, kekID string, wrapped, aad []byte) ([]byte, error) {
	const op = "keys.FileKEK.Unwrap"
	if err := check(ctx, op, orgID); err != nil {
		return nil, err
	}
	idOrg, version, err := parseKEKID(kekID)
	if err != nil {
		return nil, ferry.E(op, ferry.Invalid, "malformed key-encryption key id", err)
	}
	if idOrg != orgID {
		return nil, ferry.E(op, ferry.Integrity, "wrapped key belongs to another organisation")
	}
	if len(wrapped) == 0 || wrapped[0] != wrapVersion {
		return nil, ferry.E(op, ferry.Integrity, "wrapped key failed authentication", errors.New("unknown wrapped key format"))
	}
	k.mu.Lock()
	var aead cipher.AEAD
	o, err := k.orgLocked(op, orgID)
	if err == nil {
		aead, err = k.aeadLocked(op, orgID, o, version)
	}
	k.mu.Unlock()
	if err != nil {
		return nil, err
	}
	dek, err := aead.Open(nil, nil, wrapped[1:], wrapAAD(orgID, kekID, aad))
	if err != nil {
		return nil, ferry.E(op, ferry.Integrity, "wrapped key failed authentication", err)
	}
	if len(dek) != DataKeySize {
		return nil, ferry.E(op, ferry.Integrity, "wrapped key has the wrong size")
	}
	return dek, nil
}

// check validates the arguments every method shares.
func check(ctx context.Context, op, orgID string) error {
	if err := ctx.Err(); err != nil {
		return ferry.E(op, ferry.Unavailable, err)
	}
	if err := validOrgID(orgID); err != nil {
		return ferry.E(op, ferry.Invalid, "invalid organisation id", err)
	}
	return nil
}

// validOrgID accepts 1 to 64 characters from [A-Za-z0-9_-]: an id that is
// safe as part of a file name.
func validOrgID(id string) error {
	if id == "" || len(id) > maxOrgIDLen {
		return fmt.Errorf("organisation id must be 1 to %d characters", maxOrgIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("organisation id %q has a character outside [A-Za-z0-9_-]", id)
		}
	}
	return nil
}

func kekID(orgID string, version int) string {
	return "file:" + orgID + ":" + strconv.Itoa(version)
}

func kekFile(orgID string, version int) string {
	return orgID + "." + strconv.Itoa(version) + ".kek"
}

// parseKEKID parses "file:<org>:<version>".
func parseKEKID(id string) (string, int, error) {
	rest, ok := strings.CutPrefix(id, "file:")
	if !ok {
		return "", 0, fmt.Errorf("key id %q is not a file key id", id)
	}
	org, v, ok := strings.Cut(rest, ":")
	if !ok {
		return "", 0, fmt.Errorf("key id %q has no version", id)
	}
	if err := validOrgID(org); err != nil {
		return "", 0, err
	}
	version, err := strconv.Atoi(v)
	if err != nil || version < 1 || version > maxKEKVersion || strconv.Itoa(version) != v {
		return "", 0, fmt.Errorf("key id %q has a bad version", id)
	}
	return org, version, nil
}

// wrapAAD is the additional data of a wrapped key: a fixed prefix, then the
// organisation id and the KEK id, each preceded by its length as a big-endian
// uint16, then the caller's aad.
func wrapAAD(orgID, kekID string, aad []byte) []byte {
	b := make([]byte, 0, len(wrapAADPrefix)+4+len(orgID)+len(kekID)+len(aad))
	b = append(b, wrapAADPrefix...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(orgID))) // #nosec G115 -- orgID passed validOrgID (check): at most maxOrgIDLen (64) bytes
	b = append(b, orgID...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(kekID))) // #nosec G115 -- kekID was built by kekID or passed parseKEKID: "file:", a valid org id, ":" and a version <= maxKEKVersion, under 80 bytes
	b = append(b, kekID...)
	return append(b, aad...)
}

// orgLocked returns the cache entry of orgID, finding its current version on
// disk the first time. k.mu must be held.
func (k *FileKEK) orgLocked(op, orgID string) (*orgKEKs, error) {
	if o, ok := k.orgs[orgID]; ok {
		return o, nil
	}
	o := &orgKEKs{aeads: make(map[int]cipher.AEAD)}
	for v := 1; ; v++ {
		_, err := k.root.Stat(kekFile(orgID, v))
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, ferry.E(op, ferry.Internal, "cannot read the key directory", err)
		}
		o.current = v
	}
	if o.current > 0 {
		// Only cache an organisation that has keys, so that a KEK created by
		// another process is found on the next call.
		k.orgs[orgID] = o
	}
	return o, nil
}

// aeadLocked returns version v of orgID's KEK, loading it if needed. k.mu
// must be held.
func (k *FileKEK) aeadLocked(op, orgID string, o *orgKEKs, v int) (cipher.AEAD, error) {
	if a, ok := o.aeads[v]; ok {
		return a, nil
	}
	b, err := k.root.ReadFile(kekFile(orgID, v))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ferry.E(op, ferry.NotExist, "key-encryption key not found", err)
	}
	if err != nil {
		return nil, ferry.E(op, ferry.Internal, "cannot read a key-encryption key", err)
	}
	defer clear(b)
	if len(b) != kekFileSize || string(b[:4]) != kekMagic || b[4] != kekFileVersion {
		return nil, ferry.E(op, ferry.Integrity, "key-encryption key file is corrupt",
			fmt.Errorf("%s: bad length or header", kekFile(orgID, v)))
	}
	a, err := kekAEAD(b[5:])
	if err != nil {
		return nil, ferry.E(op, ferry.Internal, err)
	}
	o.aeads[v] = a
	return a, nil
}

func kekAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}

// createLocked creates version v of orgID's KEK and makes it current. The
// file is written to a temporary name, synced, and then linked to its final
// name: unlike a rename, a link never replaces an existing file, so a KEK
// that may already wrap data keys is never lost to a concurrent creator. If
// the version already exists, createLocked adopts it. k.mu must be held.
func (k *FileKEK) createLocked(op, orgID string, o *orgKEKs, v int) error {
	b := make([]byte, kekFileSize)
	defer clear(b)
	copy(b, kekMagic)
	b[4] = kekFileVersion
	if _, err := io.ReadFull(k.rand, b[5:]); err != nil {
		return ferry.E(op, ferry.Internal, "cannot generate a key-encryption key", err)
	}
	name := kekFile(orgID, v)
	if err := k.writeNew(name, b); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return ferry.E(op, ferry.Internal, "cannot store a key-encryption key", err)
		}
		// Another process created this version first: use theirs.
	} else {
		a, err := kekAEAD(b[5:])
		if err != nil {
			return ferry.E(op, ferry.Internal, err)
		}
		o.aeads[v] = a
	}
	o.current = v
	k.orgs[orgID] = o
	return nil
}

// writeNew atomically creates name with contents b and mode 0600, failing with
// fs.ErrExist if name exists.
func (k *FileKEK) writeNew(name string, b []byte) (err error) {
	var rnd [8]byte
	if _, err := io.ReadFull(crand.Reader, rnd[:]); err != nil {
		return err
	}
	tmp := fmt.Sprintf(".tmp-%s-%x", name, rnd)
	f, err := k.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		// Once linked, the temporary name is no longer needed either way.
		if rerr := k.root.Remove(tmp); rerr != nil && err == nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = rerr
		}
	}()
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	err = f.Close()
	f = nil
	if err != nil {
		return err
	}
	if err := k.root.Link(tmp, name); err != nil {
		return err
	}
	return k.syncDir()
}

// syncDir makes the directory entries durable.
func (k *FileKEK) syncDir() error {
	d, err := k.root.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
