package auth

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// TestLimiterLocksOutAnAddress: 1,000 failed logins from one address lock it
// out (after the first Burst), other addresses are unaffected and each
// check stays cheap, and the lockout ends and grows as configured.
func TestLimiterLocksOutAnAddress(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)}
	l := NewLimiter(LimiterConfig{}, clk.now)
	const bad, good = "192.0.2.7", "198.51.100.1"
	lockouts := 0
	refused := 0
	for i := 0; i < 1000; i++ {
		if ok, _ := l.Allow(bad); !ok {
			refused++ // the server refuses the attempt before hashing anything
			continue
		}
		if locked, d := l.Fail(bad); locked {
			lockouts++
			if d != DefaultLimiterConfig.Lockout {
				t.Fatalf("first lockout lasts %v", d)
			}
		}
	}
	if lockouts != 1 || refused != 1000-DefaultLimiterConfig.Burst {
		t.Fatalf("lockouts %d, refused %d; want 1 and %d", lockouts, refused, 1000-DefaultLimiterConfig.Burst)
	}
	if ok, retry := l.Allow(bad); ok || retry <= 0 || retry > DefaultLimiterConfig.Lockout {
		t.Fatalf("bad address allowed=%v retry=%v", ok, retry)
	}
	// Another address, even one that failed a few times, is not slowed.
	for i := 0; i < DefaultLimiterConfig.Burst-1; i++ {
		l.Fail(good)
	}
	start := time.Now()
	for i := 0; i < 10000; i++ {
		if ok, _ := l.Allow(good); !ok {
			t.Fatal("good address refused")
		}
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("10,000 checks took %v", el)
	}
	if l.Locked() != 1 {
		t.Fatalf("%d addresses locked", l.Locked())
	}
	// The lockout ends; failing again at once locks for twice as long.
	clk.add(DefaultLimiterConfig.Lockout)
	if ok, _ := l.Allow(bad); !ok {
		t.Fatal("lockout did not end")
	}
	if locked, d := l.Fail(bad); !locked || d != 2*DefaultLimiterConfig.Lockout {
		t.Fatalf("repeat offender: locked=%v for %v", locked, d)
	}
	// Once the record has drained, the address starts afresh.
	clk.add(48 * time.Hour)
	if ok, _ := l.Allow(bad); !ok {
		t.Fatal("still locked after two days")
	}
	if locked, _ := l.Fail(bad); locked {
		t.Fatal("one failure after two days locked the address")
	}
	// Failures spread out by Forgive never lock.
	for i := 0; i < 100; i++ {
		clk.add(DefaultLimiterConfig.Forgive)
		if locked, _ := l.Fail(good); locked {
			t.Fatalf("slow failures locked out at %d", i)
		}
	}
}

func TestLimiterBoundsMemory(t *testing.T) {
	clk := &fakeClock{t: time.Now()}
	l := NewLimiter(LimiterConfig{MaxAddrs: 1000}, clk.now)
	for i := 0; i < 10; i++ {
		l.Fail("203.0.113.9") // locked
	}
	for i := 0; i < 100000; i++ {
		l.Fail(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
	}
	l.mu.Lock()
	n := len(l.m)
	l.mu.Unlock()
	if n > 1000 {
		t.Fatalf("tracking %d addresses, limit 1000", n)
	}
	if ok, _ := l.Allow("203.0.113.9"); ok {
		t.Fatal("a flood of other addresses evicted a locked one")
	}
}

func TestAddrKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:2222":                 "192.0.2.1",
		"192.0.2.1":                      "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:22":      "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1%eth0]:22": "2001:db8:1:2::/64",
		"[::ffff:192.0.2.9]:22":          "192.0.2.9",
		"not an address":                 "not an address",
	} {
		if got := AddrKey(in); got != want {
			t.Errorf("AddrKey(%q) = %q, want %q", in, got, want)
		}
	}
}
