package httpd

// mfaRoutes is the route table of the second-factor and passkey pages.
func (h *public) mfaRoutes() []route { return nil }
