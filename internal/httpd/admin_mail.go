package httpd

import (
	"net/http"
	"strconv"

	"ferry.dev/ferry/internal/admin"
	"ferry.dev/ferry/internal/ferry"
)

type mailStatusJSON struct {
	Queued int64            `json:"queued"`
	Sent   int64            `json:"sent"`
	Failed int64            `json:"failed"`
	Recent []*admin.MailRow `json:"recent"`
}

// mailStatus is GET /admin/v1/mail[?limit=N]: the outbox's counts and its
// newest rows without bodies (server administrators only; docs/MAIL.md).
func (h *adminPlane) mailStatus(w http.ResponseWriter, r *http.Request) error {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return ferry.E("httpd.mailStatus", ferry.Invalid, "limit must be 1 to 500")
		}
		limit = n
	}
	st, err := h.admin.Mail(r.Context(), principalFrom(r.Context()), limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, mailStatusJSON{Queued: st.Queued, Sent: st.Sent, Failed: st.Failed, Recent: st.Recent})
	return nil
}
