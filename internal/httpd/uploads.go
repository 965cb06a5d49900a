package httpd

import (
	"net/http"

	"ferry.dev/ferry/internal/ferry"
)

// Placeholder: the tus handler is being built.
type tusMethods struct{}

func (tusMethods) PostFile(w http.ResponseWriter, r *http.Request)  {}
func (tusMethods) HeadFile(w http.ResponseWriter, r *http.Request)  {}
func (tusMethods) PatchFile(w http.ResponseWriter, r *http.Request) {}
func (tusMethods) DelFile(w http.ResponseWriter, r *http.Request)   {}

func (h *public) tusOptions() http.Handler { return h.wrap(notFound) }
func (h *public) tus(fn http.HandlerFunc) http.Handler {
	return h.wrap(notFound)
}
func (h *public) listUploads(w http.ResponseWriter, r *http.Request) error {
	return ferry.E("httpd", ferry.NotExist, "not yet")
}
func (h *public) openapi(w http.ResponseWriter, r *http.Request) error {
	return ferry.E("httpd", ferry.NotExist, "not yet")
}
func (h *public) me(w http.ResponseWriter, r *http.Request) error {
	return ferry.E("httpd", ferry.NotExist, "not yet")
}
