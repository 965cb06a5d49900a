package httpd

import (
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"ferry.dev/ferry/internal/admin"
	"ferry.dev/ferry/internal/ferry"
)

// The admin UI's organisation pages: organisations, users, parties, folders
// and grants, tokens, policy. Every POST calls internal/admin.

func (h *adminPlane) orgsPage(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	d := ar.data("Organisations", "orgs")
	var err error
	if d.Orgs, err = h.admin.Orgs(r.Context(), ar.p); err != nil {
		return err
	}
	return h.show(w, http.StatusOK, "orgs", d)
}

func (h *adminPlane) orgCreate(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	o, err := h.admin.CreateOrg(r.Context(), ar.p, strings.TrimSpace(r.PostForm.Get("name")))
	if k := ferry.KindOf(err); k == ferry.Invalid || k == ferry.Exist || k == ferry.Permission {
		d := ar.data("Organisations", "orgs")
		if d.Orgs, err = h.admin.Orgs(r.Context(), ar.p); err != nil {
			return err
		}
		d.Error = ferry.Message(err)
		return h.show(w, statusOf(k), "orgs", d)
	} else if err != nil {
		return err
	}
	http.Redirect(w, r, "/admin/orgs/"+url.PathEscape(o.Name)+"/users", http.StatusSeeOther)
	return nil
}

func (h *adminPlane) orgPage(page, title string) adminPageFunc {
	return func(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
		d, err := h.orgData(r, ar, title, page)
		if err != nil {
			return err
		}
		return h.show(w, http.StatusOK, page, d)
	}
}

func (h *adminPlane) usersPage(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	return h.orgPage("users", "Users")(w, r, ar)
}

// userCreate creates a user. Without a password from the form (and unless
// they are to sign in with single sign-on only) a random initial password
// is generated and shown once, for the administrator to pass on; the
// alternative is an invitation by email (admin_invite.go).
func (h *adminPlane) userCreate(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	f := r.PostForm
	pw := f.Get("password")
	generated := pw == "" && f.Get("nopassword") == ""
	if generated {
		pw = newPassword()
	}
	u, err := h.admin.CreateUser(r.Context(), ar.p, admin.UserSpec{Org: r.PathValue("org"), Email: f.Get("email"), Role: f.Get("role"), Party: f.Get("party"), Password: pw})
	if err != nil {
		return h.formError(w, r, ar, "users", "Users", err)
	}
	d, err := h.orgData(r, ar, "Users", "users")
	if err != nil {
		return err
	}
	d.Flash = "Created " + u.Email + "."
	if generated {
		d.Flash += " Give them this initial password over a channel you trust; they change it on their account page."
		d.Secret = pw
	}
	return h.show(w, http.StatusOK, "users", d)
}

func (h *adminPlane) userDisable(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	if err := h.admin.DisableUser(r.Context(), ar.p, r.PostForm.Get("email")); err != nil {
		return h.formError(w, r, ar, "users", "Users", err)
	}
	back(w, r, "users")
	return nil
}

func (h *adminPlane) userRole(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	role, err := ferry.ParseRole(r.PostForm.Get("role"))
	if err == nil {
		err = h.admin.SetRole(r.Context(), ar.p, r.PostForm.Get("email"), role)
	}
	if err != nil {
		return h.formError(w, r, ar, "users", "Users", err)
	}
	back(w, r, "users")
	return nil
}

func (h *adminPlane) userMFAReset(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	if err := h.admin.ResetSecondFactors(r.Context(), ar.p, r.PostForm.Get("email")); err != nil {
		return h.formError(w, r, ar, "users", "Users", err)
	}
	back(w, r, "users")
	return nil
}

func (h *adminPlane) partiesPage(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	return h.orgPage("parties", "Parties")(w, r, ar)
}

func (h *adminPlane) partyCreate(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	contacts := strings.FieldsFunc(r.PostForm.Get("contacts"), func(r rune) bool { return r == ',' || r == '\n' || r == ' ' || r == '\r' })
	if _, err := h.admin.CreateParty(r.Context(), ar.p, r.PathValue("org"), strings.TrimSpace(r.PostForm.Get("name")), contacts); err != nil {
		return h.formError(w, r, ar, "parties", "Parties", err)
	}
	back(w, r, "parties")
	return nil
}

