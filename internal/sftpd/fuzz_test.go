package sftpd_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"

	"github.com/pkg/sftp"

	"ferry.dev/ferry/internal/sftpd"
)

// pkt builds an SFTP packet: type, then fields (uint32, uint64, string or
// raw []byte), with its length prefix.
func pkt(typ byte, fields ...any) []byte {
	b := []byte{0, 0, 0, 0, typ}
	for _, f := range fields {
		switch f := f.(type) {
		case int:
			b = binary.BigEndian.AppendUint32(b, uint32(f))
		case uint32:
			b = binary.BigEndian.AppendUint32(b, f)
		case uint64:
			b = binary.BigEndian.AppendUint64(b, f)
		case string:
			b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
			b = append(b, f...)
		case []byte:
			b = append(b, f...)
		}
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func cat(ps ...[]byte) []byte {
	var b []byte
	for _, p := range ps {
		b = append(b, p...)
	}
	return b
}

const (
	tOpen, tClose, tRead, tWrite, tLstat, tFstat, tSetstat, tFsetstat = 3, 4, 5, 6, 7, 8, 9, 10
	tOpendir, tReaddir, tRemove, tMkdir, tRmdir, tRealpath, tStat     = 11, 12, 13, 14, 15, 16, 17
	tRename, tReadlink, tSymlink, tExtended                           = 18, 19, 20, 200
)

// packetSeeds are well-formed and malformed request sequences (after INIT).
func packetSeeds() [][]byte {
	wr := 0x02 | 0x08 | 0x10
	return [][]byte{
		cat(pkt(tOpen, 1, "/fz.txt", wr, 0), pkt(tWrite, 2, "1", uint64(0), "hello"), pkt(tClose, 3, "1")),
		cat(pkt(tOpen, 1, "/fz.txt", wr, 0), pkt(tWrite, 2, "1", uint64(5), "late"), pkt(tClose, 3, "1")),
		cat(pkt(tOpen, 1, "/fz.txt", wr, 0), pkt(tRead, 2, "1", uint64(0), 100), pkt(tClose, 3, "1")),
		cat(pkt(tOpen, 1, "/seed.txt", 1, 0), pkt(tWrite, 2, "1", uint64(0), "x"), pkt(tRead, 3, "1", uint64(0), 1<<30), pkt(tClose, 4, "1")),
		cat(pkt(tOpen, 1, "/seed.txt", 1, 0), pkt(tRead, 2, "1", uint64(1<<62), 10), pkt(tFstat, 3, "1"), pkt(tFsetstat, 4, "1", 0xffffffff)),
		cat(pkt(tOpen, 1, "/fz.txt", wr, 0), pkt(tWrite, 2, "1", uint64(1<<62-1), "sentinel"), pkt(tClose, 3, "1")),
		pkt(tRead, 1, "999", uint64(0), 10),
		pkt(tWrite, 1, "1", uint64(0)),
		pkt(tWrite, 1, string(make([]byte, 200)), uint64(0), "x"),
		pkt(tOpen, 1),
		pkt(tOpen, 1, "/x", 0, 0),
		pkt(tOpen, 1, "/x", 0x04, 0),
		cat(pkt(tOpendir, 1, "/"), pkt(tReaddir, 2, "1"), pkt(tReaddir, 3, "1"), pkt(tClose, 4, "1"), pkt(tClose, 5, "1")),
		pkt(tRealpath, 1, "/../../.."),
		pkt(tRealpath, 1, "a\x00b"),
		pkt(tStat, 1, string(make([]byte, 5000))),
		pkt(tLstat, 1, "/seed.txt"),
		pkt(tSetstat, 1, "/seed.txt", 0x80000000, 1<<30),
		pkt(tSetstat, 1, "/seed.txt", 0x0f, uint64(1), 1, 2, 3),
		pkt(tMkdir, 1, "/d", 0),
		pkt(tRmdir, 1, "/"),
		pkt(tRemove, 1, "/"),
		pkt(tRename, 1, "/seed.txt"),
		pkt(tRename, 1, "/seed.txt", "/../seed2.txt"),
		pkt(tReadlink, 1, "/seed.txt"),
		pkt(tSymlink, 1, "/a", "/b"),
		pkt(tExtended, 1, "limits@openssh.com"),
		pkt(tExtended, 1, "limits@openssh.com", "trailing"),
		pkt(tExtended, 1, "posix-rename@openssh.com", "/seed.txt"),
		pkt(tExtended, 1, "statvfs@openssh.com"),
		pkt(tExtended, 1, "hardlink@openssh.com", "/seed.txt", "/h"),
		pkt(tExtended, 1, "no-such@ext"),
		pkt(tExtended),
		pkt(1, 3),
		pkt(2, 3),
		pkt(101, 1, 0),
		pkt(255),
		{0, 0, 0, 0},
		{0, 0, 0, 1},
		{0, 4, 0, 1, 6},
		{0xff, 0xff, 0xff, 0xff, 6},
		{0, 0, 0, 9, tWrite, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff},
	}
}

// FuzzPackets feeds arbitrary bytes, after a valid INIT, to an SFTP session
// served over an in-memory pipe: it must not panic (a panic in any of its
// goroutines kills the test binary), it must answer with well-framed packets
// or close the session, it must end when the client goes away, and another
// session running at the same time must be unaffected.
func FuzzPackets(f *testing.F) {
	for _, s := range packetSeeds() {
		f.Add(s)
	}
	e := newEnv(f)
	mustPut(f, e, "/seed.txt", "seed content")
	good, _ := e.pipeSession(f, e.admin)
	f.Fuzz(func(t *testing.T, in []byte) {
		runPackets(t, e, good, in)
	})
}

// TestPacketsRandom runs random mutations of the seeds in the normal test
// run (go test -fuzz=FuzzPackets explores further).
func TestPacketsRandom(t *testing.T) {
	e := newEnv(t)
	mustPut(t, e, "/seed.txt", "seed content")
	good, _ := e.pipeSession(t, e.admin)
	seeds := packetSeeds()
	r := rand.New(rand.NewPCG(1, 2))
	n := 60
	if testing.Short() {
		n = 30
	}
	for i := 0; i < n; i++ {
		in := append([]byte(nil), seeds[r.IntN(len(seeds))]...)
		for j := r.IntN(4); j >= 0 && len(in) > 0; j-- {
			switch r.IntN(4) {
			case 0:
				in[r.IntN(len(in))] = byte(r.Uint32())
			case 1:
				in = in[:r.IntN(len(in))]
			case 2:
				in = append(in, seeds[r.IntN(len(seeds))]...)
			case 3:
				p := r.IntN(len(in))
				in = append(in[:p], append([]byte{byte(r.Uint32()), byte(r.Uint32())}, in[p:]...)...)
			}
		}
		runPackets(t, e, good, in)
	}
}

// sentinelID is the id of a request sent after the input: its reply shows
// that the session has handled everything before it.
const sentinelID = 0x7ffffff0

func runPackets(t *testing.T, e *env, good *sftp.Client, in []byte) {
	cs, ss := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- sftpd.ServeSFTP(context.Background(), ss, e.tr, e.admin, e.logger) }()

	// The other session works while this one is attacked.
	goodErr := make(chan error, 1)
	go func() {
		_, err := good.Stat("/")
		goodErr <- err
	}()

	// Read every reply and check its framing.
	replies := make(chan error, 1)
	go func() {
		var hdr [4]byte
		for {
			cs.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, err := io.ReadFull(cs, hdr[:]); err != nil {
				replies <- nil
				return
			}
			n := binary.BigEndian.Uint32(hdr[:])
			if n == 0 || n > 256<<10+64 {
				replies <- errors.New("reply with a bad length")
				return
			}
			body := make([]byte, n)
			if _, err := io.ReadFull(cs, body); err != nil {
				replies <- errors.New("truncated reply")
				return
			}
			switch body[0] {
			case 2, 101, 102, 103, 104, 105, 201:
			default:
				replies <- errors.New("reply of unknown type")
				return
			}
			if body[0] == 104 && len(body) >= 5 && binary.BigEndian.Uint32(body[1:]) == sentinelID {
				replies <- nil // everything before it was processed
				return
			}
		}
	}()
	cs.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := cs.Write(pkt(1, 3)); err == nil {
		if _, err := cs.Write(cat(in, pkt(tRealpath, sentinelID, "/"))); err != nil && !errors.Is(err, io.ErrClosedPipe) && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Logf("write: %v", err)
		}
	}
	if err := <-replies; err != nil {
		t.Fatalf("input %x: %v", in, err)
	}
	cs.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("input %x: the session did not end after the client left", in)
	}
	if err := <-goodErr; err != nil {
		t.Fatalf("input %x: the other session failed: %v", in, err)
	}
}
