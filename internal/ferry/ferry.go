// Package ferry is the vocabulary of the Ferry managed file transfer server:
// organisations, users, parties, folders, files, permissions, audit events and
// errors. It imports nothing of Ferry's own; every other package speaks it.
package ferry

import (
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Org is an organisation: a tenant owning users, parties, folders and keys.
type Org struct {
	ID            string
	Name          string
	RetentionDays int // default expiry of new files, in days
	Created       time.Time
}

// DefaultRetentionDays is the expiry given to files of an organisation that set
// no policy (DESIGN invariant 8).
const DefaultRetentionDays = 30

// Role is a user's role within an organisation.
type Role string

// The roles. Admins hold every permission in their organisation; users and
// externals hold only what grants give them.
const (
	RoleAdmin    Role = "admin"
	RoleUser     Role = "user"
	RoleExternal Role = "external"
)

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(strings.ToLower(s)); r {
	case RoleAdmin, RoleUser, RoleExternal:
		return r, nil
	}
	return "", Errorf("ferry.ParseRole", Invalid, "unknown role %q (want admin, user or external)", s)
}

// User is a person (or system) that can authenticate.
type User struct {
	ID           string
	OrgID        string
	Email        string // unique across the server; lower-case
	Role         Role
	PartyID      string // for external users: the party they belong to
	PasswordHash string // argon2id PHC string; empty when none is set
	ServerAdmin  bool   // may administer every organisation
	Disabled     bool
	Created      time.Time
}

// Party is a customer or partner whose data an organisation holds.
type Party struct {
	ID       string
	OrgID    string
	Name     string
	Contacts []string // notification email addresses
	Created  time.Time
}

// Folder is a folder in an organisation's tree. The root folder has path "/"
// and no parent.
type Folder struct {
	ID       string
	OrgID    string
	ParentID string
	Name     string
	Path     string // clean absolute path within the organisation
	PartyID  string // the party whose data it holds; inherited when empty
	Created  time.Time
}

// File is one stored file: content in an encrypted blob and its metadata.
type File struct {
	ID         string
	OrgID      string
	FolderID   string
	Name       string
	Path       string // clean absolute path within the organisation
	Size       int64
	SHA256     []byte // of the plaintext
	BlobID     string
	WrappedKey []byte // data key wrapped by the organisation's KEK
	KEKID      string
	UploaderID string
	PartyID    string // effective party (from the folder tree) at write time
	Created    time.Time
	Modified   time.Time
	Expires    time.Time
	Hold       bool // legal hold: never expires while set
	// Parts is 0 when the content is the one encrypted stream BlobID, and
	// the number of parts when it was written in several sessions (a
	// resumed upload): each part is its own stream, and BlobID is the first.
	Parts int
}

// Upload is a resumable upload in progress: a file being written in one or
// more sessions, possibly from different clients or nodes. Everything needed
// to continue it is here.
type Upload struct {
	ID           string
	OrgID        string
	Owner        string // user id (or principal name) of the only principal that may continue it
	Path         string // destination, clean
	Size         int64  // declared length in bytes
	Received     int64  // bytes stored so far: the offset to continue from
	Parts        int    // parts stored so far
	ExpectSHA256 []byte // SHA-256 the client declared for the whole file, or nil
	HashState    []byte // SHA-256 state over the first Received bytes
	FileID       string // id the file will have; parts are stored under it
	WrappedKey   []byte // the file's data key, wrapped by the organisation's KEK
	KEKID        string
	Protocol     string // protocol that created it: "https", "sftp"
	Created      time.Time
	Updated      time.Time
	Expires      time.Time // abandoned after this: shredded by the sweeper
}

// Perm is a set of permissions on a folder and everything below it.
type Perm uint8

// The permissions.
const (
	PermList Perm = 1 << iota
	PermRead
	PermWrite
	PermDelete
	PermShare
	PermManage

	PermAll = PermList | PermRead | PermWrite | PermDelete | PermShare | PermManage
)

var permNames = []struct {
	p    Perm
	name string
}{
	{PermList, "list"}, {PermRead, "read"}, {PermWrite, "write"},
	{PermDelete, "delete"}, {PermShare, "share"}, {PermManage, "manage"},
}

