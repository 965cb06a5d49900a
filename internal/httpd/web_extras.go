package httpd

import "net/http"

// accountExtras returns page data for the account page's second-factor and
// passkey blocks (filled in by the TOTP and passkey code).
func (h *public) accountExtras(r *http.Request, wr *webReq) (any, error) {
	return nil, nil
}
