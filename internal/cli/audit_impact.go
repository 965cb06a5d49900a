package cli

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"ferry.dev/ferry/internal/admin"
	"ferry.dev/ferry/internal/audit"
	"ferry.dev/ferry/internal/auth"
	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/mail"
)

// `ferry audit impact`: the impact report (docs/IMPACT.md). Like `audit log`
// it opens the data directory's database directly (--db for PostgreSQL), so
// it works with the server stopped; it appends to the audit log itself (the
// report is audited as "impact.report", by the operator), signing a
// checkpoint first so that the report covers every record so far. The
// computation is internal/admin's, shared with the admin UI.

const auditImpactUsage = `  ferry audit impact --data DIR --from T1 --to T2 [--actor EMAIL] [--token ID] [--session ID] [--ip CIDR]
        [--json] [--notify] [--no-verify] [--db DSN]
        every party whose files were read in the scope, with the files, bytes, times, actors, addresses
        and the party's contacts; cites the signed audit checkpoint it was computed against.
        --ip takes a CIDR (203.0.113.0/24) or one address; --notify drafts one notification per party
        for review in the admin UI (Impact page) before sending; --no-verify skips verifying the whole log
`

func runAuditImpact(ctx context.Context, args []string, env Env) error {
	fs := newFlags("ferry audit impact", env)
	fs.Usage = func() { io.WriteString(env.Stderr, auditUsage) }
	data := fs.String("data", "", "data directory ($FERRY_DATA, default ./ferry-data)")
	dsn := fs.String("db", "", "database DSN when not SQLite in the data directory ($FERRY_DB)")
	from := fs.String("from", "", "start of the scope (T, inclusive)")
	to := fs.String("to", "", "end of the scope (T, exclusive)")
	actor := fs.String("actor", "", "only reads by this actor")
	token := fs.String("token", "", "only reads with this API token (its id, or the whole token)")
	session := fs.String("session", "", "only reads in this session (its id as the audit log records it)")
	ip := fs.String("ip", "", "only reads from this address or CIDR")
	asJSON := fs.Bool("json", false, "the report as JSON (schema "+audit.ImpactSchema+", docs/IMPACT.md)")
	notify := fs.Bool("notify", false, "draft one notification per party, for review in the admin UI")
	noVerify := fs.Bool("no-verify", false, "do not verify the whole audit log with the report")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	now := time.Now()
	scope := audit.ImpactScope{Actor: strings.ToLower(*actor), Token: *token, Session: *session}
	if id := auth.ParseTokenID(*token); id != "" {
		scope.Token = id // a whole token (a stolen one, say): its id is what the log records
	}
	var err error
	if *from == "" || *to == "" {
		return usagef("ferry audit impact: --from and --to are required")
	}
	if scope.From, err = parseWhen(*from, now); err != nil {
		return usagef("--from: %v", err)
	}
	if scope.To, err = parseWhen(*to, now); err != nil {
		return usagef("--to: %v", err)
	}
	if *ip != "" {
		if scope.CIDR, err = ParseCIDR(*ip); err != nil {
			return usagef("--ip: %v", err)
		}
	}
	if err := scope.Validate(); err != nil {
		return usagef("%s", ferry.Message(err))
	}
	d, dir, err := openAuditDB(ctx, *data, *dsn, env)
	if err != nil {
		return err
	}
	defer d.Close()
	keyDir := filepath.Join(dir, "keys")
	if _, err := audit.LoadVerifier(keyDir); err != nil {
		return fmt.Errorf("audit key: %w", err)
	}
	signer, verifier, err := audit.LoadOrCreateKey(keyDir, "ferry-audit", rand.Reader)
	if err != nil {
		return fmt.Errorf("audit key: %w", err)
	}
	ckFile := audit.CheckpointFile(dir)
	alog, err := audit.Open(ctx, d, signer, ckFile, nil, nil)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	defer alog.Close()
	ad := admin.New(d, nil, nil, nil, alog, time.Now, rand.Reader, nil)
	ad.SetAuditVerifier(verifier, ckFile)
	p := &ferry.Principal{Operator: true, Remote: "cli", Protocol: "cli"}
	var (
		rep    *audit.ImpactReport
		drafts []*db.ImpactDraft
	)
	if *notify {
		outbox, err := mail.New(mail.Config{DB: d})
		if err != nil {
			return err
		}
		ad.SetMail(outbox)
		rep, drafts, err = ad.DraftImpactNotices(ctx, p, scope, !*noVerify)
		if err != nil {
			return err
		}
	} else if rep, err = ad.ImpactReport(ctx, p, scope, !*noVerify); err != nil {
		return err
	}
	if *asJSON {
		out := struct {
			*audit.ImpactReport
			Drafts []impactDraftJSON `json:"drafts,omitempty"`
		}{ImpactReport: rep}
		for _, x := range drafts {
			out.Drafts = append(out.Drafts, impactDraftJSON{ID: x.ID, Report: x.Report, PartyID: x.PartyID, Party: x.Party,
				To: x.Recipients, Subject: x.Subject, Text: x.Body})
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if err := WriteImpactText(env.Stdout, rep); err != nil {
		return err
	}
	if *notify {
		writeDrafts(env.Stdout, drafts)
	}
	return nil
}

// impactDraftJSON is a drafted notification in --json --notify output.
type impactDraftJSON struct {
	ID      string   `json:"id"`
	Report  string   `json:"report"`
	PartyID string   `json:"party_id"`
	Party   string   `json:"party"`
	To      []string `json:"to"`
	Subject string   `json:"subject"`
	Text    string   `json:"text"`
}

// ParseCIDR parses one address range (a bare address is a range of one),
// as an organisation's allowed addresses are parsed (auth.ParseCIDRs).
func ParseCIDR(s string) (netip.Prefix, error) {
	ps, err := auth.ParseCIDRs(s)
	if err != nil {
		return netip.Prefix{}, errors.New(ferry.Message(err))
	}
	if len(ps) != 1 {
		return netip.Prefix{}, fmt.Errorf("%q is not one address or CIDR prefix", s)
	}
	return ps[0], nil
}

// WriteImpactText writes the human-readable form of a report.
func WriteImpactText(w io.Writer, rep *audit.ImpactReport) error {
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	fmt.Fprintf(w, "Impact report: reads from %s to %s", ts(rep.Scope.From), ts(rep.Scope.To))
	for _, kv := range [][2]string{{"org", rep.Scope.OrgID}, {"actor", rep.Scope.Actor}, {"token", rep.Scope.Token}, {"session", rep.Scope.Session}, {"ip", rep.Scope.CIDR}} {
		if kv[1] != "" {
			fmt.Fprintf(w, ", %s %s", kv[0], printable(kv[1]))
		}
	}
	fmt.Fprintln(w)
	c := rep.Check
	match := "matches the stored log"
	if !c.MatchesLog {
		match = "DOES NOT MATCH the stored log: run ferry audit verify"
	}
	fmt.Fprintf(w, "Computed against audit checkpoint %s of %d records, root %s, signed %s (%s)\n", c.Origin, c.Size, c.Root, ts(c.Time), match)
	switch v := rep.Verify; {
	case v == nil:
		fmt.Fprintln(w, "Audit log not verified (--no-verify)")
	case v.OK:
		fmt.Fprintf(w, "Audit log verified: %d records OK\n", v.Records)
	default:
		fmt.Fprintf(w, "AUDIT LOG VERIFICATION FAILED: %s\n", printable(v.Problem))
	}
	if rep.Pending > 0 {
		fmt.Fprintf(w, "%d reads in scope came after the checkpoint and are not included: run the report again\n", rep.Pending)
	}
	fmt.Fprintf(w, "%d parties, %d files, %d reads, %d bytes", rep.Totals.Parties, rep.Totals.Files, rep.Totals.Reads, rep.Totals.Bytes)
	if rep.Denied > 0 {
		fmt.Fprintf(w, " (and %d refused reads)", rep.Denied)
	}
	fmt.Fprintln(w)
	parties := rep.Parties
	if rep.NoParty != nil {
		parties = append(parties[:len(parties):len(parties)], rep.NoParty)
	}
	for _, p := range parties {
		fmt.Fprintln(w)
		if p.PartyID == "" {
			fmt.Fprintf(w, "NO PARTY (files not in a party's folder), org %s\n", printable(p.Org))
		} else {
			contacts := "none on record"
			if len(p.Contacts) > 0 {
				contacts = strings.Join(p.Contacts, ", ")
			}
			fmt.Fprintf(w, "PARTY %s (id %s), org %s; contacts: %s\n", printable(p.Party), p.PartyID, printable(p.Org), printable(contacts))
		}
		fmt.Fprintf(w, "  %d reads of %d files, %d bytes, first %s, last %s\n", p.Reads, len(p.Files), p.Bytes, ts(p.First), ts(p.Last))
		fmt.Fprintf(w, "  actors: %s\n  addresses: %s\n", printable(strings.Join(p.Actors, ", ")), printable(strings.Join(p.Remotes, ", ")))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  PATH\tFILE ID\tSHA-256\tBYTES\tREADS\tFIRST\tLAST\tACTORS")
		for _, f := range p.Files {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", printable(f.Path), f.FileID, f.SHA256, f.Bytes, f.Reads, ts(f.First), ts(f.Last), printable(strings.Join(f.Actors, ", ")))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "To check this report later, keep the checkpoint note below in a file and run")
	fmt.Fprintln(w, "  ferry audit verify --data DIR --checkpoint FILE")
	fmt.Fprintln(w, "which proves that today's log still begins with the records this report was computed from.")
	fmt.Fprintln(w, "--- checkpoint note ---")
	_, err := io.WriteString(w, c.Note)
	return err
}

func writeDrafts(w io.Writer, drafts []*db.ImpactDraft) {
	fmt.Fprintln(w)
	if len(drafts) == 0 {
		fmt.Fprintln(w, "No notifications drafted: no party's files were read in this scope.")
		return
	}
	fmt.Fprintf(w, "%d notifications drafted (report %s), not sent. Review, edit and send them in the admin UI,\n", len(drafts), drafts[0].Report)
	fmt.Fprintf(w, "page Impact, or at /admin/impact/drafts?report=%s on the admin listener.\n", drafts[0].Report)
	for _, x := range drafts {
		to := "NO RECIPIENTS (add the party's contacts)"
		if len(x.Recipients) > 0 {
			to = strings.Join(x.Recipients, ", ")
		}
		fmt.Fprintf(w, "\n=== draft %s for %s, to %s\nSubject: %s\n\n%s", x.ID, printable(x.Party), printable(to), printable(x.Subject), printableText(x.Body))
	}
}

// printableText is printable for text of several lines.
func printableText(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = printable(l)
	}
	return strings.Join(lines, "\n")
}
