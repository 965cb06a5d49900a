package transfer_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/db/dbtest"
)

// TestUploadHashStateSealed: the saved SHA-256 state of an unfinished
// upload holds the content's last incomplete block in clear, so it is
// stored sealed under the file's key (DESIGN invariant 6): no plaintext
// of an interrupted upload reaches the database.
func TestUploadHashStateSealed(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := newEnv(t, d)
		secret := []byte("customer record 4711, account 99") // shorter than a SHA-256 block
		u, err := e.tr.CreateUpload(ctx, e.admin, "/state.bin", 1000, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, n, err := e.tr.WriteUpload(ctx, e.admin, u.ID, 0, &cutReader{bytes.NewReader(secret), io.ErrUnexpectedEOF}, nil); n != int64(len(secret)) {
			t.Fatalf("interrupted write kept %d bytes: %v", n, err)
		}
		stored, err := e.tr.Upload(ctx, e.admin, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(stored.HashState) == 0 || bytes.Contains(stored.HashState, secret[:16]) {
			t.Fatalf("the stored hash state holds the content in clear: %q", stored.HashState)
		}
	})
}
