package auth_test

import (
	"context"
	"testing"

	"ferry.dev/ferry/internal/ferry"
)

// TestDenialsRecordedAfterTheClientLeft: a guesser that drops each
// connection at once (the request's context is cancelled by the time the
// refusal is recorded) still leaves an audit record of the refused token.
func TestDenialsRecordedAfterTheClientLeft(t *testing.T) {
	e := newMFAEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.au.Token(ctx, "ferry_00112233445566778899aabbccddeeff_guess", "203.0.113.9:4000"); ferry.KindOf(err) != ferry.Unauthenticated {
		t.Fatalf("token: %v", err)
	}
	if ev := e.lastEvent(t, "auth.token"); ev.Outcome != ferry.OutcomeDenied || ev.Remote != "203.0.113.9:4000" {
		t.Fatalf("token denial: %+v", ev)
	}
}
