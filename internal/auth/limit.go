package auth

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// LimiterConfig tunes a Limiter. Zero fields take the defaults of
// DefaultLimiterConfig.
type LimiterConfig struct {
	// Burst is how many failed logins an address may make in a row before it
	// is locked out.
	Burst int
	// Forgive is how long it takes for one failure to be forgotten: an
	// address may fail once per Forgive indefinitely without a lockout.
	Forgive time.Duration
	// Lockout is how long the first lockout lasts; each further lockout
	// before the address's record has drained doubles it, up to MaxLockout.
	Lockout    time.Duration
	MaxLockout time.Duration
	// MaxAddrs bounds the addresses tracked at once (and so the memory used).
	MaxAddrs int
}

// DefaultLimiterConfig allows 10 failures in a row, forgets one a minute, and
// locks an address out for 15 minutes, doubling up to a day.
var DefaultLimiterConfig = LimiterConfig{Burst: 10, Forgive: time.Minute, Lockout: 15 * time.Minute, MaxLockout: 24 * time.Hour, MaxAddrs: 100_000}

// Limiter is the brute-force defence shared by every login path (SFTP now,
// the web login later): it counts failed logins per client address and locks
// out an address that fails too often. A locked-out address is refused before
// any password is hashed, so an attacker's guesses cost the server almost
// nothing and other users' logins are not slowed down. Allow and Fail are
// O(1) under one mutex; memory is bounded by MaxAddrs.
//
// IPv4 addresses are tracked one by one; IPv6 addresses by their /64 prefix,
// the smallest block one client normally holds.
type Limiter struct {
	cfg LimiterConfig
	now func() time.Time

	mu sync.Mutex
	m  map[string]*limitEntry
}

type limitEntry struct {
	level   int       // failures not yet forgiven
	at      time.Time // when level was last decayed
	until   time.Time // locked out until
	strikes int       // lockouts since the level last drained
}

// NewLimiter returns a Limiter; now is its clock.
func NewLimiter(cfg LimiterConfig, now func() time.Time) *Limiter {
	d := DefaultLimiterConfig
	if cfg.Burst <= 0 {
		cfg.Burst = d.Burst
	}
	if cfg.Forgive <= 0 {
		cfg.Forgive = d.Forgive
	}
	if cfg.Lockout <= 0 {
		cfg.Lockout = d.Lockout
	}
	if cfg.MaxLockout < cfg.Lockout {
		cfg.MaxLockout = max(d.MaxLockout, cfg.Lockout)
	}
	if cfg.MaxAddrs <= 0 {
		cfg.MaxAddrs = d.MaxAddrs
	}
	return &Limiter{cfg: cfg, now: now, m: map[string]*limitEntry{}}
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
		return host
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// decay forgets one failure per Forgive that has passed since e was last
// decayed, not counting time spent locked out.
func (l *Limiter) decay(e *limitEntry, now time.Time) {
	from := e.at
	if e.until.After(from) {
		from = e.until
	}
	if n := int(now.Sub(from) / l.cfg.Forgive); n > 0 {
		e.level = max(0, e.level-n)
		e.at = from.Add(time.Duration(n) * l.cfg.Forgive)
	}
	if e.level == 0 && !now.Before(e.until) {
		e.strikes = 0
	}
}

// Allow reports whether a login attempt from the address (see AddrKey) may
// proceed, and if not, how long the lockout has left.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.m[key]
	if e == nil {
		return true, 0
	}
	if now.Before(e.until) {
		return false, e.until.Sub(now)
	}
	return true, 0
}

// Fail records a failed login from the address. It reports whether this
// failure locked the address out, and for how long.
func (l *Limiter) Fail(key string) (locked bool, lockout time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.m[key]
	if e == nil {
		if len(l.m) >= l.cfg.MaxAddrs {
			l.pruneLocked(now)
		}
		e = &limitEntry{at: now}
		l.m[key] = e
	}
	l.decay(e, now)
	e.level++
	if e.level < l.cfg.Burst || now.Before(e.until) {
		return false, 0
	}
	d := l.cfg.Lockout
	for i := 0; i < e.strikes && d < l.cfg.MaxLockout; i++ {
		d *= 2
	}
	d = min(d, l.cfg.MaxLockout)
	e.strikes++
	e.until = now.Add(d)
	return true, d
}

// Locked returns the number of addresses currently locked out.
func (l *Limiter) Locked() int {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.m {
		if now.Before(e.until) {
			n++
		}
	}
	return n
}

// pruneLocked drops drained records and, if the map is still full, arbitrary
// unlocked ones, then arbitrary ones.
func (l *Limiter) pruneLocked(now time.Time) {
	for k, e := range l.m {
		l.decay(e, now)
		if e.level == 0 && !now.Before(e.until) {
			delete(l.m, k)
		}
	}
	for k, e := range l.m {
		if len(l.m) < l.cfg.MaxAddrs*9/10 {
			return
		}
		if !now.Before(e.until) {
			delete(l.m, k)
		}
	}
	for k := range l.m {
		if len(l.m) < l.cfg.MaxAddrs*9/10 {
			return
		}
		delete(l.m, k)
	}
}
