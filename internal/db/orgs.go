package db

import (
	"context"
	"database/sql"

	"ferry.dev/ferry/internal/ferry"
)

// CreateOrg stores a new organisation together with its root folder.
func (d *DB) CreateOrg(ctx context.Context, o *ferry.Org, rootFolderID string) error {
	return d.tx(ctx, func(tx *sql.Tx) error { return createOrg(ctx, tx, o, rootFolderID) })
}

func createOrg(ctx context.Context, ex execer, o *ferry.Org, rootFolderID string) error {
	if _, err := ex.ExecContext(ctx, `INSERT INTO orgs (id, name, retention_days, created) VALUES ($1, $2, $3, $4)`,
		o.ID, o.Name, o.RetentionDays, micro(o.Created)); err != nil {
		return dbErr("CreateOrg", err)
	}
	_, err := ex.ExecContext(ctx, `INSERT INTO folders (id, org_id, parent_id, name, path, party_id, created) VALUES ($1, $2, NULL, '', '/', NULL, $3)`,
		rootFolderID, o.ID, micro(o.Created))
	return dbErr("CreateOrg", err)
}

const orgCols = `id, name, retention_days, created`

func scanOrg(row interface{ Scan(...any) error }) (*ferry.Org, error) {
	var o ferry.Org
	var created int64
	if err := row.Scan(&o.ID, &o.Name, &o.RetentionDays, &created); err != nil {
		return nil, err
	}
	o.Created = fromMicro(created)
	return &o, nil
}

// OrgByName returns the organisation with the given name.
func (d *DB) OrgByName(ctx context.Context, name string) (*ferry.Org, error) {
	return orgByName(ctx, d.sql, name)
}

func orgByName(ctx context.Context, ex execer, name string) (*ferry.Org, error) {
	o, err := scanOrg(ex.QueryRowContext(ctx, `SELECT `+orgCols+` FROM orgs WHERE name = $1`, name))
	if err != nil {
		return nil, dbErr("OrgByName", err)
	}
	return o, nil
}

// OrgByID returns the organisation with the given id.
func (d *DB) OrgByID(ctx context.Context, id string) (*ferry.Org, error) {
	o, err := scanOrg(d.sql.QueryRowContext(ctx, `SELECT `+orgCols+` FROM orgs WHERE id = $1`, id))
	if err != nil {
		return nil, dbErr("OrgByID", err)
	}
	return o, nil
}

// Orgs lists every organisation, by name.
func (d *DB) Orgs(ctx context.Context) ([]*ferry.Org, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+orgCols+` FROM orgs ORDER BY name`)
	if err != nil {
		return nil, dbErr("Orgs", err)
	}
	defer rows.Close()
	var out []*ferry.Org
	for rows.Next() {
		o, err := scanOrg(rows)
		if err != nil {
			return nil, dbErr("Orgs", err)
		}
		out = append(out, o)
	}
	return out, dbErr("Orgs", rows.Err())
}
