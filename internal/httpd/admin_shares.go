package httpd

import (
	"net/http"
)

// The admin UI's page of an organisation's share links: every active link,
// who made it, and a button to revoke it (internal/admin, audited by
// transfer).

func (h *adminPlane) adminShareRoutes() []route {
	return []route{
		{"GET /admin/orgs/{org}/shares", h.page(signedIn, h.adminSharesPage)},
		{"POST /admin/orgs/{org}/shares/{id}/revoke", h.page(signedIn, h.adminShareRevoke)},
	}
}

func (h *adminPlane) adminSharesPage(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	d, err := h.orgData(r, ar, "Share links", "shares")
	if err != nil {
		return err
	}
	ss, err := h.admin.Shares(r.Context(), ar.p, r.PathValue("org"))
	if err != nil {
		return err
	}
	var rows []shareJSON
	for _, s := range ss {
		rows = append(rows, toShareJSON(s))
	}
	d.Data = rows
	if r.URL.Query().Get("ok") == "revoked" {
		d.Flash = "The link was revoked; it no longer works."
	}
	return h.show(w, http.StatusOK, "admin-shares", d)
}

func (h *adminPlane) adminShareRevoke(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	if err := h.admin.RevokeShare(r.Context(), ar.p, r.PathValue("org"), r.PathValue("id")); err != nil {
		return err
	}
	back(w, r, "shares?ok=revoked")
	return nil
}
