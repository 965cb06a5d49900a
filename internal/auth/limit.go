package auth

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rule is one brute-force bucket: Burst failures in a row lock the key, one
// failure is forgiven per Forgive, and the lock lasts Lockout, doubling with
// each further lock until the key's bucket has refilled, up to MaxLockout.
// No failure is forgiven while the key is locked.
type Rule struct {
	Burst      int
	Forgive    time.Duration
	Lockout    time.Duration
	MaxLockout time.Duration
}

// LimiterConfig tunes a Limiter. Zero fields take the defaults of
// DefaultLimiterConfig.
type LimiterConfig struct {
	// Burst, Forgive, Lockout and MaxLockout are the rule per client
	// address, whatever accounts it tries (see Rule).
	Burst      int
	Forgive    time.Duration
	Lockout    time.Duration
	MaxLockout time.Duration
	// AccountAddr is the rule per account and address: it locks first, so
	// an address guessing one account is stopped on that account alone.
	AccountAddr Rule
	// Account is the rule per account across addresses, counting only
	// failures from addresses the account has not signed in from within
	// Familiar; its lock refuses only such addresses, so the account's
	// owner keeps signing in from where they usually do.
	Account  Rule
	Familiar time.Duration
	// MaxAddrs bounds the keys each of the three tables tracks at once (and
	// so the memory used: about 250 bytes a key).
	MaxAddrs int
	// OnLock, when set, is called (outside the limiter's lock) each time a
	// failure locks a key; the server audits it as "alert.lockout".
	OnLock func(Lock)
}

// DefaultLimiterConfig: an address may fail 10 times in a row, is forgiven
// one failure a minute and is then locked for 15 minutes, doubling up to a
// day; an account at one address may fail 5 times, is forgiven one a minute,
// and is locked for a minute, doubling up to an hour; an account may fail 50
// times from addresses it has not signed in from in 30 days, is forgiven one
// failure every 6 minutes, and is then locked for such addresses for 15
// minutes, doubling up to 4 hours.
var DefaultLimiterConfig = LimiterConfig{
	Burst: 10, Forgive: time.Minute, Lockout: 15 * time.Minute, MaxLockout: 24 * time.Hour,
	AccountAddr: Rule{Burst: 5, Forgive: time.Minute, Lockout: time.Minute, MaxLockout: time.Hour},
	Account:     Rule{Burst: 50, Forgive: 6 * time.Minute, Lockout: 15 * time.Minute, MaxLockout: 4 * time.Hour},
	Familiar:    30 * 24 * time.Hour,
	MaxAddrs:    100_000,
}

// Lock scopes.
const (
	LockAddress     = "address"         // every login from the address
	LockAccountAddr = "account+address" // the account, from that address
	LockAccount     = "account"         // the account, from unfamiliar addresses
)

// Lock describes a lock a failure has just set.
type Lock struct {
	Scope    string // LockAddress, LockAccountAddr or LockAccount
	Account  string // normalised account name ("" for LockAddress)
	Addr     string // the address key (AddrKey)
	Remote   string // the remote address of the failure that locked
	Protocol string
	For      time.Duration
	Strike   int // 1 for the first lock, 2 for the second (twice as long) …
}

// Attempt names a login attempt: the account tried (an email; "" when the
// attempt names none, e.g. a bearer token), where it comes from ("host:port"
// or a bare host) and over which protocol ("https", "sftp").
type Attempt struct {
	Account  string
	Remote   string
	Protocol string
}

// Limiter is the brute-force defence shared by every login path (web login,
// token endpoint, bearer tokens, SFTP). It counts failures in three
// token buckets (golang.org/x/time/rate): per address, per account and
// address, and per account from unfamiliar addresses. A locked attempt is
// refused before any password is hashed, so an attacker's guesses cost the
// server almost nothing and other users' logins are not slowed down.
//
// An attacker hammering one account from one address locks that pair after
// AccountAddr.Burst failures, and the address after Burst failures across
// accounts; neither lock touches the account from other addresses. Only
// failures from many addresses lock the account itself, and then only for
// addresses it has not recently signed in from.
//
// Every method is O(1) under one mutex (pruning a full table is amortised);
// memory is bounded by MaxAddrs per table. IPv4 addresses are tracked one by
// one; IPv6 addresses by their /64 prefix, the smallest block one client
// normally holds.
type Limiter struct {
	cfg LimiterConfig
	now func() time.Time

	mu       sync.Mutex
	addr     table
	pair     table
	account  table
	familiar map[string]*familiar
}

type familiar struct {
	addrs [4]string
	at    [4]time.Time
}

type table struct {
	rule Rule
	m    map[string]*limitEntry
}

type limitEntry struct {
	lim     *rate.Limiter // failure budget; frozen (limit 0) while locked
	until   time.Time     // locked until
	frozen  bool
	strikes int // locks since the bucket was last full
}

