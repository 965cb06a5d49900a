package httpd

import "net/http"

// publicRoutes is the complete route table of the public listener. It has no
// admin route of any kind (DESIGN invariant 5).
func (h *public) routes(mux *http.ServeMux) {
	mux.Handle("GET /healthz", h.wrap(h.healthz))
	mux.Handle("PUT /api/v1/files/{path...}", h.api(h.putFile))
	mux.Handle("GET /api/v1/files/{path...}", h.api(h.getFile))
	mux.Handle("HEAD /api/v1/files/{path...}", h.api(h.headFile))
	mux.Handle("DELETE /api/v1/files/{path...}", h.api(h.deleteFile))
	mux.Handle("POST /api/v1/files/{path...}", h.api(h.postFile))
	mux.Handle("GET /api/v1/folders/{path...}", h.api(h.listFolder))
	mux.Handle("POST /api/v1/folders/{path...}", h.api(h.createFolder))
	mux.Handle("/", h.wrap(notFound))
}

// adminRoutes is the complete route table of the admin plane, served on the
// admin TCP listener and on the admin socket.
func (h *adminPlane) routes(mux *http.ServeMux) {
	mux.Handle("GET /healthz", h.wrap(h.healthz))
	mux.Handle("GET /metrics", h.metrics.Handler())
	mux.Handle("GET /setup", h.wrap(h.setupForm))
	mux.Handle("POST /setup", h.wrap(h.setup))
	mux.Handle("POST /admin/v1/orgs", h.api(h.createOrg))
	mux.Handle("POST /admin/v1/parties", h.api(h.createParty))
	mux.Handle("POST /admin/v1/users", h.api(h.createUser))
	mux.Handle("POST /admin/v1/users/disable", h.api(h.disableUser))
	mux.Handle("POST /admin/v1/folders", h.api(h.createFolder))
	mux.Handle("POST /admin/v1/grants", h.api(h.grant))
	mux.Handle("POST /admin/v1/tokens", h.api(h.createToken))
	mux.Handle("POST /admin/v1/tokens/revoke", h.api(h.revokeToken))
	mux.Handle("POST /admin/v1/sshkeys", h.api(h.addSSHKey))
	mux.Handle("POST /admin/v1/holds", h.api(h.hold))
	mux.Handle("/", h.wrap(notFound))
}
