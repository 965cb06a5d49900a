package sftpd

import (
	"math/bits"
	"sync"
)

// budget is a number of bytes shared by every session of a server: the
// out-of-order write data that uploads hold in memory (see upload.hold).
// Each upload's own window bounds what one upload holds; the budget bounds
// what all of them hold together, so that a thousand sessions cannot hold a
// thousand windows. A nil *budget is unlimited.
//
// Waiting for the budget cannot deadlock: an upload needs it only for
// writes ahead of the next expected byte, never for the next one itself,
// and every upload drains what it holds as its own in-order writes arrive.
type budget struct {
	mu      sync.Mutex
	limit   int64
	used    int64
	waiters map[any]func() // by key: woken when bytes are released
}

func newBudget(limit int64) *budget { return &budget{limit: limit} }

// tryAcquire takes n bytes if they are free. If not, it returns false and
// calls wake (in a goroutine of its own, so that a caller may hold its locks
// while releasing) the next time bytes are released; a caller that fails
// again before then, with the same key, is woken once.
func (b *budget) tryAcquire(n int64, key any, wake func()) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n <= b.limit {
		b.used += n
		return true
	}
	if b.waiters == nil {
		b.waiters = map[any]func(){}
	}
	b.waiters[key] = wake
	return false
}

// release returns n bytes taken by tryAcquire and wakes those waiting.
func (b *budget) release(n int64) {
	if b == nil || n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	if b.used < 0 { // cannot happen: every release matches an acquire
		b.used = 0
	}
	ws := b.waiters
	b.waiters = nil
	b.mu.Unlock()
	for _, w := range ws {
		go w()
	}
}

// inUse returns the bytes taken.
func (b *budget) inUse() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Held writes are copied into buffers kept for reuse, by size class (4 KiB
// to 256 KiB in powers of two): a pipelining client has most of its writes
// held for a moment (pkg/sftp's workers reach WriteAt out of order), and a
// fresh allocation for each of them made the garbage collector a tenth of
// an upload's server CPU.
const (
	holdMinShift = 12
	holdClasses  = 7
)

var holdPools [holdClasses]sync.Pool

// holdClass is the size class of a buffer for n bytes, or -1 for one too
// large to keep.
func holdClass(n int) int {
	if n <= 1<<holdMinShift {
		return 0
	}
	c := bits.Len(uint(n-1)) - holdMinShift
	if c >= holdClasses {
		return -1
	}
	return c
}

// getHold returns a copy of p in a buffer from the pools.
func getHold(p []byte) *[]byte {
	c := holdClass(len(p))
	var b *[]byte
	if c >= 0 {
		b, _ = holdPools[c].Get().(*[]byte)
	}
	if b == nil {
		size := len(p)
		if c >= 0 {
			size = 1 << (holdMinShift + c)
		}
		s := make([]byte, size)
		b = &s
	}
	*b = append((*b)[:0], p...)
	return b
}

// putHold gives a buffer from getHold back; its bytes must no longer be in
// use.
func putHold(b *[]byte) {
	if c := holdClass(cap(*b)); c >= 0 && cap(*b) == 1<<(holdMinShift+c) {
		holdPools[c].Put(b)
	}
}
