package sftpd

import (
	"errors"
	"io"
	"log/slog"

	"github.com/pkg/sftp"

	"ferry.dev/ferry/internal/ferry"
)

// statusError is an error that pkg/sftp turns into an SSH_FXP_STATUS reply
// with code (one of sftp.ErrSSHFx…, found through Unwrap) and msg as the
// message shown to the client.
type statusError struct {
	code error
	msg  string
}

func (e *statusError) Error() string { return e.msg }
func (e *statusError) Unwrap() error { return e.code }

// Errors the adapter itself produces.
var (
	errNotSequential = &statusError{sftp.ErrSSHFxFailure, "upload rejected: writes must cover the file from offset 0 without gaps or overlaps"}
	errTooFarAhead   = &statusError{sftp.ErrSSHFxFailure, "upload rejected: a write arrived too far ahead of the data written so far"}
	errUnsupported   = &statusError{sftp.ErrSSHFxOpUnsupported, "operation not supported by Ferry"}
	errUploadAborted = &statusError{sftp.ErrSSHFxFailure, "upload aborted; the previous version (if any) is unchanged, and what arrived in order can be resumed"}
	errTooManyOpen   = &statusError{sftp.ErrSSHFxFailure, "too many open handles in this session"}
	errNotFolder     = &statusError{sftp.ErrSSHFxFailure, "not a folder"}
	errIsFolder      = &statusError{sftp.ErrSSHFxFailure, "is a folder"}
	errShortContent  = &statusError{sftp.ErrSSHFxFailure, "stored content ended before its recorded size"}
)

// errPanic is what a request that panicked gets: the panic is a bug in
// Ferry, and it stays with that request (or closes that session).
var errPanic = &statusError{sftp.ErrSSHFxFailure, "internal error"}

// recoverTo turns a panic into errPanic in *err; the methods that pkg/sftp's
// goroutines call defer it, so that a bug cannot take the server down.
func recoverTo(err *error) {
	if r := recover(); r != nil {
		*err = errPanic
	}
}

// toStatus maps a Ferry error to the SFTP status the client sees (SFTP v3 has
// no codes for "exists" or "no space", so those are FAILURE with a message).
// Internal errors are logged here, once, and reach the client only as
// "internal error".
func toStatus(logger *slog.Logger, op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	var se *statusError
	if errors.As(err, &se) {
		return se
	}
	msg := ferry.Message(err)
	switch ferry.KindOf(err) {
	case ferry.NotExist:
		return &statusError{sftp.ErrSSHFxNoSuchFile, msg}
	case ferry.Permission, ferry.Unauthenticated:
		return &statusError{sftp.ErrSSHFxPermissionDenied, msg}
	case ferry.Invalid, ferry.Exist, ferry.Quota, ferry.TooLarge, ferry.NoSpace, ferry.Integrity, ferry.Unavailable, ferry.Conflict, ferry.Expired, ferry.Checksum:
		if ferry.KindOf(err) == ferry.Integrity || ferry.KindOf(err) == ferry.Unavailable {
			logger.Warn("sftp operation failed", "op", op, "err", err)
		}
		return &statusError{sftp.ErrSSHFxFailure, msg}
	}
	logger.Error("sftp operation failed", "op", op, "err", err)
	return &statusError{sftp.ErrSSHFxFailure, "internal error"}
}
