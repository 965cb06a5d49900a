package httpd

import (
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"ferry.dev/ferry/internal/auth"
	"golang.org/x/time/rate"
)

// TestLimiterSet: a key runs out after its burst; when the set is full, the
// limiters that recovered go first, so an exhausted key is not forgotten
// (a flood of new keys must not reset the limit of the one being guessed).
func TestLimiterSet(t *testing.T) {
	s := newLimiterSet(rate.Every(time.Hour), 2)
	for i := range 2 {
		if !s.allow("a") {
			t.Fatalf("allow %d refused", i)
		}
	}
	if s.allow("a") || !s.blocked("a") {
		t.Fatal("a key past its burst is still allowed")
	}
	for i := range maxLimiters + 5 {
		s.blocked(strconv.Itoa(i)) // unused keys: recovered
	}
	if len(s.m) > maxLimiters {
		t.Fatalf("%d limiters, want at most %d", len(s.m), maxLimiters)
	}
	if !s.blocked("a") {
		t.Fatal("the exhausted key was dropped to make room")
	}
}

// TestPkgLimitsIPv6: the package guest pages limit an IPv6 client by its
// /64, as the sign-in limiter does; else each of its 2^64 addresses would
// get a fresh budget of bad links.
func TestPkgLimitsIPv6(t *testing.T) {
	gl := newPkgLimits()
	h := (&public{}).guest(gl, nil)
	// limitedFrom reports whether a request from remote is refused by the
	// limits, before the link is looked up (this handler has no transfer
	// service: reaching it panics).
	limitedFrom := func(remote string) (limited bool) {
		defer func() { limited = recover() == nil }()
		r := httptest.NewRequest("GET", "/p/x", nil)
		r.SetPathValue("token", "x")
		r.RemoteAddr = remote
		h.ServeHTTP(httptest.NewRecorder(), r)
		return true
	}
	if limitedFrom("[2001:db8::1]:443") {
		t.Fatal("a fresh address is limited")
	}
	for range 5 {
		gl.bad.allow(auth.AddrKey("2001:db8::1"))
	}
	if !limitedFrom("[2001:db8::1]:443") {
		t.Fatal("an address out of bad links is not limited")
	}
	if !limitedFrom("[2001:db8::99]:443") {
		t.Fatal("another address of the same /64 has a fresh budget")
	}
	if limitedFrom("[2001:db8:0:1::1]:443") {
		t.Fatal("another /64 is limited")
	}
}