// ParsePerms parses a comma-separated list such as "list,read,write".
func ParsePerms(s string) (Perm, error) {
	var p Perm
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(strings.ToLower(f))
		if f == "" {
			continue
		}
		found := false
		for _, n := range permNames {
			if n.name == f {
				p |= n.p
				found = true
			}
		}
		if !found {
			return 0, Errorf("ferry.ParsePerms", Invalid, "unknown permission %q (want list, read, write, delete, share, manage)", f)
		}
	}
	if p == 0 {
		return 0, Errorf("ferry.ParsePerms", Invalid, "no permissions given")
	}
	return p, nil
}

// String returns the comma-separated names of the permissions in p.
func (p Perm) String() string {
	var names []string
	for _, n := range permNames {
		if p&n.p != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ",")
}

// Has reports whether p includes every permission in q.
func (p Perm) Has(q Perm) bool { return p&q == q }

// Grant gives a user permissions on a folder and its descendants.
type Grant struct {
	FolderID string
	UserID   string
	Perms    Perm
}

// Token is an API token. Its secret is never stored, only a hash of it.
type Token struct {
	ID       string
	UserID   string
	Hash     []byte
	Created  time.Time
	Expires  time.Time // zero: never
	Revoked  bool
	LastUsed time.Time
	Scope    Scope  // what the token may do; ScopeAll for admin-minted tokens
	Name     string // the owner's label for it
}

// Scope is what an API token may do, on top of its user's permissions.
type Scope uint8

// The scopes.
const (
	ScopeRead  Scope = 1 << iota // list and read files
	ScopeWrite                   // write, move and delete files and folders
	ScopeShare                   // create packages and share links

	ScopeAll = ScopeRead | ScopeWrite | ScopeShare
)

var scopeNames = []string{"read", "write", "share"}

// String returns the scope as a comma-separated list ("read,write").
func (s Scope) String() string {
	var out []string
	for i, n := range scopeNames {
		if s&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return strings.Join(out, ",")
}

// Has reports whether s includes every scope in want.
func (s Scope) Has(want Scope) bool { return s&want == want }

// ParseScope parses a comma-separated list of read, write and share.
func ParseScope(v string) (Scope, error) {
	var s Scope
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		i := slices.Index(scopeNames, f)
		if i < 0 {
			return 0, Errorf("ferry.ParseScope", Invalid, "unknown scope %q (want read, write or share)", f)
		}
		s |= 1 << i
	}
	return s, nil
}

// Session is a signed-in browser (or token-endpoint) session. Its secret is
// never stored, only its SHA-256.
type Session struct {
	ID        string // public id: names the session in listings and audit records
	Hash      []byte // SHA-256 of the secret in the cookie
	UserID    string
	Stage     string // SessionMFA until the second factor is given, then SessionFull
	Methods   string // how the user authenticated: "password", "password+totp", "passkey", "oidc"
	Created   time.Time
	LastSeen  time.Time
	Expires   time.Time     // absolute end
	Idle      time.Duration // ends after this long without use
	Remote    string
	UserAgent string
	Revoked   bool
	Plane     string // PlanePublic or PlaneAdmin: the only listener that accepts it
}

// Session planes: the listener whose web UI created a session, and the only
// one that accepts it.
const (
	PlanePublic = "public"
	PlaneAdmin  = "admin"
)

// Session stages.
const (
	SessionMFA  = "mfa"  // password accepted; a second factor is due
	SessionFull = "full" // signed in
)

// Policy is an organisation's authentication policy.
type Policy struct {
	OrgID          string
	MinPasswordLen int
	MFARequired    bool
	Passkeys       string // PasskeysAllowed, PasskeysRequired or PasskeysOff
	SSORequired    bool
	SessionIdle    time.Duration
	SessionMax     time.Duration
	AllowedCIDRs   []netip.Prefix // empty: any address
	SFTPKeysOnly   bool           // SFTP logins need a public key (no passwords)
	Updated        time.Time
}

// Passkey policies.
const (
	PasskeysAllowed  = "allowed"
	PasskeysRequired = "required"
	PasskeysOff      = "off"
)

// DefaultPolicy is the policy of an organisation that has not set one.
func DefaultPolicy(orgID string) *Policy {
	return &Policy{OrgID: orgID, MinPasswordLen: 12, Passkeys: PasskeysAllowed, SessionIdle: 30 * time.Minute, SessionMax: 12 * time.Hour}
}

