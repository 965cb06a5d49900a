package auth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
)

// TestSSODiscoveryRefusesInternalAddresses: an identity provider on this
// machine (as an attacker with admin rights would name to probe the internal
// network: SSRF) is not even connected to unless the operator allow-listed
// its network (outbound-allow); once allow-listed, the same provider is
// accepted.
func TestSSODiscoveryRefusesInternalAddresses(t *testing.T) {
	e := newMFAEnv(t)
	ctx := context.Background()
	var hits atomic.Int64
	var issuer string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": issuer, "authorization_endpoint": issuer + "/authorize", "token_endpoint": issuer + "/token",
			"jwks_uri": issuer + "/keys", "id_token_signing_alg_values_supported": []string{"RS256"},
		})
	}))
	t.Cleanup(srv.Close)
	issuer = srv.URL
	spec := func() auth.SSOSpec {
		return auth.SSOSpec{OrgID: e.org.ID, Issuer: issuer, ClientID: "ferry", ClientSecret: "s3cret", Domains: []string{"acme.test"}}
	}

	for _, allow := range [][]netip.Prefix{nil, {netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}} {
		e.au.SetOutboundAllow(allow)
		err := e.au.SetSSO(ctx, spec())
		if ferry.KindOf(err) != ferry.Invalid || !strings.Contains(ferry.Message(err), "not allow-listed (--outbound-allow)") {
			t.Fatalf("provider on loopback with allow-list %v: %v", allow, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the refused provider was connected to: %d requests", n)
	}
	e.au.SetOutboundAllow([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	if err := e.au.SetSSO(ctx, spec()); err != nil {
		t.Fatalf("allow-listed provider: %v", err)
	}
	if hits.Load() == 0 {
		t.Fatal("the allow-listed provider was not asked for discovery")
	}
}
