package transfer

import (
	"context"

	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/guard"
)

// The exfiltration guard's hooks: every read of file content (Download.Read,
// which REST, web, folder zips, SFTP, share links and packages all go
// through) and every share consults it first.

// Guard returns the service's guard (nil when it has none).
func (s *Service) Guard() *guard.Guard { return s.guard }

// guardFrozen refuses every operation of a frozen principal (listing,
// writing, deleting as well as reading: a suspended account does nothing,
// whichever protocol it is still connected by), audited as denied.
func (s *Service) guardFrozen(ctx context.Context, op string, p *ferry.Principal, ev *ferry.Event) error {
	if !s.guard.Frozen(guard.Subject(p)) {
		return nil
	}
	ev.Outcome, ev.Detail = ferry.OutcomeDenied, "frozen by the guard"
	if err := s.append(ctx, ev); err != nil {
		return err
	}
	return ferry.E(op, ferry.Permission, ferry.Message(guard.ErrFrozen))
}

// guardRead asks the guard whether p may read ev.Bytes of f. A refusal (the
// principal is frozen, or this read froze it) is audited as the read
// denied and returned as a ferry.Permission error.
func (s *Service) guardRead(ctx context.Context, p *ferry.Principal, f *ferry.File, ev *ferry.Event) error {
	if s.guard == nil {
		return nil
	}
	err := s.guard.CheckRead(ctx, p, f, ev.Bytes)
	if err == nil {
		return nil
	}
	d := *ev
	d.Outcome, d.Detail = ferry.OutcomeDenied, "refused by the guard: "+ferry.Message(err)
	if aerr := s.append(ctx, &d); aerr != nil {
		return aerr
	}
	return ferry.E("transfer.Read", ferry.KindOf(err), ferry.Message(err))
}

// guardShare is called before p shares path (a file or a folder): sharing a
// canary file, or a folder that holds one, freezes p and is refused.
func (s *Service) guardShare(ctx context.Context, p *ferry.Principal, path string) error {
	if s.guard == nil || guard.Subject(p) == "" {
		return nil
	}
	c, err := s.guard.CanaryAt(ctx, p.OrgID, path)
	if err != nil || c == "" {
		return err
	}
	if err := s.guard.TripShare(ctx, p, path, c); err != nil {
		return ferry.E("transfer.Share", ferry.KindOf(err), ferry.Message(err))
	}
	return nil
}
