package httpd

import "net/http"

// Re-enabling a user and removing a grant: the admin API calls and the admin
// UI's buttons for them (users page, folders and grants matrix). Both go
// through internal/admin, which checks the principal and audits them
// ("user.enable", "grant.revoke").

// adminUsersRoutes is the admin UI's route table of this file.
func (h *adminPlane) adminUsersRoutes() []route {
	return []route{
		{"POST /admin/orgs/{org}/users/enable", h.page(signedIn, h.userEnable)},
		{"POST /admin/orgs/{org}/grants/revoke", h.page(signedIn, h.grantRevoke)},
	}
}

// enableUser is POST /admin/v1/users/enable {"email": …}.
func (h *adminPlane) enableUser(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Email string `json:"email"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	if err := h.admin.EnableUser(r.Context(), principalFrom(r.Context()), req.Email); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, okJSON{OK: true})
	return nil
}

// revokeGrant is POST /admin/v1/grants/revoke {"org", "email", "path"}.
func (h *adminPlane) revokeGrant(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Org   string `json:"org"`
		Email string `json:"email"`
		Path  string `json:"path"`
	}
	if err := decodeJSON(w, r, jsonLimit, &req); err != nil {
		return err
	}
	if err := h.admin.RevokeGrant(r.Context(), principalFrom(r.Context()), req.Org, req.Email, req.Path); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, okJSON{OK: true})
	return nil
}

func (h *adminPlane) userEnable(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	if err := h.admin.EnableUser(r.Context(), ar.p, r.PostForm.Get("email")); err != nil {
		return h.formError(w, r, ar, "users", "Users", err)
	}
	back(w, r, "users")
	return nil
}

func (h *adminPlane) grantRevoke(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	f := r.PostForm
	if err := h.admin.RevokeGrant(r.Context(), ar.p, r.PathValue("org"), f.Get("email"), f.Get("path")); err != nil {
		return h.formError(w, r, ar, "folders", "Folders and grants", err)
	}
	back(w, r, "folders")
	return nil
}
