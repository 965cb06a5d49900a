package admin

import (
	"context"

	"ferry.dev/ferry/internal/ferry"
)

// Shares lists the active share links of an organisation, for its
// administrators (server administrators and the operator too).
func (s *Service) Shares(ctx context.Context, p *ferry.Principal, orgName string) ([]*ferry.Share, error) {
	o, err := s.org(ctx, "admin.Shares", p, orgName)
	if err != nil {
		return nil, err
	}
	return s.tr.Shares(ctx, scoped(p, o), true)
}

// RevokeShare revokes one of an organisation's share links (audited by
// transfer as share.revoke).
func (s *Service) RevokeShare(ctx context.Context, p *ferry.Principal, orgName, id string) error {
	o, err := s.org(ctx, "admin.RevokeShare", p, orgName)
	if err != nil {
		return err
	}
	return s.tr.RevokeShare(ctx, scoped(p, o), id)
}
