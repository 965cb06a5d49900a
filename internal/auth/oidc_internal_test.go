package auth

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// TestVerifyIDToken checks Ferry's verification of ID tokens against tokens
// signed here with a test key: each rejection the provider itself cannot be
// made to produce in the end-to-end test, and the ones it can, directly.
func TestVerifyIDToken(t *testing.T) {
	const issuer, client = "https://idp.acme.test", "ferry"
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	sign := func(k *rsa.PrivateKey, claims map[string]any) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k}, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(claims)
		jws, err := s.Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	good := func() map[string]any {
		return map[string]any{"iss": issuer, "sub": "u1", "aud": client, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
			"nonce": "n-1", "email": "Alice@Acme.test", "email_verified": true}
	}
	with := func(k string, v any) map[string]any {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	v := oidc.NewVerifier(issuer, &oidc.StaticKeySet{PublicKeys: []crypto.PublicKey{key.Public()}}, &oidc.Config{ClientID: client, Now: func() time.Time { return now }})
	ctx := context.Background()

	c, why, err := verifyIDToken(ctx, v, client, sign(key, good()), sha("n-1"))
	if err != nil || c.Email != "alice@acme.test" || !c.Verified || c.Subject != "u1" {
		t.Fatalf("good token: %+v %q %v", c, why, err)
	}
	if c, _, err := verifyIDToken(ctx, v, client, sign(key, with("email_verified", "true")), sha("n-1")); err != nil || !c.Verified {
		t.Fatalf("email_verified as a string: %+v %v", c, err)
	}
	for _, unverified := range []any{false, "false", nil} {
		if c, _, err := verifyIDToken(ctx, v, client, sign(key, with("email_verified", unverified)), sha("n-1")); err != nil || c.Verified {
			t.Fatalf("email_verified %v: %+v %v", unverified, c, err)
		}
	}

	multi := with("aud", []string{client, "another"})
	multi["azp"] = "another"
	for _, tc := range []struct {
		name, raw, nonce, why string
	}{
		{"expired", sign(key, with("exp", now.Add(-time.Second).Unix())), "n-1", "the ID token expired"},
		{"wrong issuer", sign(key, with("iss", "https://evil.test")), "n-1", "the ID token is from the wrong issuer"},
		{"wrong audience", sign(key, with("aud", "someone-else")), "n-1", "the ID token is for another client (wrong audience)"},
		{"wrong authorized party", sign(key, multi), "n-1", "the ID token is for another client (wrong authorized party)"},
		{"nonce mismatch", sign(key, good()), "n-2", "nonce mismatch"},
		{"no nonce", sign(key, with("nonce", nil)), "n-1", "nonce mismatch"},
		{"signed by another key", sign(other, good()), "n-1", "the ID token is invalid"},
		{"not a JWT", "not.a.token", "n-1", "the ID token is invalid"},
		{"unsigned", unsigned(good()), "n-1", "the ID token is invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, why, err := verifyIDToken(ctx, v, client, tc.raw, sha(tc.nonce))
			if err == nil || c != nil || !strings.HasPrefix(why, tc.why) {
				t.Fatalf("got %+v, why %q, err %v; want why %q", c, why, err, tc.why)
			}
		})
	}
}

// unsigned returns a JWT with "alg": "none".
func unsigned(claims map[string]any) string {
	b, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(b) + "."
}

func TestCheckSSOSpec(t *testing.T) {
	ok := SSOSpec{OrgID: "o", Issuer: "https://idp.acme.test", ClientID: "ferry", ClientSecret: "s", Domains: []string{" Acme.TEST ", "acme.test", ""}, Provision: ProvisionUser}
	if err := CheckSSOSpec(&ok); err != nil || len(ok.Domains) != 1 || ok.Domains[0] != "acme.test" {
		t.Fatalf("good spec: %v %q", err, ok.Domains)
	}
	for name, mod := range map[string]func(*SSOSpec){
		"http issuer":                 func(s *SSOSpec) { s.Issuer = "http://idp.acme.test" },
		"issuer with query":           func(s *SSOSpec) { s.Issuer = "https://idp.acme.test/?x=1" },
		"issuer with user":            func(s *SSOSpec) { s.Issuer = "https://u:p@idp.acme.test" },
		"relative issuer":             func(s *SSOSpec) { s.Issuer = "/idp" },
		"no client id":                func(s *SSOSpec) { s.ClientID = "" },
		"control in client id":        func(s *SSOSpec) { s.ClientID = "a\nb" },
		"no secret":                   func(s *SSOSpec) { s.ClientSecret = "" },
		"bad domain":                  func(s *SSOSpec) { s.Domains = []string{"acme test"} },
		"provisioning without domain": func(s *SSOSpec) { s.Domains = nil },
		"external without party":      func(s *SSOSpec) { s.Provision = ProvisionExternal },
		"unknown provisioning":        func(s *SSOSpec) { s.Provision = "admin" },
	} {
		s := SSOSpec{OrgID: "o", Issuer: "https://idp.acme.test", ClientID: "ferry", ClientSecret: "s", Domains: []string{"acme.test"}, Provision: ProvisionUser}
		mod(&s)
		if err := CheckSSOSpec(&s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	loop := SSOSpec{OrgID: "o", Issuer: "http://127.0.0.1:8080", ClientID: "ferry", ClientSecret: "s"}
	if err := CheckSSOSpec(&loop); err != nil || loop.Provision != ProvisionOff {
		t.Fatalf("loopback http issuer: %v %q", err, loop.Provision)
	}
}
