package audit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"ferry.dev/ferry/internal/ferry"
)

// Checkpoint is a signed statement of the log's size and root hash. Its note
// text is the standard transparency-log checkpoint: the origin (the log's
// name, which is also the signing key's name), the number of records and the
// base64 root hash, each on its own line, followed by one extension line
// "time <RFC 3339>" saying when it was signed.
type Checkpoint struct {
	Origin string
	N      int64
	Hash   tlog.Hash
	Time   time.Time
	Note   []byte // the signed note, as stored and written to the checkpoint file
}

func formatCheckpoint(origin string, tree tlog.Tree, t time.Time) string {
	return fmt.Sprintf("%s\n%d\n%s\ntime %s\n", origin, tree.N, tree.Hash, t.UTC().Format(time.RFC3339Nano))
}

// parseCheckpointText parses the text of a checkpoint note.
func parseCheckpointText(text string) (*Checkpoint, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 || !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("malformed checkpoint")
	}
	c := &Checkpoint{Origin: lines[0]}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return nil, fmt.Errorf("malformed checkpoint size %q", lines[1])
	}
	c.N = n
	h, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize {
		return nil, fmt.Errorf("malformed checkpoint hash %q", lines[2])
	}
	copy(c.Hash[:], h)
	for _, l := range lines[3:] {
		if ts, ok := strings.CutPrefix(l, "time "); ok {
			if c.Time, err = time.Parse(time.RFC3339Nano, ts); err != nil {
				return nil, fmt.Errorf("malformed checkpoint time %q", ts)
			}
		}
	}
	return c, nil
}

// ParseCheckpoint checks that msg is a checkpoint note signed by v for the log
// v names, and parses it.
func ParseCheckpoint(msg []byte, v note.Verifier) (*Checkpoint, error) {
	const op = "audit.ParseCheckpoint"
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return nil, ferry.E(op, ferry.Integrity, "checkpoint is not signed by the audit key", err)
	}
	c, err := parseCheckpointText(n.Text)
	if err != nil {
		return nil, ferry.E(op, ferry.Integrity, err)
	}
	if c.Origin != v.Name() {
		return nil, ferry.Errorf(op, ferry.Integrity, "checkpoint is for log %q, not %q", c.Origin, v.Name())
	}
	c.Note = bytes.Clone(msg)
	return c, nil
}

// parseUnverified parses a checkpoint note without checking its signature,
// for the Log, which holds the signing key but no verifier.
func parseUnverified(msg []byte) (*Checkpoint, error) {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return nil, fmt.Errorf("malformed checkpoint note")
	}
	c, err := parseCheckpointText(string(msg[:i+1]))
	if err != nil {
		return nil, err
	}
	c.Note = bytes.Clone(msg)
	return c, nil
}

// writeFileAtomic replaces name with data: a temporary file in the same
// directory is written, synced and renamed over name, and the directory is
// synced, so that a crash leaves either the old content or the new.
func writeFileAtomic(name string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), name); err != nil {
		return err
	}
	// Without the directory's fsync the rename may not survive a crash:
	// a failure here is the write's failure.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// CheckpointFile is where a data directory keeps the audit log's latest
// signed checkpoint.
func CheckpointFile(dataDir string) string {
	return filepath.Join(dataDir, "audit", "checkpoint")
}

// ReadCheckpoint reads the latest checkpoint kept at path (CheckpointFile),
// for Verify: none yet is nil, not an error.
func ReadCheckpoint(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}
