// Package auth is the only package that creates credentials: API tokens, setup
// codes and password hashes (sessions, TOTP, passkeys and OIDC come with the
// authentication issue).
//
// Guarantees: secrets (tokens, setup codes) are at least 192 bits from
// crypto/rand and only their SHA-256 is stored; comparisons are constant-time;
// every failed authentication gets the same error, whatever the reason, and is
// audited; passwords are hashed with argon2id with parameters recorded in each
// hash.
package auth
