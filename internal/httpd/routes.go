package httpd

import "net/http"

// route is one entry of a route table: a Go 1.22 ServeMux pattern
// ("METHOD /path/{name}") and its handler.
type route struct {
	pattern string
	handler http.Handler
}

// publicRoutes is the complete route table of the public listener. It has no
// admin route of any kind (DESIGN invariant 5). docs/openapi.yaml describes
// every one of them; a test keeps the two equal.
func (h *public) publicRoutes() []route {
	routes := []route{
		{"GET /healthz", h.wrap(h.healthz)},
		{"GET /api/v1/openapi.yaml", h.wrap(h.openapi)},
		{"GET /api/v1/me", h.api(h.me)},
		// Sign-in for API clients and the user's own tokens and sessions
		// (api_auth.go).
		{"POST /api/v1/auth/token", h.wrap(h.issueToken)},
		{"GET /api/v1/tokens", h.api(h.listTokens)},
		{"POST /api/v1/tokens", h.api(h.createOwnToken)},
		{"DELETE /api/v1/tokens/{id}", h.api(h.deleteOwnToken)},
		{"GET /api/v1/sessions", h.api(h.listSessions)},
		{"DELETE /api/v1/sessions/{id}", h.api(h.deleteSession)},
		{"PUT /api/v1/files/{path...}", h.api(h.putFile)},
		{"GET /api/v1/files/{path...}", h.api(h.getFile)},
		{"HEAD /api/v1/files/{path...}", h.api(h.headFile)},
		{"DELETE /api/v1/files/{path...}", h.api(h.deleteFile)},
		{"POST /api/v1/files/{path...}", h.api(h.postFile)},
		{"GET /api/v1/folders/{path...}", h.api(h.listFolder)},
		{"POST /api/v1/folders/{path...}", h.api(h.createFolder)},
		// Resumable uploads: the tus 1.0 protocol (uploads.go).
		{"OPTIONS /api/v1/uploads/{$}", h.tusOptions()},
		{"POST /api/v1/uploads/{$}", h.tus(h.tusd.PostFile)},
		{"GET /api/v1/uploads/{$}", h.api(h.listUploads)},
		{"OPTIONS /api/v1/uploads/{id}", h.tusOptions()},
		{"HEAD /api/v1/uploads/{id}", h.tus(h.tusd.HeadFile)},
		{"PATCH /api/v1/uploads/{id}", h.tus(h.tusd.PatchFile)},
		{"DELETE /api/v1/uploads/{id}", h.tus(h.tusd.DelFile)},
	}
	// Packages (api_packages.go).
	routes = append(routes, h.packageRoutes()...)
	// Share links and folder watches (api_shares.go).
	return append(routes, h.shareAPIRoutes()...)
}

func (h *public) routes(mux *http.ServeMux) {
	for _, rt := range h.publicRoutes() {
		mux.Handle(rt.pattern, rt.handler)
	}
	for _, rt := range h.browserRoutes() {
		mux.Handle(rt.pattern, rt.handler)
	}
	for _, rt := range h.guestRoutes() { // package recipients' pages (guest.go)
		mux.Handle(rt.pattern, rt.handler)
	}
	for _, rt := range h.shareGuestRoutes() { // share-link visitors' pages (guest_shares.go)
		mux.Handle(rt.pattern, rt.handler)
	}
	mux.Handle("/", h.wrap(notFound))
}

// adminRoutes is the complete route table of the admin plane, served on the
// admin TCP listener and on the admin socket.
func (h *adminPlane) adminRoutes() []route {
	return []route{
		{"GET /healthz", h.wrap(h.healthz)},
		{"GET /metrics", h.metrics.Handler()},
		{"GET /setup", h.wrap(h.setupForm)},
		{"POST /setup", h.wrap(h.setup)},
		{"POST /admin/v1/orgs", h.api(h.createOrg)},
		{"POST /admin/v1/parties", h.api(h.createParty)},
		{"POST /admin/v1/users", h.api(h.createUser)},
		{"POST /admin/v1/users/disable", h.api(h.disableUser)},
		{"POST /admin/v1/users/enable", h.api(h.enableUser)},
		{"POST /admin/v1/users/role", h.api(h.setRole)},
		{"POST /admin/v1/users/invite", h.api(h.inviteUser)}, // admin_invite.go
		{"GET /admin/v1/mail", h.api(h.mailStatus)},          // admin_mail.go
		{"POST /admin/v1/folders", h.api(h.createFolder)},
		{"POST /admin/v1/grants", h.api(h.grant)},
		{"POST /admin/v1/grants/revoke", h.api(h.revokeGrant)},
		{"POST /admin/v1/tokens", h.api(h.createToken)},
		{"POST /admin/v1/tokens/revoke", h.api(h.revokeToken)},
		{"POST /admin/v1/sshkeys", h.api(h.addSSHKey)},
		{"POST /admin/v1/holds", h.api(h.hold)},
		{"GET /admin/v1/policies", h.api(h.getPolicy)},
		{"POST /admin/v1/policies", h.api(h.setPolicy)},
		{"POST /admin/v1/sso", h.api(h.setSSO)},
		{"POST /admin/v1/sso/show", h.api(h.showSSO)},
		// The exfiltration guard (admin_guard.go).
		{"GET /admin/v1/guard", h.api(h.guardStatusAPI)},
		{"POST /admin/v1/guard/unfreeze", h.api(h.guardUnfreezeAPI)},
		{"POST /admin/v1/guard/canaries", h.api(h.guardCanariesAPI)},
		{"POST /admin/v1/guard/policy", h.api(h.guardPolicyAPI)},
		{"POST /admin/v1/guard/webhook", h.api(h.guardWebhookAPI)},
		// The impact report and its notifications (admin_impact.go).
		{"GET /admin/v1/impact", h.api(h.impactAPI)},
		{"POST /admin/v1/impact/drafts", h.api(h.impactDraftCreateAPI)},
		{"GET /admin/v1/impact/drafts", h.api(h.impactDraftsAPI)},
		{"POST /admin/v1/impact/drafts/{id}", h.api(h.impactDraftEditAPI)},
		{"POST /admin/v1/impact/drafts/{id}/send", h.api(h.impactDraftSendAPI)},
	}
}

func (h *adminPlane) routes(mux *http.ServeMux) {
	for _, rt := range h.adminRoutes() {
		mux.Handle(rt.pattern, rt.handler)
	}
	if !h.socket { // the admin UI needs TLS for its __Host- cookie
		for _, rt := range h.adminWebRoutes() {
			mux.Handle(rt.pattern, rt.handler)
		}
	}
	mux.Handle("/", h.wrap(notFound))
}
