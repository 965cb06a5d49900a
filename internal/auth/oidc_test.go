package auth_test

import (
	"context"
	"testing"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
)

// TestSSORequiredRefusesPasswords checks that an organisation requiring
// single sign-on refuses a correct password, and audits it.
func TestSSORequiredRefusesPasswords(t *testing.T) {
	e := newMFAEnv(t)
	ctx := context.Background()
	c := auth.Client{Remote: "192.0.2.7:1234"}
	if _, _, err := e.au.Login(ctx, e.user.Email, testPassword, c); err != nil {
		t.Fatalf("password login before SSO is required: %v", err)
	}
	pol := ferry.DefaultPolicy(e.org.ID)
	pol.SSORequired = true
	if err := e.d.SetPolicy(ctx, pol); err != nil {
		t.Fatal(err)
	}
	_, sess, err := e.au.Login(ctx, e.user.Email, testPassword, c)
	if sess != nil || ferry.KindOf(err) != ferry.Permission || ferry.Message(err) != "your organisation signs in through single sign-on only" {
		t.Fatalf("password login with SSO required: %v %v", sess, err)
	}
	ev := e.lastEvent(t, "auth.login")
	if ev.Outcome != ferry.OutcomeDenied || ev.Detail != "password: organisation requires single sign-on" || ev.ActorID != e.user.ID {
		t.Fatalf("audit record %+v", ev)
	}
}