func (r Rule) withDefaults(d Rule) Rule {
	if r.Burst <= 0 {
		r.Burst = d.Burst
	}
	if r.Forgive <= 0 {
		r.Forgive = d.Forgive
	}
	if r.Lockout <= 0 {
		r.Lockout = d.Lockout
	}
	if r.MaxLockout < r.Lockout {
		r.MaxLockout = max(d.MaxLockout, r.Lockout)
	}
	return r
}

// NewLimiter returns a Limiter; now is its clock.
func NewLimiter(cfg LimiterConfig, now func() time.Time) *Limiter {
	d := DefaultLimiterConfig
	a := Rule{cfg.Burst, cfg.Forgive, cfg.Lockout, cfg.MaxLockout}.withDefaults(Rule{d.Burst, d.Forgive, d.Lockout, d.MaxLockout})
	cfg.Burst, cfg.Forgive, cfg.Lockout, cfg.MaxLockout = a.Burst, a.Forgive, a.Lockout, a.MaxLockout
	cfg.AccountAddr = cfg.AccountAddr.withDefaults(d.AccountAddr)
	cfg.Account = cfg.Account.withDefaults(d.Account)
	if cfg.Familiar <= 0 {
		cfg.Familiar = d.Familiar
	}
	if cfg.MaxAddrs <= 0 {
		cfg.MaxAddrs = d.MaxAddrs
	}
	return &Limiter{cfg: cfg, now: now,
		addr:     table{rule: a, m: map[string]*limitEntry{}},
		pair:     table{rule: cfg.AccountAddr, m: map[string]*limitEntry{}},
		account:  table{rule: cfg.Account, m: map[string]*limitEntry{}},
		familiar: map[string]*familiar{},
	}
}

