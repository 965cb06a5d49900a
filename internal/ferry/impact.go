package ferry

import "time"

// ImpactDraft is a notification drafted by the impact report for one party:
// an administrator reviews and edits it before it is sent (docs/IMPACT.md).
type ImpactDraft struct {
	ID         string
	Report     string // id shared by the drafts of one report
	OrgID      string
	PartyID    string
	Party      string
	Recipients []string
	Subject    string
	Body       string
	State      string // "draft" or "sent"
	Checkpoint int64  // size of the audit checkpoint the report cites
	Created    time.Time
	CreatedBy  string
	Sent       time.Time
	SentBy     string
}
