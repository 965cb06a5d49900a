package db

import (
	"math"

	"ferry.dev/ferry/internal/ferry"
)

// Integers read from the database into narrower Go types. Ferry only ever
// writes values of the narrower type, so a value out of range means a
// damaged or tampered database: it is refused with kind Internal, never
// truncated into a different value (stored permissions 0x1ff must not come
// back as 0xff, every permission).

// storedPerm converts the permissions of a grant.
func storedPerm(op string, p int) (ferry.Perm, error) {
	if p < 0 || p > math.MaxUint8 {
		return 0, ferry.Errorf(op, ferry.Internal, "stored permissions %d are out of range", p)
	}
	return ferry.Perm(p), nil
}

// storedUint8 converts a stored byte; what names it in the error.
func storedUint8(op, what string, v int64) (uint8, error) {
	if v < 0 || v > math.MaxUint8 {
		return 0, ferry.Errorf(op, ferry.Internal, "stored %s %d is out of range", what, v)
	}
	return uint8(v), nil
}

// storedUint32 converts a stored uint32; what names it in the error.
func storedUint32(op, what string, v int64) (uint32, error) {
	if v < 0 || v > math.MaxUint32 {
		return 0, ferry.Errorf(op, ferry.Internal, "stored %s %d is out of range", what, v)
	}
	return uint32(v), nil
}
