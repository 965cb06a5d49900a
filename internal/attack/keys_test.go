package attack_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"ferry.dev/ferry/internal/ferrytest"
)

// secretsIn returns the key material in DIR/keys that must never appear
// anywhere else: each file whole, the 32-byte AES keys of the KEK files, the
// audit signing key and its decoded bytes, the SSH host keys' bodies.
func secretsIn(t *testing.T, keyDir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	filepath.WalkDir(keyDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(p)
		if strings.HasSuffix(name, ".pub") || strings.Contains(name, "public") {
			return nil // public by design
		}
		switch {
		case strings.HasSuffix(name, ".kek"):
			if len(b) != 37 || string(b[:4]) != "FKEK" {
				t.Fatalf("%s: unexpected KEK file format (%d bytes)", p, len(b))
			}
			out[name+" (AES key)"] = b[5:]
			out[name+" (AES key, hex)"] = []byte(hex.EncodeToString(b[5:]))
			out[name+" (AES key, base64)"] = []byte(base64.StdEncoding.EncodeToString(b[5:]))
		default:
			text := strings.TrimSpace(string(b))
			if len(text) >= 16 {
				out[name] = []byte(text)
			}
			// note signer keys: PRIVATE+KEY+name+hash+base64(key)
			if i := strings.LastIndexByte(text, '+'); strings.HasPrefix(text, "PRIVATE+KEY+") && i > 0 {
				if raw, err := base64.StdEncoding.DecodeString(text[i+1:]); err == nil && len(raw) > 16 {
					out[name+" (decoded)"] = raw[1:]
				}
			}
			// PEM private keys: each base64 line of the body.
			for _, line := range strings.Split(text, "\n") {
				if len(line) >= 40 && !strings.HasPrefix(line, "-----") {
					out[name+" line "+line[:8]] = []byte(line)
				}
			}
		}
		return nil
	})
	kek := 0
	for k := range out {
		if strings.Contains(k, ".kek (AES key)") {
			kek++
		}
	}
	if kek < 2 {
		t.Fatalf("found %d KEKs in %s, want one per organisation", kek, keyDir)
	}
	return out
}

// TestNoKeyMaterialOutsideKeys (MOVEit step 4: keys read from the database;
// GoAnywhere's hard-coded master key): the whole database (the SQLite files,
// or pg_dump of the PostgreSQL database) and every blob file hold no key
// material from DIR/keys and none of the plaintext uploaded; and with the
// database and blobs but without DIR/keys the server cannot decrypt a file.
func TestNoKeyMaterialOutsideKeys(t *testing.T) {
	t.Parallel()
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			t.Parallel()
			var w *world
			if db == "postgres" {
				w = newWorld(t, ferrytest.WithPostgres())
			} else {
				w = newWorld(t)
			}
			s := w.s.(served).Server
			markers := []string{reportBody, salaryBody}
			big := strings.Repeat("ATTACK-MARKER-BIG-FILE-LINE ", 40000) // ~1 MB: many segments
			ferrytest.Expect(t, s.Do("PUT", "/api/v1/files/finance/2026/big.txt", w.alice, strings.NewReader(big)), 201)
			markers = append(markers, "ATTACK-MARKER-BIG-FILE-LINE ATTACK-MARKER")
			// A resumable upload left half-way, and one finished.
			res := s.Do("POST", "/api/v1/uploads/", w.alice, strings.NewReader("ATTACK-MARKER-PARTIAL-UPLOAD"),
				"Tus-Resumable", "1.0.0", "Upload-Length", "1000", "Content-Type", "application/offset+octet-stream",
				"Upload-Metadata", "path "+b64("/finance/2026/partial.txt"))
			ferrytest.Body(t, res)
			markers = append(markers, "ATTACK-MARKER-PARTIAL-UPLOAD")

			// What an intruder with the database and the blob store has.
			var dumps = map[string][]byte{}
			if s.DSN != "" {
				pgDump := pgTool(t, "pg_dump")
				out, err := exec.Command(pgDump, "--dbname="+s.DSN, "--no-owner", "--inserts").Output()
				if err != nil || len(out) < 10000 {
					t.Fatalf("pg_dump: %v (%d bytes)", err, len(out))
				}
				dumps["pg_dump"] = out
			}
			s.Stop() // and once more at rest, with the WAL checkpointed
			defer func() {
				if t.Failed() {
					t.Logf("data directory %s", s.Data)
				}
			}()
			filepath.WalkDir(s.Data, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return nil
				}
				rel, _ := filepath.Rel(s.Data, p)
				if strings.HasPrefix(rel, "keys"+string(filepath.Separator)) || strings.HasPrefix(rel, "tls"+string(filepath.Separator)) {
					return nil
				}
				b, err := os.ReadFile(p)
				if err == nil {
					dumps[rel] = b
				}
				return nil
			})
			blobs := 0
			for name := range dumps {
				if strings.HasPrefix(name, "blobs") {
					blobs++
				}
			}
			if blobs < 3 || (s.DSN == "" && dumps["ferry.db"] == nil) {
				t.Fatalf("dumped %d blob files; files: %d", blobs, len(dumps))
			}
			secrets := secretsIn(t, filepath.Join(s.Data, "keys"))
			for name, b := range dumps {
				for what, sec := range secrets {
					if bytes.Contains(b, sec) || len(sec) == 32 && bytes.Contains(b, []byte(hex.EncodeToString(sec))) {
						t.Errorf("%s contains key material: %s", name, what)
					}
				}
				for _, m := range markers {
					// As bytes, base64 (JSON of []byte) and hex (pg_dump's bytea).
					if bytes.Contains(b, []byte(m)) || bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString([]byte(m))[:24])) ||
						bytes.Contains(b, []byte(hex.EncodeToString([]byte(m[:16])))) {
						t.Errorf("%s contains the plaintext %q", name, m[:24])
					}
				}
			}

			// Without DIR/keys, the database and blobs decrypt nothing.
			if err := os.Rename(filepath.Join(s.Data, "keys"), filepath.Join(t.TempDir(), "stolen-keys")); err != nil {
				t.Fatal(err)
			}
			s.Restart()
			for _, p := range []string{reportPath, "/finance/2026/big.txt"} {
				res := s.Do("GET", "/api/v1/files"+p, w.alice, nil)
				body := ferrytest.Body(t, res)
				if res.StatusCode == 200 || strings.Contains(body, "ATTACK-MARKER") {
					t.Errorf("GET %s without DIR/keys: %d %q", p, res.StatusCode, body[:min(len(body), 80)])
				}
			}
			t.Logf("%d files (%d blobs) searched for %d secrets and %d plaintexts", len(dumps), blobs, len(secrets), len(markers))
		})
	}
}

// pgTool returns the path of a PostgreSQL client program.
func pgTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(m) == 0 {
		t.Fatalf("%s not found (Debian package postgresql-client)", name)
	}
	return m[len(m)-1]
}
