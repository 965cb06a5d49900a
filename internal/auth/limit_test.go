package auth

import (
	"fmt"
	"strings"
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
	for i := 0; i < DefaultLimiterConfig.Burst; i++ {
		l.Failure(Attempt{Account: "alice@acme.test", Remote: "203.0.113.9:1"}) // locked
	}
	for i := 0; i < 100000; i++ {
		l.Failure(Attempt{Account: fmt.Sprintf("u%d@acme.test", i), Remote: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)})
		l.Success(Attempt{Account: fmt.Sprintf("v%d@acme.test", i), Remote: "192.0.2.1"})
	}
	l.mu.Lock()
	sizes := []int{len(l.addr.m), len(l.pair.m), len(l.account.m), len(l.familiar)}
	l.mu.Unlock()
	for _, n := range sizes {
		if n > 1000 {
			t.Fatalf("tracking %v keys, limit 1000 each", sizes)
		}
	}
	if ok, _ := l.Allow("203.0.113.9"); !ok {
		return
	}
	t.Fatal("a flood of other addresses evicted a locked one")
}

// TestLimiterAccountAndAddress: an attacker hammering one account from one
// address locks that account at that address first (and the address), but
// the account's owner signs in from elsewhere — and from her usual address
// even when failures from many addresses lock the account itself.
func TestLimiterAccountAndAddress(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)}
	var locks []Lock
	l := NewLimiter(LimiterConfig{OnLock: func(lk Lock) { locks = append(locks, lk) }}, clk.now)
	cfg := DefaultLimiterConfig
	alice := func(remote string) Attempt {
		return Attempt{Account: "Alice@Acme.test", Remote: remote, Protocol: "https"}
	}
	l.Success(alice("198.51.100.1:5000")) // her own address, familiar

	// From the attacker's address: the pair locks after AccountAddr.Burst.
	for i := 0; i < cfg.AccountAddr.Burst; i++ {
		if ok, _ := l.Check(alice("192.0.2.66:1")); !ok {
			t.Fatalf("locked after %d failures", i)
		}
		l.Failure(alice("192.0.2.66:1"))
	}
	if ok, retry := l.Check(alice("192.0.2.66:2")); ok || retry != cfg.AccountAddr.Lockout {
		t.Fatalf("pair not locked: %v %v", ok, retry)
	}
	if len(locks) != 1 || locks[0].Scope != LockAccountAddr || locks[0].Account != "alice@acme.test" || locks[0].Addr != "192.0.2.66" || locks[0].Protocol != "https" {
		t.Fatalf("locks %+v", locks)
	}
	// The same account from another address, and another account from the
	// attacker's address, still go through.
	if ok, _ := l.Check(alice("198.51.100.1:5001")); !ok {
		t.Fatal("alice refused at her own address")
	}
	if ok, _ := l.Check(alice("203.0.113.5:1")); !ok {
		t.Fatal("alice refused at a new address")
	}
	if ok, _ := l.Check(Attempt{Account: "bob@acme.test", Remote: "192.0.2.66:3"}); !ok {
		t.Fatal("bob refused at the attacker's address before it is locked")
	}
	// Guessing other accounts locks the address itself.
	for i := 0; i < cfg.Burst-cfg.AccountAddr.Burst; i++ {
		l.Failure(Attempt{Account: fmt.Sprintf("user%d@acme.test", i%3), Remote: "192.0.2.66:4"})
	}
	if ok, _ := l.Check(Attempt{Account: "bob@acme.test", Remote: "192.0.2.66:3"}); ok {
		t.Fatal("address not locked after Burst failures")
	}
	if lk := locks[len(locks)-1]; lk.Scope != LockAddress || lk.For != cfg.Lockout {
		t.Fatalf("last lock %+v", lk)
	}

	// A distributed attack: each address fails on alice until its pair
	// locks. After Account.Burst failures, alice is locked for unfamiliar
	// addresses only.
	failures := cfg.AccountAddr.Burst // from the first attacker
	for a := 0; failures < cfg.Account.Burst; a++ {
		for i := 0; i < cfg.AccountAddr.Burst && failures < cfg.Account.Burst; i++ {
			l.Failure(alice(fmt.Sprintf("100.64.%d.%d:1", a/250, a%250)))
			failures++
		}
	}
	if ok, retry := l.Check(alice("203.0.113.77:1")); ok || retry != cfg.Account.Lockout {
		t.Fatalf("account not locked for a new address: %v %v", ok, retry)
	}
	if ok, _ := l.Check(alice("198.51.100.1:6000")); !ok {
		t.Fatal("the account lock refused alice's own address")
	}
	if ok, _ := l.Check(Attempt{Account: "carol@acme.test", Remote: "203.0.113.77:1"}); !ok {
		t.Fatal("the account lock refused another account")
	}
	if lk := locks[len(locks)-1]; lk.Scope != LockAccount || !strings.Contains(lk.String(), "not signed in from recently") {
		t.Fatalf("last lock %+v %s", lk, lk)
	}
	// Failures from alice's familiar address do not feed the account lock,
	// and a success there forgets that pair's failures.
	for i := 0; i < cfg.AccountAddr.Burst-1; i++ {
		l.Failure(alice("198.51.100.1:1"))
	}
	l.Success(alice("198.51.100.1:1"))
	for i := 0; i < cfg.AccountAddr.Burst-1; i++ {
		l.Failure(alice("198.51.100.1:1"))
	}
	if ok, _ := l.Check(alice("198.51.100.1:1")); !ok {
		t.Fatal("success did not reset alice's own failures")
	}
	// Locks end; one more failure from a new address right after locks the
	// account again, for twice as long (no failure is forgiven while locked).
	clk.add(cfg.Account.Lockout)
	if ok, _ := l.Check(alice("203.0.113.77:1")); !ok {
		t.Fatal("account lock did not end")
	}
	locks = nil
	l.Failure(alice("100.64.9.9:1"))
	if len(locks) != 1 || locks[0].Scope != LockAccount || locks[0].For != 2*cfg.Account.Lockout || locks[0].Strike != 2 {
		t.Fatalf("repeat account lock %+v", locks)
	}
}

func TestLimiterOneThousandFailures(t *testing.T) {
	l := NewLimiter(LimiterConfig{}, time.Now)
	refused := 0
	for i := 0; i < 1000; i++ {
		a := Attempt{Account: fmt.Sprintf("user%d@acme.test", i%50), Remote: "192.0.2.7:1234"}
		if ok, _ := l.Check(a); !ok {
			refused++
			continue
		}
		l.Failure(a)
	}
	if refused != 1000-DefaultLimiterConfig.Burst {
		t.Fatalf("refused %d of 1000, want %d", refused, 1000-DefaultLimiterConfig.Burst)
	}
	if ok, _ := l.Check(Attempt{Account: "user1@acme.test", Remote: "192.0.2.8"}); !ok {
		t.Fatal("another address refused")
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
