package attack_test

import (
	"database/sql"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
	_ "modernc.org/sqlite"             // the "sqlite" driver

	"ferry.dev/ferry/internal/ferrytest"
)

// rawDB opens the server's database directly, as an intruder with the
// database's credentials (MOVEit step 3, Accellion's cleanup) would.
func rawDB(t *testing.T, s *ferrytest.Server) (*sql.DB, bool) {
	t.Helper()
	var d *sql.DB
	var err error
	pg := s.DSN != ""
	if pg {
		d, err = sql.Open("pgx", s.DSN)
	} else {
		d, err = sql.Open("sqlite", "file:"+filepath.Join(s.Data, "ferry.db")+"?_pragma=busy_timeout(10000)")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, pg
}

// TestAuditTamperDetected (Accellion FTA: the intruders deleted the logs
// behind them): every way of rewriting history in the database (editing a
// record's columns or its data, deleting one, truncating the tail together
// with its hashes and checkpoints, reordering two) makes `ferry audit
// verify` fail with a message saying so; the untouched log verifies.
func TestAuditTamperDetected(t *testing.T) {
	t.Parallel()
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			t.Parallel()
			tampers := []struct {
				name string
				sql  func(pg bool, mid, last int64) []string
			}{
				{"edit a column", func(pg bool, mid, last int64) []string {
					return []string{"UPDATE audit_records SET actor = 'nobody@acme.test', path = '/nothing' WHERE seq = " + itoa(mid)}
				}},
				{"edit the record data", func(pg bool, mid, last int64) []string {
					if pg {
						return []string{"UPDATE audit_records SET data = convert_to(replace(convert_from(data, 'UTF8'), 'alice', 'mallo'), 'UTF8') WHERE position('alice'::bytea in data) > 0"}
					}
					return []string{"UPDATE audit_records SET data = CAST(replace(CAST(data AS TEXT), 'alice', 'mallo') AS BLOB) WHERE instr(CAST(data AS TEXT), 'alice') > 0"}
				}},
				{"delete a record", func(pg bool, mid, last int64) []string {
					return []string{"DELETE FROM audit_records WHERE seq = " + itoa(mid)}
				}},
				{"delete a record and its hash", func(pg bool, mid, last int64) []string {
					return []string{"DELETE FROM audit_records WHERE seq = " + itoa(last), "DELETE FROM audit_hashes WHERE idx >= (SELECT count(*) FROM audit_records)"}
				}},
				{"truncate the tail with its hashes and checkpoints", func(pg bool, mid, last int64) []string {
					return []string{"DELETE FROM audit_records WHERE seq > " + itoa(mid), "DELETE FROM audit_hashes WHERE idx >= (SELECT count(*) FROM audit_records)",
						"DELETE FROM audit_checkpoints WHERE size > (SELECT count(*) FROM audit_records)"}
				}},
				{"reorder two records", func(pg bool, mid, last int64) []string {
					return []string{
						"UPDATE audit_records SET seq = -1 WHERE seq = " + itoa(mid),
						"UPDATE audit_records SET seq = " + itoa(mid) + " WHERE seq = " + itoa(mid+1),
						"UPDATE audit_records SET seq = " + itoa(mid+1) + " WHERE seq = -1",
					}
				}},
			}
			for _, tc := range tampers {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					var w *world
					if db == "postgres" {
						w = newWorld(t, ferrytest.WithPostgres())
					} else {
						w = newWorld(t)
					}
					s := w.s.(served).Server
					// Some reading and denied attempts, for records.
					ferrytest.Body(t, s.Do("GET", "/api/v1/files"+reportPath, w.alice, nil))
					ferrytest.Body(t, s.Do("GET", "/api/v1/files"+salaryPath, w.alice, nil))
					if out, errOut, err := s.Run("", "audit", "verify"); err != nil {
						t.Fatalf("untouched log: %v %s %s", err, out, errOut)
					}
					s.Stop() // the intruder edits the database at rest
					d, pg := rawDB(t, s)
					var last int64
					if err := d.QueryRow("SELECT max(seq) FROM audit_records").Scan(&last); err != nil || last < 10 {
						t.Fatalf("audit records: %d %v", last, err)
					}
					for _, q := range tc.sql(pg, last/2, last) {
						if _, err := d.Exec(q); err != nil {
							t.Fatalf("%s: %v", q, err)
						}
					}
					out, errOut, err := s.Run("", "audit", "verify")
					if err == nil {
						t.Fatalf("audit verify passed after %s:\n%s", tc.name, out)
					}
					if msg := err.Error() + errOut; !strings.Contains(msg, "verification FAILED") {
						t.Fatalf("audit verify after %s: unclear message %q", tc.name, msg)
					}
					t.Logf("%s", err)
				})
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// reviewedAuditUpdates are statements that write to an audit table other
// than by appending, each with why the log is still append-only.
var reviewedAuditUpdates = map[string]string{
	"UPDATE audit_records SET token = $1, session = $2, remote_ip = $3 WHERE seq = $4": "internal/db/impact.go fills derived index columns from the record's own JSON; the data and hashes that audit verify checks are untouched",
}

// TestAuditWriterHasNoDeletePath: no code of internal/audit or internal/db
// (outside tests and migrations) issues a DELETE or UPDATE on an audit
// table, and no SQL text does either.
func TestAuditWriterHasNoDeletePath(t *testing.T) {
	t.Parallel()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..")
	bad := regexp.MustCompile(`(?is)\b(DELETE\s+FROM|UPDATE|TRUNCATE(\s+TABLE)?|DROP\s+TABLE|ALTER\s+TABLE)\s+"?(audit_[a-z_]+)`)
	n := 0
	for _, dir := range []string{"audit", "db"} {
		ents, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
				continue
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, filepath.Join(root, dir, e.Name()), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(nd ast.Node) bool {
				lit, ok := nd.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				n++
				s, _ := strconv.Unquote(lit.Value)
				if m := bad.FindString(s); m != "" && reviewedAuditUpdates[s] == "" {
					t.Errorf("%s: %q: the audit tables are append-only", fset.Position(lit.Pos()), m)
				}
				return true
			})
		}
	}
	if n < 50 {
		t.Fatalf("only %d string literals read: wrong directories?", n)
	}
}
