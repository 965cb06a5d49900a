package httpd

import (
	"net/http"

	"ferry.dev/ferry/internal/admin"
)

func (h *adminPlane) setSSO(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Org          string   `json:"org"`
		Issuer       string   `json:"issuer"`
		ClientID     string   `json:"client_id"`
		ClientSecret string   `json:"client_secret"`
		Domains      []string `json:"domains"`
		Provision    string   `json:"provision"`
		Party        string   `json:"party"`
		Disabled     bool     `json:"disabled"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	if err := h.admin.SetSSO(r.Context(), principalFrom(r.Context()), admin.SSOSpec{Org: req.Org, Issuer: req.Issuer, ClientID: req.ClientID,
		ClientSecret: req.ClientSecret, Domains: req.Domains, Provision: req.Provision, Party: req.Party, Disabled: req.Disabled}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, okJSON{OK: true})
	return nil
}

func (h *adminPlane) showSSO(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Org string `json:"org"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	s, err := h.admin.SSO(r.Context(), principalFrom(r.Context()), req.Org)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s)
	return nil
}
