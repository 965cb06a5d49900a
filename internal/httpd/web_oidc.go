package httpd

// ssoRoutes is the route table of single sign-on (OpenID Connect).
func (h *public) ssoRoutes() []route { return nil }
