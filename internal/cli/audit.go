package cli

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
)

const auditUsage = `usage:
  ferry audit verify --data DIR [--checkpoint FILE] [--db DSN]
        check that no audit record was edited, deleted, reordered or truncated;
        with --checkpoint, also prove that an older saved checkpoint is a prefix of today's log
  ferry audit log --data DIR [--since T] [--until T] [--actor EMAIL] [--path P] [--party P] [--action A] [--json] [--db DSN]
        list audit records; T is RFC 3339 (2026-11-30T08:00:00Z), a date (2026-11-30) or a duration ago (24h);
        A is an action (file.read) or a prefix (file.*)
` + auditImpactUsage

func runAudit(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 {
		io.WriteString(env.Stderr, auditUsage)
		return usagef("ferry audit: no command given")
	}
	fs := newFlags("ferry audit "+args[0], env)
	fs.Usage = func() { io.WriteString(env.Stderr, auditUsage) }
	data := fs.String("data", "", "data directory ($FERRY_DATA, default ./ferry-data)")
	dsn := fs.String("db", "", "database DSN when not SQLite in the data directory ($FERRY_DB)")
	switch args[0] {
	case "impact": // audit_impact.go
		return runAuditImpact(ctx, args[1:], env)
	case "verify":
		cp := fs.String("checkpoint", "", "an older checkpoint file to prove a prefix of the log")
		if _, err := parseInterspersed(fs, args[1:]); err != nil {
			return err
		}
		d, dir, err := openAuditDB(ctx, *data, *dsn, env)
		if err != nil {
			return err
		}
		defer d.Close()
		return auditVerify(ctx, d, dir, *cp, env)
	case "log":
		since := fs.String("since", "", "only records at or after T")
		until := fs.String("until", "", "only records before T")
		actor := fs.String("actor", "", "only records by this actor (email, operator, system)")
		path := fs.String("path", "", "only records on this path or below it")
		party := fs.String("party", "", "only records concerning this party")
		action := fs.String("action", "", "only this action (file.read) or prefix (file.*)")
		org := fs.String("org", "", "only this organisation")
		asJSON := fs.Bool("json", false, "one JSON object per line")
		if _, err := parseInterspersed(fs, args[1:]); err != nil {
			return err
		}
		f := audit.Filter{Actor: strings.ToLower(*actor), Path: *path, Party: *party, Action: *action, Org: *org}
		var err error
		if f.Since, err = parseWhen(*since, time.Now()); err != nil {
			return usagef("--since: %v", err)
		}
		if f.Until, err = parseWhen(*until, time.Now()); err != nil {
			return usagef("--until: %v", err)
		}
		d, _, err := openAuditDB(ctx, *data, *dsn, env)
		if err != nil {
			return err
		}
		defer d.Close()
		return auditLog(ctx, d, f, *asJSON, env.Stdout)
	case "-h", "--help", "help":
		io.WriteString(env.Stdout, auditUsage)
		return nil
	}
	io.WriteString(env.Stderr, auditUsage)
	return usagef("ferry audit: unknown command %q", args[0])
}

// openAuditDB opens the database of a data directory without creating one.
func openAuditDB(ctx context.Context, data, dsn string, env Env) (*db.DB, string, error) {
	if data == "" {
		data = env.Getenv("FERRY_DATA")
	}
	if data == "" {
		data = "./ferry-data"
	}
	if dsn == "" {
		dsn = env.Getenv("FERRY_DB")
	}
	if dsn == "" {
		dsn = filepath.Join(data, "ferry.db")
		if _, err := os.Stat(dsn); err != nil {
			return nil, "", fmt.Errorf("no Ferry database in %s (%v): pass --data DIR of a server, or --db DSN", data, err)
		}
	}
	d, err := db.Open(ctx, dsn)
	if err != nil {
		return nil, "", err
	}
	return d, data, nil
}

func auditVerify(ctx context.Context, d *db.DB, dir, oldFile string, env Env) error {
	v, err := audit.LoadVerifier(filepath.Join(dir, "keys"))
	if err != nil {
		return fmt.Errorf("audit verification key: %w", err)
	}
	latest, err := audit.ReadCheckpoint(audit.CheckpointFile(dir))
	if err != nil {
		return err
	}
	var old []byte
	if oldFile != "" {
		if old, err = os.ReadFile(oldFile); err != nil {
			return fmt.Errorf("read checkpoint: %w", err)
		}
	}
	start := time.Now()
	rep, err := audit.Verify(ctx, d, v, old, latest)
	if err != nil {
		return fmt.Errorf("audit log verification FAILED: %v", err)
	}
	msg := fmt.Sprintf("audit log OK: %d records, root %s", rep.Records, hex.EncodeToString(rep.Root[:])[:16])
	if rep.Checkpoint != nil {
		msg += fmt.Sprintf(", signed checkpoint of %d records at %s", rep.Checkpoint.N, rep.CheckpointTime.UTC().Format(time.RFC3339))
	}
	if old != nil {
		msg += ", older checkpoint is a prefix"
	}
	fmt.Fprintf(env.Stdout, "%s (%.1fs)\n", msg, time.Since(start).Seconds())
	return nil
}

func auditLog(ctx context.Context, d *db.DB, f audit.Filter, asJSON bool, out io.Writer) error {
	if asJSON {
		enc := json.NewEncoder(out)
		return audit.Query(ctx, d, f, func(ev *ferry.Event) error { return enc.Encode(ev) })
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tACTION\tOUTCOME\tORG\tPARTY\tPATH\tBYTES\tREMOTE\tDETAIL")
	err := audit.Query(ctx, d, f, func(ev *ferry.Event) error {
		_, err := fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", ev.Seq, ev.Time.UTC().Format(time.RFC3339), ev.Actor, ev.Action,
			ev.Outcome, ev.Org, ev.Party, printable(ev.Path), ev.Bytes, ev.Remote, printable(ev.Detail))
		return err
	})
	if ferr := tw.Flush(); err == nil {
		err = ferr
	}
	return err
}

// printable neutralises control characters so that names chosen by users
// cannot forge lines in a terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// parseWhen parses RFC 3339, a date, or a duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not RFC 3339, YYYY-MM-DD or a duration", s)
}
