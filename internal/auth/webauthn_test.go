package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
)

// softKey is a software WebAuthn authenticator: one P-256 discoverable
// credential, "none" attestation, user presence and verification always
// given, a signature counter that goes up by one per assertion. Its knobs
// let tests forge what a real browser or authenticator never would.
type softKey struct {
	priv       *ecdsa.PrivateKey
	credID     []byte
	userHandle []byte
	count      uint32

	origin string // the origin the "browser" reports; "" = the RP's
	rpID   string // the RP id hashed into authenticator data; "" = the options'
}

var b64 = base64.RawURLEncoding

func newSoftKey(t *testing.T) *softKey {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	rand.Read(id)
	return &softKey{priv: priv, credID: id}
}

func (k *softKey) clientData(t *testing.T, typ, challenge, origin string) []byte {
	if k.origin != "" {
		origin = k.origin
	}
	b, err := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": origin, "crossOrigin": false})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (k *softKey) authData(rpID string, flags byte, extra []byte) []byte {
	if k.rpID != "" {
		rpID = k.rpID
	}
	h := sha256.Sum256([]byte(rpID))
	out := append(h[:], flags)
	out = binary.BigEndian.AppendUint32(out, k.count)
	return append(out, extra...)
}

// register answers navigator.credentials.create options with a new
// credential.
func (k *softKey) register(t *testing.T, options []byte, origin string) []byte {
	t.Helper()
	var o struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
			RP        struct {
				ID string `json:"id"`
			} `json:"rp"`
			User struct {
				ID string `json:"id"`
			} `json:"user"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(options, &o); err != nil {
		t.Fatalf("creation options %s: %v", options, err)
	}
	uh, err := b64.DecodeString(o.PublicKey.User.ID)
	if err != nil {
		t.Fatal(err)
	}
	k.userHandle = uh
	pub := k.priv.PublicKey
	ecdh, _ := pub.ECDH()
	raw := ecdh.Bytes() // 0x04 || X || Y
	cose, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: raw[1:33], -3: raw[33:65]})
	if err != nil {
		t.Fatal(err)
	}
	att := make([]byte, 16) // AAGUID
	att = binary.BigEndian.AppendUint16(att, uint16(len(k.credID)))
	att = append(att, k.credID...)
	att = append(att, cose...)
	authData := k.authData(o.PublicKey.RP.ID, 0x45, att) // UP, UV, AT
	attObj, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": authData})
	if err != nil {
		t.Fatal(err)
	}
	cd := k.clientData(t, "webauthn.create", o.PublicKey.Challenge, origin)
	b, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(k.credID), "rawId": b64.EncodeToString(k.credID), "type": "public-key",
		"response":               map[string]any{"clientDataJSON": b64.EncodeToString(cd), "attestationObject": b64.EncodeToString(attObj), "transports": []string{"internal"}},
		"clientExtensionResults": map[string]any{},
	})
	return b
}

// assert answers navigator.credentials.get options, counting up first.
func (k *softKey) assert(t *testing.T, options []byte, origin string) []byte {
	t.Helper()
	var o struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
			RPID      string `json:"rpId"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(options, &o); err != nil {
		t.Fatalf("request options %s: %v", options, err)
	}
	k.count++
	authData := k.authData(o.PublicKey.RPID, 0x05, nil) // UP, UV
	cd := k.clientData(t, "webauthn.get", o.PublicKey.Challenge, origin)
	cdh := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, authData...), cdh[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(k.credID), "rawId": b64.EncodeToString(k.credID), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64.EncodeToString(cd), "authenticatorData": b64.EncodeToString(authData),
			"signature": b64.EncodeToString(sig), "userHandle": b64.EncodeToString(k.userHandle)},
		"clientExtensionResults": map[string]any{},
	})
	return b
}

var testRP = auth.RP{ID: "localhost", Origin: "https://localhost:8443"}

// registerKey registers a new soft key for the env's user.
func (e *mfaEnv) registerKey(t *testing.T, name string) *softKey {
	t.Helper()
	ctx := context.Background()
	k := newSoftKey(t)
	opts, cid, err := e.au.BeginPasskeyRegistration(ctx, e.p, "sess-a", testRP)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.au.FinishPasskeyRegistration(ctx, e.p, "sess-a", testRP, cid, name, k.register(t, opts, testRP.Origin), false); err != nil {
		t.Fatal(err)
	}
	return k
}