// AddrAllowed reports whether the policy lets a client at addr in (an
// unparsable address is refused when a list is set).
func (p *Policy) AddrAllowed(addr string) bool {
	if len(p.AllowedCIDRs) == 0 {
		return true
	}
	ap, err := netip.ParseAddr(addr)
	if err != nil {
		if ipp, err2 := netip.ParseAddrPort(addr); err2 == nil {
			ap = ipp.Addr()
		} else {
			return false
		}
	}
	ap = ap.Unmap()
	for _, c := range p.AllowedCIDRs {
		if c.Contains(ap) {
			return true
		}
	}
	return false
}

// ParsePrefixes parses address ranges written as CIDR prefixes
// (192.0.2.0/24, 2001:db8::/32) or single addresses (a range of one), as
// administrators and users type them: spaces around each are trimmed, empty
// fields skipped, IPv4-mapped IPv6 addresses taken as IPv4, and host bits
// cleared (192.0.2.7/24 is 192.0.2.0/24). Anything else is Invalid, naming
// the field.
func ParsePrefixes(fields []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range fields {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, Errorf("ferry.ParsePrefixes", Invalid, "%q is not an address range (an address, or a CIDR prefix such as 192.0.2.0/24)", f)
			}
			a = a.Unmap()
			p = netip.PrefixFrom(a, a.BitLen())
		} else if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// SSHKey is a user's SSH public key for SFTP.
type SSHKey struct {
	ID          string
	UserID      string
	Fingerprint string // SHA256:… as OpenSSH prints it
	PublicKey   string // authorized_keys line
	Comment     string
	Created     time.Time
}

// Principal is who is acting: a user through a token or session, the local
// operator through the admin socket, or the system itself (retention sweeps).
type Principal struct {
	UserID      string
	Email       string
	OrgID       string
	Role        Role
	ServerAdmin bool
	TokenID     string // API token used, if any
	SessionID   string // hashed-session id, if any
	Remote      string // remote address, "unix" or "system"
	Protocol    string // "https", "sftp", "admin"… as recorded in audit events
	Scope       Scope  // an API token's scope; 0 (sessions, SFTP, operator): no restriction beyond permissions
	Operator    bool   // the local operator on the admin socket (full power)
	System      bool   // Ferry itself
	ShareID     string // the share link used, for a share-link visitor
	PackageID   string // the package, for a package recipient signed in by one-time code
	Guest       string // an external package recipient's email address (no user account)
}

// Name returns the principal as it appears in audit records.
func (p *Principal) Name() string {
	switch {
	case p == nil:
		return "anonymous"
	case p.System:
		return "system"
	case p.Operator && p.Email == "":
		return "operator"
	}
	return p.Email
}

// Outcome says how an audited action ended.
type Outcome string

// The outcomes.
const (
	OutcomeOK     Outcome = "ok"
	OutcomeDenied Outcome = "denied"
	OutcomeError  Outcome = "error"
)

// Event is one audit record, as appended to the transparency log.
type Event struct {
	Seq      int64     `json:"seq"`
	Time     time.Time `json:"time"`
	Action   string    `json:"action"`             // e.g. "file.read", "user.create"
	Outcome  Outcome   `json:"outcome"`            // ok, denied, error
	Actor    string    `json:"actor"`              // email, "operator" or "system"
	ActorID  string    `json:"actor_id,omitempty"` // user id
	Org      string    `json:"org,omitempty"`      // organisation name
	OrgID    string    `json:"org_id,omitempty"`
	Party    string    `json:"party,omitempty"` // party name
	PartyID  string    `json:"party_id,omitempty"`
	Object   string    `json:"object,omitempty"` // id of the file, user, token… acted on
	Path     string    `json:"path,omitempty"`   // file or folder path
	Remote   string    `json:"remote,omitempty"` // remote address
	Session  string    `json:"session,omitempty"`
	Token    string    `json:"token,omitempty"`
	Bytes    int64     `json:"bytes,omitempty"`  // bytes read or written
	Offset   int64     `json:"offset,omitempty"` // start of a ranged read
	SHA256   string    `json:"sha256,omitempty"`
	Detail   string    `json:"detail,omitempty"` // free text: error kind, new path, permissions…
	Protocol string    `json:"protocol,omitempty"`
}
