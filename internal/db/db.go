// Package db is Ferry's metadata store: a concrete *DB over SQLite (the
// embedded default) or PostgreSQL (cluster mode).
//
// Every SQL statement in this package is a constant string; every value is a
// bound parameter ($1, $2, … on both engines); nothing executes more than one
// statement per call except the embedded migrations (DESIGN invariant 2). A
// test in this package fails on SQL built from values. File content never
// passes through here: only metadata and wrapped (encrypted) data keys.
package db

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"ferry.dev/ferry/internal/ferry"
)

// Dialect names a database engine.
type Dialect string

// The supported engines.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is the metadata store.
type DB struct {
	sql     *sql.DB
	dialect Dialect
}

//go:embed migrations
var migrations embed.FS

// Open opens the database named by dsn and applies pending migrations. A dsn
// starting with postgres:// or postgresql:// selects PostgreSQL; anything else
// is a SQLite file path (optionally prefixed with sqlite:).
func Open(ctx context.Context, dsn string) (*DB, error) {
	d := &DB{}
	var err error
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		d.dialect = Postgres
		d.sql, err = sql.Open("pgx", dsn)
		if err == nil {
			d.sql.SetMaxOpenConns(16)
		}
	default:
		d.dialect = SQLite
		file := strings.TrimPrefix(dsn, "sqlite:")
		if file == "" {
			return nil, fmt.Errorf("open database: empty SQLite path")
		}
		q := "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
		d.sql, err = sql.Open("sqlite", "file:"+file+q)
		if err == nil {
			d.sql.SetMaxOpenConns(8)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := d.sql.PingContext(ctx); err != nil {
		d.sql.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := d.migrate(ctx); err != nil {
		d.sql.Close()
		return nil, err
	}
	return d, nil
}

// Dialect returns the engine in use.
func (d *DB) Dialect() Dialect { return d.dialect }

// Close closes the database.
func (d *DB) Close() error { return d.sql.Close() }

// Ping checks that the database answers.
func (d *DB) Ping(ctx context.Context) error { return d.sql.PingContext(ctx) }

// migrate applies, in order and each in its own transaction, the embedded
// migrations for the dialect that are not yet recorded in schema_migrations.
// Migrations are forward-only.
func (d *DB) migrate(ctx context.Context) error {
	const create = `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied BIGINT NOT NULL)`
	if _, err := d.sql.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	dir := path.Join("migrations", string(d.dialect))
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names {
		version := strings.TrimSuffix(name, ".sql")
		body, err := fs.ReadFile(migrations, path.Join(dir, name))
		if err != nil {
			return fmt.Errorf("migrate %s: %w", name, err)
		}
		err = d.tx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = $1`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			// Migration files are trusted, embedded constants; each holds
			// several statements separated by ";" at line ends.
			for _, stmt := range splitStatements(string(body)) {
				// sqllint: reviewed — embedded migration files, constants compiled into the binary
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("%w\n%s", err, stmt)
				}
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)`, version, time.Now().UnixMicro())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", name, err)
		}
	}
	return nil
}

func splitStatements(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ";\n") {
		if p := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(part), ";")); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// execer is what *sql.DB and *sql.Tx have in common.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// tx runs fn in a transaction, committing if it returns nil.
func (d *DB) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := d.sql.BeginTx(ctx, nil)
	if err != nil {
		return dbErr("begin", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return dbErr("commit", err)
	}
	return nil
}

// dbErr classifies a driver error: unique violations become ferry.Exist,
// sql.ErrNoRows ferry.NotExist, a full disk ferry.NoSpace, anything else
// ferry.Internal.
func dbErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var fe *ferry.Error
	if errors.As(err, &fe) {
		return err
	}
	op = "db." + op
	if errors.Is(err, sql.ErrNoRows) {
		return ferry.E(op, ferry.NotExist, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return ferry.E(op, ferry.Exist, err)
		case sqlite3.SQLITE_FULL:
			return ferry.E(op, ferry.NoSpace, err)
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505":
			return ferry.E(op, ferry.Exist, err)
		case "53100":
			return ferry.E(op, ferry.NoSpace, err)
		}
	}
	return ferry.E(op, ferry.Internal, err)
}

// micro converts a time to the stored representation (Unix microseconds, 0
// for the zero time).
func micro(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// fromMicro is the inverse of micro.
func fromMicro(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// nullStr maps "" to NULL for optional foreign keys.
func nullStr(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
