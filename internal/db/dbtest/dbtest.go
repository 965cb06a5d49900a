// Package dbtest opens throwaway Ferry databases for tests: a SQLite file in a
// temporary directory, and a fresh database on the PostgreSQL server named by
// $FERRY_TEST_POSTGRES (the test command starts a private cluster and sets it).
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver

	"ferry.dev/ferry/internal/db"
)

// PostgresEnv names the environment variable holding the DSN of a PostgreSQL
// server that tests may create databases on.
const PostgresEnv = "FERRY_TEST_POSTGRES"

// Each runs fn as a subtest on a fresh SQLite database and on a fresh
// PostgreSQL database. Without $FERRY_TEST_POSTGRES the PostgreSQL run fails
// under CI and is skipped elsewhere.
func Each(t *testing.T, fn func(t *testing.T, d *db.DB)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}

// SQLite opens a new SQLite database in t.TempDir().
func SQLite(t testing.TB) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// PostgresDSN creates a new, empty PostgreSQL database and returns its DSN;
// the database is dropped when the test ends.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(PostgresEnv)
	if admin == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("$%s is not set: run the tests with `make test`, which starts PostgreSQL", PostgresEnv)
		}
		t.Skipf("$%s is not set; `make test` starts a private PostgreSQL server", PostgresEnv)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "ferry_test_" + hex.EncodeToString(b[:])
	adm, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	// CREATE DATABASE takes no parameters; the name is generated above from
	// hex digits only.
	// sqllint: reviewed — PostgreSQL cannot bind identifiers; name is "ferry_test_" + hex digits.
	if _, err := adm.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		adm, err := sql.Open("pgx", admin)
		if err != nil {
			return
		}
		defer adm.Close()
		// sqllint: reviewed — PostgreSQL cannot bind identifiers; name is "ferry_test_" + hex digits.
		adm.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// Postgres opens a new PostgreSQL database (see PostgresDSN).
func Postgres(t testing.TB) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
