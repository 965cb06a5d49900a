package db

import (
	"context"
	"database/sql"

	"ferry.dev/ferry/internal/ferry"
)

// CreateParty stores a party and its contacts.
func (d *DB) CreateParty(ctx context.Context, p *ferry.Party) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO parties (id, org_id, name, created) VALUES ($1, $2, $3, $4)`,
			p.ID, p.OrgID, p.Name, micro(p.Created)); err != nil {
			return dbErr("CreateParty", err)
		}
		for _, c := range p.Contacts {
			if _, err := tx.ExecContext(ctx, `INSERT INTO party_contacts (party_id, email) VALUES ($1, $2)`, p.ID, c); err != nil {
				return dbErr("CreateParty", err)
			}
		}
		return nil
	})
}

func (d *DB) partyContacts(ctx context.Context, p *ferry.Party) error {
	rows, err := d.sql.QueryContext(ctx, `SELECT email FROM party_contacts WHERE party_id = $1 ORDER BY email`, p.ID)
	if err != nil {
		return dbErr("partyContacts", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			return dbErr("partyContacts", err)
		}
		p.Contacts = append(p.Contacts, e)
	}
	return dbErr("partyContacts", rows.Err())
}

// PartyByName returns an organisation's party by name, with its contacts.
func (d *DB) PartyByName(ctx context.Context, orgID, name string) (*ferry.Party, error) {
	var p ferry.Party
	var created int64
	err := d.sql.QueryRowContext(ctx, `SELECT id, org_id, name, created FROM parties WHERE org_id = $1 AND name = $2`, orgID, name).
		Scan(&p.ID, &p.OrgID, &p.Name, &created)
	if err != nil {
		return nil, dbErr("PartyByName", err)
	}
	p.Created = fromMicro(created)
	return &p, d.partyContacts(ctx, &p)
}

// PartyByID returns a party by id, with its contacts.
func (d *DB) PartyByID(ctx context.Context, id string) (*ferry.Party, error) {
	var p ferry.Party
	var created int64
	err := d.sql.QueryRowContext(ctx, `SELECT id, org_id, name, created FROM parties WHERE id = $1`, id).
		Scan(&p.ID, &p.OrgID, &p.Name, &created)
	if err != nil {
		return nil, dbErr("PartyByID", err)
	}
	p.Created = fromMicro(created)
	return &p, d.partyContacts(ctx, &p)
}
