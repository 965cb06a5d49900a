package ferry

import "time"

// Package is an ad hoc transfer: a message with files sent to Ferry users or
// email addresses, with an expiry, download limits and receipts. Its files
// live in a system-managed folder of its own (FolderID) and replies from its
// recipients in a sub-folder (ReplyFolderID); neither is visible in normal
// browsing.
type Package struct {
	ID            string
	OrgID         string
	SenderID      string
	SenderEmail   string // filled in by queries that join the sender
	Subject       string
	Message       string
	Status        string // PackageDraft, PackageSent or PackageRecalled
	PartyID       string // the recipients' party when known
	FolderID      string
	ReplyFolderID string
	Expires       time.Time
	MaxDownloads  int // per file and recipient; 0: unlimited
	RequireSignIn bool
	Notify        bool // mail the sender on every download
	AllowReply    bool
	Created       time.Time
	Sent          time.Time
	Recalled      time.Time
	ExpiryNoticed bool // the "about to expire" mail went out
}

// Package states.
const (
	PackageDraft    = "draft"
	PackageSent     = "sent"
	PackageRecalled = "recalled"
)

// Active reports whether the package's links work at now: sent, not
// recalled, not expired.
func (p *Package) Active(now time.Time) bool {
	return p.Status == PackageSent && now.Before(p.Expires)
}

// PackageRecipient is one recipient of a package: a Ferry user or an email
// address. The secret of its link is stored only as a hash.
type PackageRecipient struct {
	ID        string
	PackageID string
	Email     string
	UserID    string // set when the address belongs to a Ferry user
	TokenHash []byte
	Created   time.Time
	Opened    time.Time // first time the package was shown to them
}

// PackageReceipt records one download of a package file by a recipient.
type PackageReceipt struct {
	ID          string
	PackageID   string
	RecipientID string
	Email       string
	FileID      string
	FileName    string
	Bytes       int64
	Remote      string
	Time        time.Time
}

// MaxPackageText bounds a package's subject and message.
const (
	MaxSubjectLen = 200
	MaxMessageLen = 10000
)

// ValidHeaderText reports whether s may go into a mail header or a file
// name: no CR, LF or other control characters.
func ValidHeaderText(op, what, s string) error {
	for _, r := range s {
		if r == '\r' || r == '\n' {
			return Errorf(op, Invalid, "%s must not contain a line break", what)
		}
		if r < 0x20 || r == 0x7f {
			return Errorf(op, Invalid, "%s must not contain control characters", what)
		}
	}
	return nil
}

// PackageReply is a file a recipient sent back; the file itself is in the
// package's reply folder.
type PackageReply struct {
	ID          string
	PackageID   string
	RecipientID string
	Email       string
	FileID      string
	Name        string
	Size        int64
	Created     time.Time
}
