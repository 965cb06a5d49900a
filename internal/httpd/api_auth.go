package httpd

import (
	"net/http"
	"strconv"
	"time"

	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/ferry"
)

// The token endpoint and the self-service API: a user's own API tokens and
// sessions.

// limited refuses an attempt the limiter has locked (429 with Retry-After).
func limited(w http.ResponseWriter, lim *auth.Limiter, a auth.Attempt) error {
	if lim == nil {
		return nil
	}
	if ok, wait := lim.Check(a); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		return ferry.E("httpd.limited", ferry.Quota, "too many failed sign-ins; try again later")
	}
	return nil
}

// counted reports the outcome of a password attempt to the limiter: a wrong
// password (or unknown user) or a wrong second factor is a failure; a
// success makes the address familiar to the account.
func counted(lim *auth.Limiter, a auth.Attempt, err error) {
	switch {
	case lim == nil:
	case err == nil:
		lim.Success(a)
	case err == auth.ErrLoginFailed || err == auth.ErrSecondFactor:
		lim.Failure(a)
	}
}

type tokenJSON struct {
	ID       string     `json:"id"`
	Name     string     `json:"name"`
	Scope    string     `json:"scope"`
	Created  time.Time  `json:"created"`
	Expires  *time.Time `json:"expires,omitempty"`
	LastUsed *time.Time `json:"last_used,omitempty"`
}

func toTokenJSON(t *ferry.Token) tokenJSON {
	j := tokenJSON{ID: t.ID, Name: t.Name, Scope: t.Scope.String(), Created: t.Created}
	if !t.Expires.IsZero() {
		j.Expires = &t.Expires
	}
	if !t.LastUsed.IsZero() {
		j.LastUsed = &t.LastUsed
	}
	return j
}

type newTokenJSON struct {
	Token   string    `json:"token"`
	ID      string    `json:"id"`
	Scope   string    `json:"scope"`
	Expires time.Time `json:"expires"`
}

// defaultTokenTTL is the lifetime of a token whose request names none.
const defaultTokenTTL = 30 * 24 * time.Hour

func tokenTTL(expiresIn *int64) (time.Duration, error) {
	if expiresIn == nil {
		return defaultTokenTTL, nil
	}
	if *expiresIn < 60 || *expiresIn > 366*24*3600 {
		return 0, ferry.E("httpd.tokenTTL", ferry.Invalid, "expires_in must be between 60 seconds and a year (in seconds)")
	}
	return time.Duration(*expiresIn) * time.Second, nil
}

// issueToken handles POST /api/v1/auth/token: an API token for an email and
// password (and a TOTP code when a second factor is due).
func (h *public) issueToken(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Email     string `json:"email"`
		Password  string `json:"password"`
		TOTP      string `json:"totp"`
		Name      string `json:"name"`
		Scope     string `json:"scope"`
		ExpiresIn *int64 `json:"expires_in"`
	}
	if err := decodeJSON(w, r, 16<<10, &req); err != nil {
		return err
	}
	if req.Scope == "" {
		req.Scope = "read"
	}
	scope, err := ferry.ParseScope(req.Scope)
	if err != nil {
		return err
	}
	ttl, err := tokenTTL(req.ExpiresIn)
	if err != nil {
		return err
	}
	remote := remoteHost(r)
	a := auth.Attempt{Account: req.Email, Remote: remote, Protocol: "https"}
	if err := limited(w, h.cfg.Limiter, a); err != nil {
		return err
	}
	tok, t, err := h.auth.IssueToken(r.Context(), auth.TokenRequest{Email: req.Email, Password: req.Password, TOTP: req.TOTP,
		Name: req.Name, Scope: scope, TTL: ttl}, auth.Client{Remote: remote, UserAgent: r.UserAgent()})
	counted(h.cfg.Limiter, a, err)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, newTokenJSON{Token: tok, ID: t.ID, Scope: t.Scope.String(), Expires: t.Expires})
	return nil
}

func (h *public) listTokens(w http.ResponseWriter, r *http.Request) error {
	ts, err := h.auth.Tokens(r.Context(), principalFrom(r.Context()))
	if err != nil {
		return err
	}
	out := struct {
		Tokens []tokenJSON `json:"tokens"`
	}{Tokens: []tokenJSON{}}
	for _, t := range ts {
		out.Tokens = append(out.Tokens, toTokenJSON(t))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// createOwnToken handles POST /api/v1/tokens: a new token for the caller,
// no wider than the token that asks.
func (h *public) createOwnToken(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name      string `json:"name"`
		Scope     string `json:"scope"`
		ExpiresIn *int64 `json:"expires_in"`
	}
	if err := decodeJSON(w, r, 16<<10, &req); err != nil {
		return err
	}
	scope, err := ferry.ParseScope(req.Scope)
	if err != nil {
		return err
	}
	ttl, err := tokenTTL(req.ExpiresIn)
	if err != nil {
		return err
	}
	tok, t, err := h.auth.CreateOwnToken(r.Context(), principalFrom(r.Context()), req.Name, scope, ttl)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, newTokenJSON{Token: tok, ID: t.ID, Scope: t.Scope.String(), Expires: t.Expires})
	return nil
}

func (h *public) deleteOwnToken(w http.ResponseWriter, r *http.Request) error {
	if err := h.auth.RevokeOwnToken(r.Context(), principalFrom(r.Context()), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type sessionJSON struct {
	ID        string    `json:"id"`
	Created   time.Time `json:"created"`
	LastSeen  time.Time `json:"last_seen"`
	Expires   time.Time `json:"expires"`
	Remote    string    `json:"remote"`
	UserAgent string    `json:"user_agent"`
	Methods   string    `json:"methods"`
}

func (h *public) listSessions(w http.ResponseWriter, r *http.Request) error {
	ss, err := h.auth.Sessions(r.Context(), principalFrom(r.Context()))
	if err != nil {
		return err
	}
	out := struct {
		Sessions []sessionJSON `json:"sessions"`
	}{Sessions: []sessionJSON{}}
	for _, s := range ss {
		out.Sessions = append(out.Sessions, sessionJSON{ID: s.ID, Created: s.Created, LastSeen: s.LastSeen, Expires: s.Expires,
			Remote: s.Remote, UserAgent: s.UserAgent, Methods: s.Methods})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *public) deleteSession(w http.ResponseWriter, r *http.Request) error {
	if err := h.auth.RevokeSession(r.Context(), principalFrom(r.Context()), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
