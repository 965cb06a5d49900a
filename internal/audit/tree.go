package audit

import (
	"golang.org/x/mod/sumdb/tlog"
)

// frontier is the right edge of a tlog tree of n records: the hashes of the
// complete subtrees that n's binary decomposition splits the records into,
// largest (leftmost) first. It is all that is needed to append a record and to
// compute the root, so both the Log and Verify keep one instead of the tree.
type frontier struct {
	n      int64 // never negative: Log.load refuses a negative size
	hashes []tlog.Hash
}

// emptyRoot is the root hash of the empty tree (RFC 6962: SHA-256 of nothing).
var emptyRoot, _ = tlog.TreeHash(0, nil)

// subtrees calls fn for each complete subtree of the frontier, left to right,
// with its level and stored hash index.
func (f *frontier) subtrees(fn func(i int, level int, index int64)) {
	start, i := int64(0), 0
	for level := 63; level >= 0; level-- {
		if f.n>>uint(level)&1 == 1 {
			fn(i, level, tlog.StoredHashIndex(level, start>>uint(level)))
			start += 1 << uint(level)
			i++
		}
	}
}

// lookup returns the frontier hash with the given stored hash index.
func (f *frontier) lookup(index int64) (tlog.Hash, bool) {
	var h tlog.Hash
	found := false
	f.subtrees(func(i, _ int, x int64) {
		if x == index {
			h, found = f.hashes[i], true
		}
	})
	return h, found
}

// push adds the stored hashes computed for record f.n (the record hash
// first, then one per subtree it completes, as tlog.StoredHashes returns
// them) and advances to f.n+1.
func (f *frontier) push(stored []tlog.Hash) {
	merged := 0 // the subtrees record f.n completes: the trailing 1 bits of f.n
	for k := f.n; k&1 == 1; k >>= 1 {
		merged++
	}
	f.hashes = append(f.hashes[:len(f.hashes)-merged], stored[len(stored)-1])
	f.n++
}

// appendRecord adds a record hash, computing the stored hashes itself, and
// returns them (appended to buf).
func (f *frontier) appendRecord(h tlog.Hash, buf []tlog.Hash) []tlog.Hash {
	buf = append(buf, h)
	for k := f.n; k&1 == 1; k >>= 1 {
		h = tlog.NodeHash(f.hashes[len(f.hashes)-1], h)
		f.hashes = f.hashes[:len(f.hashes)-1]
		buf = append(buf, h)
	}
	f.hashes = append(f.hashes, h)
	f.n++
	return buf
}

// root returns the tree hash of the f.n records (tlog.TreeHash).
func (f *frontier) root() tlog.Hash {
	if len(f.hashes) == 0 {
		return emptyRoot
	}
	h := f.hashes[len(f.hashes)-1]
	for i := len(f.hashes) - 2; i >= 0; i-- {
		h = tlog.NodeHash(f.hashes[i], h)
	}
	return h
}

func (f *frontier) clone() frontier {
	return frontier{n: f.n, hashes: append([]tlog.Hash(nil), f.hashes...)}
}
