package sftpd

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/pkg/sftp"

	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/transfer"
)

// session is one SFTP subsystem: a RequestServer over the filter, with
// handlers bound to the authenticated principal.
type session struct {
	h  *handlers
	rs *sftp.RequestServer
}

func newSession(ctx context.Context, rw io.ReadWriteCloser, tr *transfer.Service, p *ferry.Principal, shared *budget, logger *slog.Logger) *session {
	h := newHandlers(ctx, tr, p, shared, logger)
	rs := sftp.NewRequestServer(newFilter(rw), sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h},
		sftp.WithRSMaxTxPacket(maxReadWrite), sftp.WithRSAllocator())
	return &session{h: h, rs: rs}
}

// serve runs the session until the client ends it or the channel breaks.
// Uploads still open then are aborted, never committed. It returns nil when
// the client ended the session cleanly.
func (s *session) serve() error {
	err := s.rs.Serve()
	s.h.abortUploads()
	s.rs.Close()
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// ServeSFTP serves the SFTP protocol for principal p on rw (an SSH channel
// after the "sftp" subsystem request, or any byte stream in tests) until the
// client closes it, and returns nil on a clean end. Its uploads hold at most
// the default MaxBufferedWrites of out-of-order data.
func ServeSFTP(ctx context.Context, rw io.ReadWriteCloser, tr *transfer.Service, p *ferry.Principal, logger *slog.Logger) error {
	return newSession(ctx, rw, tr, p, newBudget(defaultMaxBufferedWrites), logger).serve()
}
