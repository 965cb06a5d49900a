package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/ferry"
)

// The tamper tests build a log of 100 records, alter the database with raw
// SQL as an attacker with write access to it (but not to the signing key)
// could, and check that Verify fails naming the first altered record.

// rawData returns the stored JSON of record seq.
func (e *env) rawData(t *testing.T, seq int64) []byte {
	t.Helper()
	var b []byte
	if err := e.raw.QueryRow(`SELECT data FROM audit_records WHERE seq = $1`, seq).Scan(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

// forge rewrites record seq's data and indexed actor with a new actor,
// keeping its JSON well-formed and its own seq.
func (e *env) forge(t *testing.T, seq int64, actor string) []byte {
	t.Helper()
	var ev ferry.Event
	if err := json.Unmarshal(e.rawData(t, seq), &ev); err != nil {
		t.Fatal(err)
	}
	ev.Actor = actor
	b, _ := json.Marshal(&ev)
	e.exec(t, `UPDATE audit_records SET data = $1, actor = $2 WHERE seq = $3`, b, actor, seq)
	return b
}

// rehash recomputes every stored hash from the records, as an attacker
// covering their tracks would.
func (e *env) rehash(t *testing.T) {
	t.Helper()
	rows, err := e.raw.Query(`SELECT data FROM audit_records ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var datas [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		datas = append(datas, b)
	}
	rows.Close()
	var stored []tlog.Hash
	rd := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	for n, b := range datas {
		hs, err := tlog.StoredHashes(int64(n), b, rd)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
	}
	for i, h := range stored {
		e.exec(t, `UPDATE audit_hashes SET hash = $1 WHERE idx = $2`, h[:], int64(i))
	}
}

func TestTamper(t *testing.T) {
	const size = 100
	for _, tc := range []struct {
		name     string
		tamper   func(t *testing.T, e *env)
		old      bool  // pass the checkpoint of the first 40 records as old
		noFile   bool  // verify without the checkpoint file
		seq, end int64 // the VerifyError wanted
	}{
		{name: "edit data", seq: 42, end: 42, tamper: func(t *testing.T, e *env) {
			e.forge(t, 42, "nobody@acme.test")
		}},
		{name: "edit indexed column", seq: 7, end: 7, tamper: func(t *testing.T, e *env) {
			e.exec(t, `UPDATE audit_records SET actor = $1 WHERE seq = $2`, "nobody@acme.test", 7)
		}},
		{name: "edit a read's token column", seq: 25, end: 25, tamper: func(t *testing.T, e *env) {
			// The impact report searches this copy; an edit must not hide
			// the read from it.
			e.exec(t, `UPDATE audit_records SET token = $1 WHERE seq = $2`, "forged-token", 25)
		}},
		{name: "edit data and leaf hash", seq: 42, end: 43, tamper: func(t *testing.T, e *env) {
			h := tlog.RecordHash(e.forge(t, 42, "nobody@acme.test"))
			e.exec(t, `UPDATE audit_hashes SET hash = $1 WHERE idx = $2`, h[:], tlog.StoredHashIndex(0, 42))
		}},
		{name: "edit odd data and leaf hash", seq: 42, end: 43, tamper: func(t *testing.T, e *env) {
			h := tlog.RecordHash(e.forge(t, 43, "nobody@acme.test"))
			e.exec(t, `UPDATE audit_hashes SET hash = $1 WHERE idx = $2`, h[:], tlog.StoredHashIndex(0, 43))
		}},
		{name: "edit data and every hash", seq: 0, end: 99, tamper: func(t *testing.T, e *env) {
			e.forge(t, 42, "nobody@acme.test")
			e.rehash(t)
		}},
		{name: "edit data and every hash, old checkpoint", old: true, seq: 40, end: 99, tamper: func(t *testing.T, e *env) {
			e.forge(t, 42, "nobody@acme.test")
			e.rehash(t)
		}},
		{name: "edit before old checkpoint and every hash", old: true, seq: 0, end: 39, tamper: func(t *testing.T, e *env) {
			e.forge(t, 12, "nobody@acme.test")
			e.rehash(t)
		}},
		{name: "delete middle row", seq: 50, end: 50, tamper: func(t *testing.T, e *env) {
			e.exec(t, `DELETE FROM audit_records WHERE seq = $1`, 50)
		}},
		{name: "delete and renumber", seq: 50, end: 50, tamper: func(t *testing.T, e *env) {
			e.exec(t, `DELETE FROM audit_records WHERE seq = $1`, 50)
			for s := int64(51); s < size; s++ {
				e.exec(t, `UPDATE audit_records SET seq = $1 WHERE seq = $2`, s-1, s)
			}
		}},
		{name: "swap rows", seq: 30, end: 30, tamper: func(t *testing.T, e *env) {
			a, b := e.rawData(t, 30), e.rawData(t, 60)
			e.exec(t, `UPDATE audit_records SET data = $1 WHERE seq = $2`, b, 30)
			e.exec(t, `UPDATE audit_records SET data = $1 WHERE seq = $2`, a, 60)
		}},
		{name: "truncate with checkpoints", seq: 90, end: 90, tamper: func(t *testing.T, e *env) {
			e.exec(t, `DELETE FROM audit_records WHERE seq >= $1`, 90)
			e.exec(t, `DELETE FROM audit_hashes WHERE idx >= $1`, tlog.StoredHashCount(90))
			e.exec(t, `DELETE FROM audit_checkpoints`)
		}},
		{name: "truncate, hashes left", noFile: true, seq: 90, end: 90, tamper: func(t *testing.T, e *env) {
			e.exec(t, `DELETE FROM audit_records WHERE seq >= $1`, 90)
			e.exec(t, `DELETE FROM audit_checkpoints`)
		}},
		{name: "truncate, database checkpoint left", noFile: true, seq: 90, end: 90, tamper: func(t *testing.T, e *env) {
			e.exec(t, `DELETE FROM audit_records WHERE seq >= $1`, 90)
			e.exec(t, `DELETE FROM audit_hashes WHERE idx >= $1`, tlog.StoredHashCount(90))
		}},
		{name: "delete all", seq: 0, end: 0, tamper: func(t *testing.T, e *env) {
			e.exec(t, `DELETE FROM audit_records`)
			e.exec(t, `DELETE FROM audit_hashes`)
			e.exec(t, `DELETE FROM audit_checkpoints`)
		}},
		{name: "insert before the log", seq: -1, end: -1, tamper: func(t *testing.T, e *env) {
			e.exec(t, `INSERT INTO audit_records (seq, time, action, actor, org, org_id, party, party_id, path, data)
				SELECT -1, time, action, actor, org, org_id, party, party_id, path, data FROM audit_records WHERE seq = 0`)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			each(t, func(t *testing.T, e *env) {
				ctx := context.Background()
				l := e.open(t)
				fill(t, l, 0, 40)
				old, err := l.Checkpoint(ctx)
				if err != nil {
					t.Fatal(err)
				}
				fill(t, l, 40, size)
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				var oldNote, file []byte
				if tc.old {
					oldNote = old.Note
				}
				if !tc.noFile {
					file = e.checkpointFile(t)
				}
				if _, err := audit.Verify(ctx, e.d, e.verifier, oldNote, file); err != nil {
					t.Fatalf("Verify before tampering: %v", err)
				}

				tc.tamper(t, e)

				_, err = audit.Verify(ctx, e.d, e.verifier, oldNote, file)
				var verr *audit.VerifyError
				if !errors.As(err, &verr) || ferry.KindOf(err) != ferry.Integrity {
					t.Fatalf("Verify after tampering: %v, want a VerifyError", err)
				}
				if verr.Seq != tc.seq || verr.End != tc.end {
					t.Errorf("Verify: %v; want first bad record %d (up to %d)", err, tc.seq, tc.end)
				}
				t.Log(err)
			})
		})
	}
}

// TestOpenRefusesTruncated checks that the server will not sign checkpoints
// over a log cut below its last checkpoint, which would bury the evidence.
func TestOpenRefusesTruncated(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		l := e.open(t)
		fill(t, l, 0, 30)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		e.exec(t, `DELETE FROM audit_records WHERE seq >= $1`, 20)
		e.exec(t, `DELETE FROM audit_hashes WHERE idx >= $1`, tlog.StoredHashCount(20))
		e.exec(t, `DELETE FROM audit_checkpoints`)
		if _, err := audit.Open(ctx, e.d, e.signer, e.file, nil, nil); ferry.KindOf(err) != ferry.Integrity {
			t.Fatalf("Open of a truncated log: %v, want Integrity", err)
		}
	})
}

// TestOpenRefusesNegativeSize checks that a log whose sequence numbers were
// moved below zero (so that its size, the highest seq plus one, is negative)
// is refused as tampered rather than read as a tree of a negative size.
func TestOpenRefusesNegativeSize(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		l := e.open(t)
		fill(t, l, 0, 3)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		e.exec(t, `UPDATE audit_records SET seq = seq - 10`)
		e.exec(t, `DELETE FROM audit_checkpoints`)
		// No checkpoint file or row: the refusal comes from the size alone.
		if _, err := audit.Open(context.Background(), e.d, e.signer, "", nil, nil); ferry.KindOf(err) != ferry.Integrity {
			t.Fatalf("Open of a log of size -7: %v, want Integrity", err)
		}
	})
}