func (h *adminPlane) foldersPage(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	return h.orgPage("folders", "Folders and grants")(w, r, ar)
}

func (h *adminPlane) folderCreate(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	if _, err := h.admin.CreateFolder(r.Context(), ar.p, r.PathValue("org"), r.PostForm.Get("path"), r.PostForm.Get("party")); err != nil {
		return h.formError(w, r, ar, "folders", "Folders and grants", err)
	}
	back(w, r, "folders")
	return nil
}

// grantSet gives a user exactly the checked permissions on a folder.
func (h *adminPlane) grantSet(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	f := r.PostForm
	if err := h.admin.Grant(r.Context(), ar.p, r.PathValue("org"), f.Get("email"), f.Get("path"), strings.Join(f["perm"], ",")); err != nil {
		return h.formError(w, r, ar, "folders", "Folders and grants", err)
	}
	back(w, r, "folders")
	return nil
}

func (h *adminPlane) tokensPage(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	return h.orgPage("tokens", "API tokens")(w, r, ar)
}

func (h *adminPlane) tokenCreate(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	days, err := strconv.Atoi(r.PostForm.Get("days"))
	if err != nil || days < 1 || days > 366 {
		return h.formError(w, r, ar, "tokens", "API tokens", ferry.E("httpd.tokenCreate", ferry.Invalid, "a token lasts 1 to 366 days"))
	}
	tok, _, err := h.admin.CreateToken(r.Context(), ar.p, r.PostForm.Get("email"), time.Duration(days)*24*time.Hour)
	if err != nil {
		return h.formError(w, r, ar, "tokens", "API tokens", err)
	}
	d, err := h.orgData(r, ar, "API tokens", "tokens")
	if err != nil {
		return err
	}
	d.Flash, d.Secret = "Token created. It is shown this once.", tok
	return h.show(w, http.StatusOK, "tokens", d)
}

func (h *adminPlane) tokenRevoke(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	if err := h.admin.RevokeToken(r.Context(), ar.p, r.PostForm.Get("id")); err != nil {
		return h.formError(w, r, ar, "tokens", "API tokens", err)
	}
	back(w, r, "tokens")
	return nil
}

func (h *adminPlane) policyPage(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	return h.orgPage("policy", "Policy")(w, r, ar)
}

// policySet applies the policy form: every field is sent, so every field is
// a change (internal/admin audits only what differs, as old → new).
func (h *adminPlane) policySet(w http.ResponseWriter, r *http.Request, ar *adminReq) error {
	const op = "httpd.policySet"
	f := r.PostForm
	fail := func(msg string) error {
		return h.formError(w, r, ar, "policy", "Policy", ferry.E(op, ferry.Invalid, msg))
	}
	minLen, err := strconv.Atoi(f.Get("min_password_len"))
	if err != nil {
		return fail("the minimum password length must be a number")
	}
	idle, err1 := strconv.Atoi(f.Get("session_idle_minutes"))
	max, err2 := strconv.Atoi(f.Get("session_max_minutes"))
	if err1 != nil || err2 != nil {
		return fail("session times must be whole minutes")
	}
	var cidrs []netip.Prefix
	for _, c := range strings.Fields(strings.ReplaceAll(f.Get("allowed_cidrs"), ",", " ")) {
		pfx, err := netip.ParsePrefix(c)
		if err != nil {
			return fail("not an address range: " + c)
		}
		cidrs = append(cidrs, pfx)
	}
	mfa, sso, keys := f.Get("mfa_required") != "", f.Get("sso_required") != "", f.Get("sftp_keys_only") != ""
	passkeys := f.Get("passkeys")
	idleD, maxD := time.Duration(idle)*time.Minute, time.Duration(max)*time.Minute
	ch := admin.PolicyChange{MinPasswordLen: &minLen, MFARequired: &mfa, Passkeys: &passkeys, SSORequired: &sso,
		SessionIdle: &idleD, SessionMax: &maxD, AllowedCIDRs: &cidrs, SFTPKeysOnly: &keys}
	if _, err := h.admin.SetPolicy(r.Context(), ar.p, r.PathValue("org"), ch); err != nil {
		return h.formError(w, r, ar, "policy", "Policy", err)
	}
	back(w, r, "policy")
	return nil
}