// AddrKey returns the key under which a remote address ("host:port" or a
// bare host) is limited: the IPv4 address, or the /64 of an IPv6 address.
func AddrKey(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return clip(host, 100)
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// accountKey normalises an account name as the logins do (lower case,
// trimmed), bounded in length.
func accountKey(account string) string { return clip(normEmail(account), 320) }

// settle unfreezes a bucket whose lock has ended (its refill starts at the
// lock's end) and forgets the strikes of one that has refilled.
func (t *table) settle(e *limitEntry, now time.Time) {
	if e.frozen && !now.Before(e.until) {
		e.lim.SetLimitAt(e.until, rate.Every(t.rule.Forgive))
		e.frozen = false
	}
	if !e.frozen && e.lim.TokensAt(now) >= float64(t.rule.Burst) {
		e.strikes = 0
	}
}

// locked returns how long key has left locked in t (0: not locked).
func (t *table) locked(key string, now time.Time) time.Duration {
	e := t.m[key]
	if e == nil || !now.Before(e.until) {
		return 0
	}
	return e.until.Sub(now)
}

// fail counts a failure against key and returns the lock it set, if any.
func (t *table) fail(key string, now time.Time, maxKeys int) (d time.Duration, strike int) {
	e := t.m[key]
	if e == nil {
		if len(t.m) >= maxKeys {
			t.prune(now, maxKeys)
		}
		e = &limitEntry{lim: rate.NewLimiter(rate.Every(t.rule.Forgive), t.rule.Burst)}
		t.m[key] = e
	}
	t.settle(e, now)
	if now.Before(e.until) {
		return 0, 0 // already locked (a check raced the lock)
	}
	e.lim.AllowN(now, 1)
	if e.lim.TokensAt(now) >= 1 {
		return 0, 0
	}
	d = t.rule.Lockout
	for i := 0; i < e.strikes && d < t.rule.MaxLockout; i++ {
		d *= 2
	}
	d = min(d, t.rule.MaxLockout)
	e.strikes++
	e.until = now.Add(d)
	e.lim.SetLimitAt(now, 0)
	e.frozen = true
	return d, e.strikes
}

// prune drops idle records (bucket full, not locked) and, if the table is
// still over 90 % full, unlocked ones, then arbitrary ones: a flood of new
// keys can only evict a locked one when the table is full of locked keys.
func (t *table) prune(now time.Time, maxKeys int) {
	low := maxKeys * 9 / 10
	for k, e := range t.m {
		t.settle(e, now)
		if !e.frozen && e.strikes == 0 && e.lim.TokensAt(now) >= float64(t.rule.Burst) {
			delete(t.m, k)
		}
	}
	for k, e := range t.m {
		if len(t.m) < low {
			return
		}
		if !now.Before(e.until) {
			delete(t.m, k)
		}
	}
	for k := range t.m {
		if len(t.m) < low {
			return
		}
		delete(t.m, k)
	}
}

func (l *Limiter) isFamiliar(acct, addr string, now time.Time) bool {
	f := l.familiar[acct]
	if f == nil {
		return false
	}
	for i, a := range f.addrs {
		if a == addr && now.Sub(f.at[i]) < l.cfg.Familiar {
			return true
		}
	}
	return false
}

// Check reports whether an attempt may proceed, and if not, how long the
// longest lock that refuses it has left. It counts nothing.
func (l *Limiter) Check(a Attempt) (ok bool, retryAfter time.Duration) {
	addr, acct := AddrKey(a.Remote), accountKey(a.Account)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	wait := l.addr.locked(addr, now)
	if acct != "" {
		wait = max(wait, l.pair.locked(acct+"\x00"+addr, now))
		if d := l.account.locked(acct, now); d > 0 && !l.isFamiliar(acct, addr, now) {
			wait = max(wait, d)
		}
	}
	return wait == 0, wait
}

// Failure counts a failed attempt in every bucket it belongs to, and
// returns the locks it set (usually none). Each lock is also passed to
// OnLock.
func (l *Limiter) Failure(a Attempt) []Lock {
	addr, acct := AddrKey(a.Remote), accountKey(a.Account)
	now := l.now()
	var locks []Lock
	add := func(scope, account string, d time.Duration, strike int) {
		if d > 0 {
			locks = append(locks, Lock{Scope: scope, Account: account, Addr: addr, Remote: a.Remote, Protocol: a.Protocol, For: d, Strike: strike})
		}
	}
	l.mu.Lock()
	if acct != "" {
		d, n := l.pair.fail(acct+"\x00"+addr, now, l.cfg.MaxAddrs)
		add(LockAccountAddr, acct, d, n)
		if !l.isFamiliar(acct, addr, now) {
			d, n := l.account.fail(acct, now, l.cfg.MaxAddrs)
			add(LockAccount, acct, d, n)
		}
	}
	d, n := l.addr.fail(addr, now, l.cfg.MaxAddrs)
	add(LockAddress, "", d, n)
	l.mu.Unlock()
	if l.cfg.OnLock != nil {
		for _, lk := range locks {
			l.cfg.OnLock(lk)
		}
	}
	return locks
}

// Success records a successful login: the address becomes familiar to the
// account (the account's own lock does not refuse it) and the account's
// failures from that address are forgotten. The address's own count stands:
// one success behind a shared address does not excuse its other failures.
func (l *Limiter) Success(a Attempt) {
	addr, acct := AddrKey(a.Remote), accountKey(a.Account)
	if acct == "" {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.pair.m, acct+"\x00"+addr)
	f := l.familiar[acct]
	if f == nil {
		if len(l.familiar) >= l.cfg.MaxAddrs {
			l.pruneFamiliar(now)
		}
		f = &familiar{}
		l.familiar[acct] = f
	}
	oldest := 0
	for i, x := range f.addrs {
		if x == addr {
			oldest = i
			break
		}
		if f.at[i].Before(f.at[oldest]) {
			oldest = i
		}
	}
	f.addrs[oldest], f.at[oldest] = addr, now
}

func (l *Limiter) pruneFamiliar(now time.Time) {
	for k, f := range l.familiar {
		if !l.isFamiliar(k, f.addrs[0], now) && !l.isFamiliar(k, f.addrs[1], now) && !l.isFamiliar(k, f.addrs[2], now) && !l.isFamiliar(k, f.addrs[3], now) {
			delete(l.familiar, k)
		}
	}
	for k := range l.familiar {
		if len(l.familiar) < l.cfg.MaxAddrs*9/10 {
			return
		}
		delete(l.familiar, k)
	}
}

// Allow reports whether a login attempt from the address key (see AddrKey)
// may proceed, by the address's own bucket only; it is Check without an
// account, for callers that have none.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.addr.locked(key, now)
	return d == 0, d
}

// Fail records a failed login from the address key without an account (as
// Failure with no account). It reports whether this failure locked the
// address out, and for how long.
func (l *Limiter) Fail(key string) (locked bool, lockout time.Duration) {
	for _, lk := range l.Failure(Attempt{Remote: key}) {
		if lk.Scope == LockAddress {
			return true, lk.For
		}
	}
	return false, 0
}

// Locked returns the number of keys (addresses, account and address pairs,
// accounts) currently locked.
func (l *Limiter) Locked() int {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, t := range []*table{&l.addr, &l.pair, &l.account} {
		for _, e := range t.m {
			if now.Before(e.until) {
				n++
			}
		}
	}
	return n
}

// String says in words what the lock refuses, for audit details.
func (lk Lock) String() string {
	var b strings.Builder
	switch lk.Scope {
	case LockAddress:
		b.WriteString("address " + lk.Addr)
	case LockAccountAddr:
		b.WriteString("account " + quoteName(lk.Account) + " from address " + lk.Addr)
	default:
		b.WriteString("account " + quoteName(lk.Account) + " from addresses it has not signed in from recently")
	}
	b.WriteString(" locked for " + lk.For.String() + " after repeated failed logins")
	if lk.Strike > 1 {
		b.WriteString(" (lock " + strconv.Itoa(lk.Strike) + " in a row)")
	}
	return b.String()
}
