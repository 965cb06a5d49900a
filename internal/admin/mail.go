package admin

import (
	"context"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
)

// MailStatus is the state of the mail outbox (docs/MAIL.md).
type MailStatus struct {
	Queued, Sent, Failed int64
	Recent               []*MailRow // newest first
}

// MailRow is one outbox row, without its bodies.
type MailRow struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	Status      string    `json:"status"`
	Recipients  []string  `json:"recipients"`
	Pending     []string  `json:"pending"`
	Refused     []string  `json:"refused"` // "address<TAB>the server's answer"
	Subject     string    `json:"subject"`
	Attempts    int       `json:"attempts"`
	LastError   string    `json:"last_error,omitempty"`
	Created     time.Time `json:"created"`
	NextAttempt time.Time `json:"next_attempt"`
	Finished    time.Time `json:"finished"`
}

// Mail returns the outbox's counts and its newest rows (at most limit,
// 1-500). Recipients' addresses are personal data of every organisation, so
// only the operator and server administrators may look.
func (s *Service) Mail(ctx context.Context, p *ferry.Principal, limit int) (*MailStatus, error) {
	const op = "admin.Mail"
	if !p.Operator && !p.ServerAdmin {
		return nil, ferry.E(op, ferry.Permission, "only server administrators see the mail outbox")
	}
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	counts, err := s.db.MailCounts(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.RecentMail(ctx, limit)
	if err != nil {
		return nil, err
	}
	st := &MailStatus{Queued: counts[db.MailQueued], Sent: counts[db.MailSent], Failed: counts[db.MailFailed], Recent: []*MailRow{}}
	for _, m := range rows {
		st.Recent = append(st.Recent, &MailRow{ID: m.ID, Kind: m.Kind, Status: m.Status, Recipients: nonNil(m.Recipients), Pending: nonNil(m.Pending),
			Refused: nonNil(m.Failed), Subject: m.Subject, Attempts: m.Attempts, LastError: m.LastError, Created: m.Created,
			NextAttempt: m.NextAttempt, Finished: m.Finished})
	}
	return st, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