// passwordless runs a passwordless sign-in with k.
func (e *mfaEnv) passwordless(t *testing.T, k *softKey, rp auth.RP) (*ferry.Session, error) {
	t.Helper()
	ctx := context.Background()
	opts, cid, err := e.au.BeginPasskeyLogin(ctx, testRP)
	if err != nil {
		t.Fatal(err)
	}
	_, s, err := e.au.FinishPasskeyLogin(ctx, rp, cid, k.assert(t, opts, testRP.Origin), auth.Client{Remote: "192.0.2.7:1"})
	return s, err
}

func TestPasskeyRegistration(t *testing.T) {
	ctx := context.Background()
	e := newMFAEnv(t)
	k := e.registerKey(t, "laptop")
	list, err := e.au.Passkeys(ctx, e.p)
	if err != nil || len(list) != 1 || list[0].Name != "laptop" || string(list[0].CredentialID) != string(k.credID) || len(list[0].Transports) != 1 {
		t.Fatalf("Passkeys = %+v %v", list, err)
	}
	if ev := e.lastEvent(t, "auth.passkey.add"); ev.Outcome != ferry.OutcomeOK || !strings.Contains(ev.Detail, `"laptop"`) {
		t.Fatalf("registration audited as %+v", ev)
	}
	if f, _ := e.au.Factors(ctx, e.user.ID); f.Passkeys != 1 {
		t.Fatalf("Factors = %+v", f)
	}

	for _, c := range []struct {
		name    string
		forge   func(k *softKey)
		session string
		rp      auth.RP
		replay  bool
	}{
		{name: "wrong origin", forge: func(k *softKey) { k.origin = "https://evil.example" }},
		{name: "wrong RP id", forge: func(k *softKey) { k.rpID = "evil.example" }},
		{name: "another session", session: "sess-b"},
		{name: "another host", rp: auth.RP{ID: "other.test", Origin: "https://other.test"}},
		{name: "replayed ceremony", replay: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := newSoftKey(t)
			if c.forge != nil {
				c.forge(k)
			}
			opts, cid, err := e.au.BeginPasskeyRegistration(ctx, e.p, "sess-a", testRP)
			if err != nil {
				t.Fatal(err)
			}
			sess, rp := "sess-a", testRP
			if c.session != "" {
				sess = c.session
			}
			if c.rp.ID != "" {
				rp = c.rp
			}
			resp := k.register(t, opts, testRP.Origin)
			if c.replay {
				if _, _, err := e.au.FinishPasskeyRegistration(ctx, e.p, sess, rp, cid, "once", resp, false); err != nil {
					t.Fatal(err)
				}
				resp = newSoftKey(t).register(t, opts, testRP.Origin)
			}
			if _, _, err := e.au.FinishPasskeyRegistration(ctx, e.p, sess, rp, cid, "x", resp, false); ferry.KindOf(err) != ferry.Unauthenticated {
				t.Fatalf("registration accepted: %v", err)
			}
			if ev := e.lastEvent(t, "auth.passkey.add"); ev.Outcome != ferry.OutcomeDenied {
				t.Fatalf("refusal audited as %+v", ev)
			}
		})
	}

	// Remove it.
	if err := e.au.RemovePasskey(ctx, e.p, "nope"); ferry.KindOf(err) != ferry.NotExist {
		t.Fatalf("remove unknown: %v", err)
	}
	if err := e.au.RemovePasskey(ctx, e.p, list[0].ID); err != nil {
		t.Fatal(err)
	}
	if ev := e.lastEvent(t, "auth.passkey.remove"); ev.Outcome != ferry.OutcomeOK {
		t.Fatalf("removal audited as %+v", ev)
	}
	if _, err := e.passwordless(t, k, testRP); err != auth.ErrPasskey {
		t.Fatalf("removed passkey signed in: %v", err)
	}
}

