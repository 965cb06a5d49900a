package httpd

import "net/http"

// accountExtras returns page data for the account page's second-factor and
// passkey blocks (web/templates/account-mfa.html, account-passkeys.html): what
// the user has enrolled and, after a POST of web_mfa.go, a pending TOTP
// enrolment, new recovery codes or an error.
func (h *public) accountExtras(r *http.Request, wr *webReq) (any, error) {
	m, err := h.mfaData(r.Context(), wr.p)
	if err != nil {
		return nil, err
	}
	if st, ok := r.Context().Value(accountStateKey{}).(*accountState); ok {
		m.setEnrol(st.enrol)
		m.RecoveryCodes, m.Error, m.PasskeyError = st.codes, st.err, st.passkeyErr
	}
	return m, nil
}
