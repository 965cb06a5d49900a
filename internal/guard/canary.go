package guard

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"math/big"
	"strings"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
)

// Canary files are files no legitimate workflow reads: an administrator
// marks existing ones, or has decoys generated with plausible names and
// content. Reading one freezes the reader at once; sharing one (or a folder
// holding one) freezes the sharer. Nothing tells users a file is a canary.

// MarkCanary makes f a canary. The caller (internal/admin) audits it.
func (g *Guard) MarkCanary(ctx context.Context, f *ferry.File, decoy bool, by string) error {
	if err := g.cfg.DB.PutGuardCanary(ctx, &db.GuardCanary{FileID: f.ID, OrgID: f.OrgID, Decoy: decoy, Created: g.cfg.Now().UTC(), CreatedBy: by}); err != nil {
		return err
	}
	g.mu.Lock()
	if _, ok := g.canaries[f.ID]; !ok {
		g.canaries[f.ID] = f.OrgID
		g.gen++
		g.orgCan[f.OrgID]++
	}
	g.mu.Unlock()
	return nil
}

// UnmarkCanary makes a file an ordinary file again; one that is not a canary
// is a ferry.NotExist error.
func (g *Guard) UnmarkCanary(ctx context.Context, fileID string) error {
	if err := g.cfg.DB.DeleteGuardCanary(ctx, fileID); err != nil {
		if ferry.KindOf(err) == ferry.NotExist {
			return ferry.E("guard.UnmarkCanary", ferry.NotExist, "that file is not a canary")
		}
		return err
	}
	g.mu.Lock()
	if org, ok := g.canaries[fileID]; ok {
		delete(g.canaries, fileID)
		g.gen++
		g.orgCan[org]--
	}
	g.mu.Unlock()
	return nil
}

// Canaries returns an organisation's canary files, by path, and whether
// each is a generated decoy.
func (g *Guard) Canaries(ctx context.Context, orgID string) ([]*ferry.File, []bool, error) {
	return g.cfg.DB.GuardCanaryFiles(ctx, orgID)
}

// CanaryAt returns the path of a canary file at path or below it (path
// being a folder), or "" when there is none. Organisations without canaries
// cost no database access.
func (g *Guard) CanaryAt(ctx context.Context, orgID, path string) (string, error) {
	if g == nil {
		return "", nil
	}
	g.mu.Lock()
	n := g.orgCan[orgID]
	g.mu.Unlock()
	if n == 0 {
		return "", nil
	}
	files, _, err := g.cfg.DB.GuardCanaryFiles(ctx, orgID)
	if err != nil {
		return "", err
	}
	for _, f := range files {
		if path == "/" || f.Path == path || strings.HasPrefix(f.Path, path+"/") {
			return f.Path, nil
		}
	}
	return "", nil
}

// TripShare freezes p for sharing the canary file at canaryPath (audited as
// "alert.canary" and "alert.freeze") and returns the error that refuses the
// share (nil in monitor mode).
func (g *Guard) TripShare(ctx context.Context, p *ferry.Principal, path, canaryPath string) error {
	subj := Subject(p)
	if g == nil || subj == "" {
		return nil
	}
	why := "shared " + path
	if canaryPath != path {
		why += ", which holds canary file " + canaryPath
	} else {
		why = "shared canary file " + path
	}
	return g.trip(ctx, p, subj, g.policy(ctx, p.OrgID), "share", why, &ferry.File{OrgID: p.OrgID, Path: path})
}

// Decoy names: plausible files a thief would want.
var (
	decoyStems = []string{"Payroll", "customers_export", "Salaries", "passwords_backup", "Board_minutes", "bank_accounts",
		"Contracts_signed", "employee_SSN", "Invoices", "credit_cards", "Merger_plan", "vendor_master"}
	decoyExts = []string{".csv", ".xlsx", ".csv", ".txt", ".csv"}
)

// DecoyName returns a plausible file name such as "Payroll_2026_Q3.csv".
func DecoyName(r io.Reader, year int) (string, error) {
	stem, err := pick(r, len(decoyStems))
	if err != nil {
		return "", err
	}
	ext, err := pick(r, len(decoyExts))
	if err != nil {
		return "", err
	}
	q, err := pick(r, 4)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s_%d_Q%d%s", decoyStems[stem], year, q+1, decoyExts[ext]), nil
}

// DecoyContent returns plausible CSV content of rows random records: names,
// emails, account numbers and amounts. It is the same for every extension
// (a decoy is read, not opened).
func DecoyContent(r io.Reader, rows int) ([]byte, error) {
	first := []string{"Anna", "Ben", "Chloe", "David", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jonas", "Kara", "Liam", "Mia", "Noah", "Olga", "Paul"}
	last := []string{"Schmidt", "Martin", "Rossi", "Novak", "Jensen", "Garcia", "Smith", "Dubois", "Kowalski", "Nielsen", "Weber", "Moreau"}
	var b bytes.Buffer
	b.WriteString("id,first_name,last_name,email,iban,amount_eur\n")
	for i := range rows {
		f, err := pick(r, len(first))
		if err != nil {
			return nil, err
		}
		l, err := pick(r, len(last))
		if err != nil {
			return nil, err
		}
		acct, err := rand.Int(r, big.NewInt(1e10))
		if err != nil {
			return nil, err
		}
		amt, err := rand.Int(r, big.NewInt(1e7))
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%d,%s,%s,%s.%s@example.com,DE89370400%010d,%d.%02d\n", 100000+i, first[f], last[l],
			strings.ToLower(first[f]), strings.ToLower(last[l]), acct.Int64(), amt.Int64()/100, amt.Int64()%100)
	}
	return b.Bytes(), nil
}

func pick(r io.Reader, n int) (int, error) {
	v, err := rand.Int(r, big.NewInt(int64(n)))
	if err != nil {
		return 0, err
	}
	return int(v.Int64()), nil
}