func TestPasskeyLogin(t *testing.T) {
	ctx := context.Background()
	e := newMFAEnv(t)
	k := e.registerKey(t, "laptop")

	s, err := e.passwordless(t, k, testRP)
	if err != nil || s.Stage != ferry.SessionFull || s.UserID != e.user.ID || !strings.HasPrefix(s.Methods, "passkey") {
		t.Fatalf("passwordless login: %+v %v", s, err)
	}
	if ev := e.lastEvent(t, "auth.login"); ev.Outcome != ferry.OutcomeOK || ev.ActorID != e.user.ID {
		t.Fatalf("login audited as %+v", ev)
	}

	refused := func(t *testing.T, want string) {
		t.Helper()
		ev := e.lastEvent(t, "auth.login")
		if ev.Outcome != ferry.OutcomeDenied || !strings.Contains(ev.Detail, want) {
			t.Fatalf("refusal audited as %+v, want %q", ev, want)
		}
	}
	t.Run("wrong origin", func(t *testing.T) {
		k.origin = "https://evil.example"
		defer func() { k.origin = "" }()
		if _, err := e.passwordless(t, k, testRP); err != auth.ErrPasskey {
			t.Fatalf("accepted: %v", err)
		}
		refused(t, "verification failed")
	})
	t.Run("wrong RP id", func(t *testing.T) {
		k.rpID = "evil.example"
		defer func() { k.rpID = "" }()
		if _, err := e.passwordless(t, k, testRP); err != auth.ErrPasskey {
			t.Fatalf("accepted: %v", err)
		}
		refused(t, "verification failed")
	})
	t.Run("finished on another host", func(t *testing.T) {
		if _, err := e.passwordless(t, k, auth.RP{ID: "evil.example", Origin: "https://evil.example"}); err != auth.ErrPasskey {
			t.Fatalf("accepted: %v", err)
		}
		refused(t, "ceremony")
	})
	t.Run("counter regression", func(t *testing.T) {
		if _, err := e.passwordless(t, k, testRP); err != nil { // count moves on
			t.Fatal(err)
		}
		k.count -= 2 // the next assertion repeats the last count
		if _, err := e.passwordless(t, k, testRP); err != auth.ErrPasskey {
			t.Fatalf("accepted: %v", err)
		}
		refused(t, "signature counter")
		k.count -= 3 // and goes below it
		if _, err := e.passwordless(t, k, testRP); err != auth.ErrPasskey {
			t.Fatalf("accepted: %v", err)
		}
		refused(t, "signature counter")
		k.count += 10
	})
	t.Run("replayed assertion", func(t *testing.T) {
		opts, cid, err := e.au.BeginPasskeyLogin(ctx, testRP)
		if err != nil {
			t.Fatal(err)
		}
		resp := k.assert(t, opts, testRP.Origin)
		if _, _, err := e.au.FinishPasskeyLogin(ctx, testRP, cid, resp, auth.Client{}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.au.FinishPasskeyLogin(ctx, testRP, cid, resp, auth.Client{}); err != auth.ErrPasskey {
			t.Fatalf("same ceremony twice: %v", err)
		}
		_, cid2, _ := e.au.BeginPasskeyLogin(ctx, testRP)
		if _, _, err := e.au.FinishPasskeyLogin(ctx, testRP, cid2, resp, auth.Client{}); err != auth.ErrPasskey {
			t.Fatalf("old assertion for a new challenge: %v", err)
		}
	})
	t.Run("tampered signature", func(t *testing.T) {
		opts, cid, _ := e.au.BeginPasskeyLogin(ctx, testRP)
		resp := k.assert(t, opts, testRP.Origin)
		var m map[string]any
		json.Unmarshal(resp, &m)
		r := m["response"].(map[string]any)
		sig, _ := b64.DecodeString(r["signature"].(string))
		sig[len(sig)-1] ^= 1
		r["signature"] = b64.EncodeToString(sig)
		resp, _ = json.Marshal(m)
		if _, _, err := e.au.FinishPasskeyLogin(ctx, testRP, cid, resp, auth.Client{}); err != auth.ErrPasskey {
			t.Fatalf("accepted: %v", err)
		}
	})
	t.Run("unknown credential", func(t *testing.T) {
		stranger := newSoftKey(t)
		stranger.userHandle = []byte(e.user.ID)
		if _, err := e.passwordless(t, stranger, testRP); err != auth.ErrPasskey {
			t.Fatalf("accepted: %v", err)
		}
		refused(t, "unknown credential")
	})
	t.Run("another user's handle", func(t *testing.T) {
		saved := k.userHandle
		k.userHandle = []byte(ferry.NewID(nil))
		defer func() { k.userHandle = saved }()
		if _, err := e.passwordless(t, k, testRP); err != auth.ErrPasskey {
			t.Fatalf("accepted: %v", err)
		}
	})
	t.Run("passkeys off", func(t *testing.T) {
		pol, _ := e.d.Policy(ctx, e.org.ID)
		pol.Passkeys = ferry.PasskeysOff
		if err := e.d.SetPolicy(ctx, pol); err != nil {
			t.Fatal(err)
		}
		defer func() {
			pol.Passkeys = ferry.PasskeysAllowed
			e.d.SetPolicy(ctx, pol)
		}()
		if _, err := e.passwordless(t, k, testRP); err != auth.ErrPasskey {
			t.Fatalf("accepted: %v", err)
		}
		refused(t, "organisation does not use passkeys")
		if _, _, err := e.au.BeginPasskeyRegistration(ctx, e.p, "s", testRP); ferry.KindOf(err) != ferry.Permission {
			t.Fatalf("registration with passkeys off: %v", err)
		}
		// Nor do passkeys count as a second factor then.
		if _, s, err := e.au.Login(ctx, e.user.Email, testPassword, auth.Client{}); err != nil || s.Stage != ferry.SessionFull {
			t.Fatalf("password login with passkeys off: %+v %v", s, err)
		}
	})
}

func TestPasskeySecondFactor(t *testing.T) {
	ctx := context.Background()
	e := newMFAEnv(t)
	k := e.registerKey(t, "key")
	_, sess, err := e.au.Login(ctx, e.user.Email, testPassword, auth.Client{Remote: "192.0.2.7:1"})
	if err != nil || sess.Stage != ferry.SessionMFA {
		t.Fatalf("password login with a passkey: %+v %v", sess, err)
	}
	// A ceremony begun by one session cannot be finished by another.
	_, other, _ := e.au.Login(ctx, e.user.Email, testPassword, auth.Client{Remote: "192.0.2.7:1"})
	opts, cid, err := e.au.BeginPasskeyMFA(ctx, sess, testRP)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(opts), b64.EncodeToString(k.credID)) {
		t.Fatalf("options do not list the user's passkey: %s", opts)
	}
	if _, _, err := e.au.FinishPasskeyMFA(ctx, other, testRP, cid, k.assert(t, opts, testRP.Origin), auth.Client{}); err != auth.ErrPasskey {
		t.Fatalf("finished by another session: %v", err)
	}
	opts, cid, _ = e.au.BeginPasskeyMFA(ctx, sess, testRP)
	k.origin = "https://evil.example"
	if _, _, err := e.au.FinishPasskeyMFA(ctx, sess, testRP, cid, k.assert(t, opts, testRP.Origin), auth.Client{}); err != auth.ErrPasskey {
		t.Fatalf("wrong origin: %v", err)
	}
	k.origin = ""
	opts, cid, _ = e.au.BeginPasskeyMFA(ctx, sess, testRP)
	_, full, err := e.au.FinishPasskeyMFA(ctx, sess, testRP, cid, k.assert(t, opts, testRP.Origin), auth.Client{})
	if err != nil || full.Stage != ferry.SessionFull || full.Methods != "password+passkey" || full.ID == sess.ID {
		t.Fatalf("second factor: %+v %v", full, err)
	}
	// The MFA-stage session is gone.
	if _, _, err := e.au.BeginPasskeyMFA(ctx, full, testRP); err == nil {
		t.Fatal("BeginPasskeyMFA on a full session")
	}
}

func TestRPFromHost(t *testing.T) {
	for host, want := range map[string]string{
		"localhost:8443":       "localhost",
		"Ferry.Example.com":    "ferry.example.com",
		"127.0.0.1:8443":       "",
		"[::1]:8443":           "",
		"":                     "",
		"a/b":                  "",
		"user@ferry.example":   "",
		"ferry.example.com:44": "ferry.example.com",
	} {
		rp, err := auth.RPFromHost(host)
		if rp.ID != want || (err == nil) != (want != "") {
			t.Errorf("RPFromHost(%q) = %+v %v, want %q", host, rp, err, want)
		}
	}
}
