// Package transfer is the one home of file rules (DESIGN invariant 1). Every
// byte of file content that any protocol reads or writes passes through a
// Service: it checks the principal's grants (an invisible path answers "not
// found", never "forbidden"), encrypts with a fresh data key per file version
// (wrapped by the organisation's KEK), writes the blob atomically, records the
// metadata, and appends an audit record for every outcome, denials included.
//
// A new version becomes visible only when its content is complete; until
// then the old version stays readable. Reads are audited before the first
// byte is returned. Deleting or expiring a file destroys its wrapped data key
// before its blob.
package transfer
