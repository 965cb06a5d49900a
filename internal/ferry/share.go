package ferry

import (
	"net/netip"
	"time"
)

// Share is a share link: a secret token that lets anyone holding it (a
// "visitor", no account) reach one file or one folder subtree, until it
// expires, is revoked or has been used up. Only the SHA-256 of the token is
// stored; the password, when set, is stored as an argon2id hash.
type Share struct {
	ID           string
	OrgID        string
	UserID       string // the sharer
	Email        string // the sharer's address (filled in by listings)
	Path         string // the shared file or folder, clean, when the link was made
	FolderID     string // the shared folder, or the shared file's folder
	Name         string // the shared file's name; empty for a folder
	Folder       bool   // Path is a folder (the visitor sees the subtree)
	DropBox      bool   // folder only: visitors upload, and can neither list nor read
	TokenHash    []byte // SHA-256 of the token
	PasswordHash string // argon2id PHC string; empty: no password
	MaxDownloads int    // 0: no limit
	Downloads    int    // downloads so far
	AllowedIPs   []netip.Prefix
	Created      time.Time
	Expires      time.Time // always set
	Revoked      bool
	LastUsed     time.Time
	Uses         int // downloads, listings and uploads recorded
}

// DefaultShareDays is the expiry of a share link created without one. No link
// outlives its organisation's retention (files expire with it anyway).
const DefaultShareDays = 7

// Active reports whether the share can be used at now: not revoked, not
// expired, and (for downloads) not used up.
func (s *Share) Active(now time.Time) bool {
	return !s.Revoked && now.Before(s.Expires)
}

// Exhausted reports whether the share's downloads are used up.
func (s *Share) Exhausted() bool {
	return s.MaxDownloads > 0 && s.Downloads >= s.MaxDownloads
}

// AddrAllowed reports whether a visitor at addr (an address, or address and
// port) may use the share: always when no ranges are set, otherwise only from
// inside one of them (an unparsable address never).
func (s *Share) AddrAllowed(addr string) bool {
	if len(s.AllowedIPs) == 0 {
		return true
	}
	pol := Policy{AllowedCIDRs: s.AllowedIPs}
	return pol.AddrAllowed(addr)
}

// Watch is a user's watch on a folder: they are mailed when files arrive in it.
type Watch struct {
	ID       string
	OrgID    string
	UserID   string
	FolderID string
	Path     string // the folder's path (filled in by listings)
	Created  time.Time
	LastMail time.Time // when the last notification was sent
}
