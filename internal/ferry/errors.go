package ferry

import (
	"errors"
	"fmt"
)

// Kind classifies an error so that adapters can map it to a protocol status
// (HTTP, SFTP) without looking at its text.
type Kind uint8

// The kinds of error. Adapters map each to a status; Internal errors are logged
// and never shown to clients beyond their kind.
const (
	Other           Kind = iota // Unclassified; treated as Internal by adapters.
	Invalid                     // Malformed input: bad path, bad JSON, bad flag.
	NotExist                    // The object does not exist, or the caller may not know it does.
	Exist                       // The object already exists.
	Permission                  // The caller is known but not allowed.
	Unauthenticated             // No valid credentials.
	Quota                       // A quota or rate limit was reached.
	TooLarge                    // The request or content exceeds a size limit.
	NoSpace                     // The storage is full.
	Integrity                   // Stored data failed authentication or a checksum.
	Unavailable                 // A dependency is down; try again later.
	Internal                    // A bug or an unexpected failure.
	Conflict                    // The request does not match the current state (say, a resume offset); re-read and retry.
	Expired                     // The object existed but has expired.
	Checksum                    // Content sent by the client does not match the checksum it declared.
)

var kindNames = [...]string{
	Other:           "internal",
	Invalid:         "invalid",
	NotExist:        "not_exist",
	Exist:           "exist",
	Permission:      "permission",
	Unauthenticated: "unauthenticated",
	Quota:           "quota",
	TooLarge:        "too_large",
	NoSpace:         "no_space",
	Integrity:       "integrity",
	Unavailable:     "unavailable",
	Internal:        "internal",
	Conflict:        "conflict",
	Expired:         "expired",
	Checksum:        "checksum",
}

// String returns the kind's stable wire name, as used in JSON errors.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "internal"
}

// Error is Ferry's error: the operation that failed, its kind, a message safe to
// show to the caller, and the underlying error (never shown to clients).
type Error struct {
	Op   string // operation, e.g. "transfer.Put"
	Kind Kind   // class of error
	Msg  string // human message, safe for clients
	Err  error  // underlying cause, for logs
}

// E builds an *Error. Arguments may be, in any order: a Kind, a string (the
// message) and an error (the cause). A cause that is itself an *Error with a
// kind passes its kind up when none is given.
func E(op string, args ...any) error {
	e := &Error{Op: op}
	for _, a := range args {
		switch a := a.(type) {
		case Kind:
			e.Kind = a
		case string:
			e.Msg = a
		case error:
			e.Err = a
		}
	}
	if e.Kind == Other && e.Err != nil {
		e.Kind = KindOf(e.Err)
	}
	return e
}

// Errorf builds an *Error with a formatted message and no cause.
func Errorf(op string, kind Kind, format string, args ...any) error {
	return &Error{Op: op, Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Error implements error. It includes the cause, so it is for logs; clients get
// Message().
func (e *Error) Error() string {
	s := e.Op
	if e.Kind != Other {
		s += ": " + e.Kind.String()
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of the first *Error in err's chain that has one, or
// Other.
func KindOf(err error) Kind {
	for err != nil {
		var e *Error
		if !errors.As(err, &e) {
			return Other
		}
		if e.Kind != Other {
			return e.Kind
		}
		err = e.Err
	}
	return Other
}

// Message returns a message for err that is safe to show to a client: the first
// Msg in the chain of *Errors, or a generic text for the kind.
func Message(err error) string {
	for err != nil {
		var e *Error
		if !errors.As(err, &e) {
			break
		}
		if e.Msg != "" {
			return e.Msg
		}
		err = e.Err
	}
	switch KindOf(err) {
	case Invalid:
		return "invalid request"
	case NotExist:
		return "not found"
	case Exist:
		return "already exists"
	case Permission:
		return "permission denied"
	case Unauthenticated:
		return "authentication required"
	case Quota:
		return "quota exceeded"
	case TooLarge:
		return "too large"
	case NoSpace:
		return "insufficient storage"
	case Integrity:
		return "stored data failed an integrity check"
	case Unavailable:
		return "service unavailable, try again later"
	case Conflict:
		return "conflicts with the current state"
	case Expired:
		return "expired"
	case Checksum:
		return "checksum mismatch"
	}
	return "internal error"
}
