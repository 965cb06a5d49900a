package sftpd

import "sync"

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
