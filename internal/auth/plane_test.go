package auth_test

import (
	"context"
	"testing"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
)

// TestSessionPlanes: a session works only on the plane it was created on,
// and only administrators sign in on the admin plane.
func TestSessionPlanes(t *testing.T) {
	e := newMFAEnv(t)
	ctx := context.Background()
	pub := auth.Client{Remote: "192.0.2.7:1"}
	adm := auth.Client{Remote: "192.0.2.7:1", Plane: ferry.PlaneAdmin}

	// A user (not an administrator) signs in on the public plane only.
	sec, s, err := e.au.Login(ctx, e.user.Email, testPassword, pub)
	if err != nil || s.Plane != ferry.PlanePublic {
		t.Fatalf("public login: %v %+v", err, s)
	}
	if _, _, err := e.au.Login(ctx, e.user.Email, testPassword, adm); err != auth.ErrLoginFailed {
		t.Fatalf("admin-plane login of a user: %v, want ErrLoginFailed", err)
	}
	if _, _, err := e.au.SessionOn(ctx, ferry.PlaneAdmin, sec, "192.0.2.7"); ferry.KindOf(err) != ferry.Unauthenticated {
		t.Fatalf("public session on the admin plane: %v", err)
	}
	if _, _, err := e.au.Session(ctx, sec, "192.0.2.7"); err != nil {
		t.Fatalf("public session on the public plane: %v", err)
	}

	// Raised to administrator: an admin-plane session, refused on the
	// public plane; it stops working when the role is lowered again.
	if err := e.d.SetUserRole(ctx, e.user.ID, ferry.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	asec, as, err := e.au.Login(ctx, e.user.Email, testPassword, adm)
	if err != nil || as.Plane != ferry.PlaneAdmin {
		t.Fatalf("admin login: %v %+v", err, as)
	}
	if _, _, err := e.au.Session(ctx, asec, "192.0.2.7"); ferry.KindOf(err) != ferry.Unauthenticated {
		t.Fatalf("admin session on the public plane: %v", err)
	}
	if _, p, err := e.au.SessionOn(ctx, ferry.PlaneAdmin, asec, "192.0.2.7"); err != nil || p.Role != ferry.RoleAdmin {
		t.Fatalf("admin session on the admin plane: %v", err)
	}
	stored, err := e.d.SessionByID(ctx, as.ID)
	if err != nil || stored.Plane != ferry.PlaneAdmin {
		t.Fatalf("stored plane: %v %+v", err, stored)
	}
	// Passkey and SSO logins (StartSession) of an administrator on the
	// admin plane make an admin-plane session.
	if _, ps, err := e.au.StartSession(ctx, e.user.ID, "passkey x", adm); err != nil || ps.Plane != ferry.PlaneAdmin {
		t.Fatalf("StartSession of an administrator on the admin plane: %v %+v", err, ps)
	}
	if err := e.d.SetUserRole(ctx, e.user.ID, ferry.RoleUser); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.au.SessionOn(ctx, ferry.PlaneAdmin, asec, "192.0.2.7"); ferry.KindOf(err) != ferry.Unauthenticated {
		t.Fatalf("admin session of a demoted user: %v", err)
	}
	// ... and of anyone else are refused.
	if _, _, err := e.au.StartSession(ctx, e.user.ID, "passkey x", adm); err != auth.ErrLoginFailed {
		t.Fatalf("StartSession of a user on the admin plane: %v, want ErrLoginFailed", err)
	}
	var denied int
	for _, ev := range e.events(t) {
		if ev.Action == "auth.login" && ev.Outcome == ferry.OutcomeDenied && ev.Protocol == "admin" {
			denied++
		}
	}
	if denied != 2 {
		t.Fatalf("%d admin-plane denials audited, want 2", denied)
	}
}
