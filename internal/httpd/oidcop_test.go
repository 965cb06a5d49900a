package httpd_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/oauth2"
	"golang.org/x/text/language"
)

// The test OpenID provider: zitadel/oidc's example OP (a complete OpenID
// Provider: discovery, JWKS, authorization endpoint with PKCE, its own login
// form, token endpoint, RS256-signed ID tokens), served over HTTP on
// 127.0.0.1 by the test. Only its user store is ours, plus two ways to get
// the answers a correct flow never produces: a storage wrapper that makes the
// OP issue ID tokens with a past expiry (the client's token lifetime), and a
// man in the middle on the token endpoint that substitutes an ID token the
// OP issued to another client.

// opMode changes what the OP issues.
type opMode int32

const (
	opNormal  opMode = iota
	opExpired        // ID tokens expire a minute before they are issued
)

// opUser is one account at the OP; the username is the email.
type opUser struct {
	email    string
	verified bool
}

const opPassword = "op-password-1"

type testOP struct {
	Issuer string
	mode   atomic.Int32
	swap   atomic.Pointer[string] // an ID token to put in token responses
}

type opUsers map[string]*storage.User

func (u opUsers) GetUserByID(id string) *storage.User { return u[id] }
func (u opUsers) GetUserByUsername(name string) *storage.User {
	for _, x := range u {
		if x.Username == name {
			return x
		}
	}
	return nil
}
func (u opUsers) ExampleClientID() string { return storage.ServiceUserID }

// opStorage is the example storage with the test's modes.
type opStorage struct {
	*storage.Storage
	op *testOP
}

type shortClient struct {
	op.Client
}

func (shortClient) IDTokenLifetime() time.Duration { return -time.Minute }

func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err == nil && opMode(s.op.mode.Load()) == opExpired {
		return shortClient{c}, nil
	}
	return c, err
}

// startOP starts the example OP on 127.0.0.1 with the given users and
// clients (client id → redirect URI; every secret is "secret-"+id).
func startOP(t *testing.T, users []opUser, clients map[string]string) *testOP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	top := &testOP{Issuer: "http://" + ln.Addr().String()}
	us := opUsers{}
	for i, u := range users {
		id := "id" + string(rune('a'+i))
		us[id] = &storage.User{ID: id, Username: u.email, Password: opPassword, FirstName: "Test", LastName: u.email,
			Email: u.email, EmailVerified: u.verified, PreferredLanguage: language.English}
	}
	cs := map[string]*storage.Client{}
	for id, redirect := range clients {
		cs[id] = storage.WebClient(id, "secret-"+id, redirect)
	}
	st := &opStorage{Storage: storage.NewStorageWithClients(us, cs), op: top}
	// SetupServer makes its logger the process's default slog logger; the
	// OP's request log is noise here (Ferry's server has its own logger).
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := &http.Server{Handler: top.substitute(exampleop.SetupServer(top.Issuer, st, quiet, false)), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return top
}

func (o *testOP) setMode(m opMode) { o.mode.Store(int32(m)) }

var opFormID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// signIn plays the user's browser at the OP: it opens the authorization URL,
// fills in the OP's login form and returns the URL the OP redirects back to
// (Ferry's callback), without following it.
func (o *testOP) signIn(t *testing.T, authURL, email string) *url.URL {
	t.Helper()
	if !strings.HasPrefix(authURL, o.Issuer+"/") {
		t.Fatalf("authorization URL %q is not at the OP %s", authURL, o.Issuer)
	}
	jar, _ := cookiejar.New(nil)
	var back *url.URL
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(r *http.Request, via []*http.Request) error {
		if !strings.HasPrefix(r.URL.String(), o.Issuer+"/") {
			back = r.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	res, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := opFormID.FindSubmatch(page)
	if res.StatusCode != 200 || m == nil {
		t.Fatalf("OP login form: %d\n%s", res.StatusCode, page)
	}
	res, err = c.PostForm(o.Issuer+"/login/username", url.Values{"id": {string(m[1])}, "username": {email}, "password": {opPassword}})
	if err != nil && !errors.Is(err, http.ErrUseLastResponse) {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if back == nil {
		t.Fatalf("the OP did not redirect back: %d\n%s", res.StatusCode, body)
	}
	return back
}

// substitute replaces the id_token of the OP's token responses with o.swap
// when it is set.
func (o *testOP) substitute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		swap := o.swap.Load()
		if swap == nil || r.URL.Path != "/oauth/token" {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["id_token"] == nil {
			http.Error(w, "test OP: unexpected token response "+rec.Body.String(), http.StatusInternalServerError)
			return
		}
		body["id_token"] = *swap
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(body)
	})
}

// idTokenFor runs a whole authorization code flow at the OP as the client
// clientID (whose redirect URI is redirect) for the user email, and returns
// the ID token the OP issued.
func (o *testOP) idTokenFor(t *testing.T, clientID, redirect, email string) string {
	t.Helper()
	ctx := context.Background()
	p, err := oidc.NewProvider(ctx, o.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	oc := oauth2.Config{ClientID: clientID, ClientSecret: "secret-" + clientID, Endpoint: p.Endpoint(), RedirectURL: redirect, Scopes: []string{oidc.ScopeOpenID, "email"}}
	verifier := oauth2.GenerateVerifier()
	back := o.signIn(t, oc.AuthCodeURL("some-state", oauth2.S256ChallengeOption(verifier), oidc.Nonce("some-nonce")), email)
	tok, err := oc.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("no ID token")
	}
	return raw
}
