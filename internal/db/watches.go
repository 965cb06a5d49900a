package db

import (
	"context"
	"database/sql"
	"time"

	"ferry.dev/ferry/internal/ferry"
)

const watchCols = `w.id, w.org_id, w.user_id, w.folder_id, f.path, w.created, w.last_mail`

const watchFrom = ` FROM folder_watches w JOIN folders f ON f.id = w.folder_id `

func scanWatch(row interface{ Scan(...any) error }) (*ferry.Watch, error) {
	var w ferry.Watch
	var created, last int64
	if err := row.Scan(&w.ID, &w.OrgID, &w.UserID, &w.FolderID, &w.Path, &created, &last); err != nil {
		return nil, err
	}
	w.Created, w.LastMail = fromMicro(created), fromMicro(last)
	return &w, nil
}

func watchRows(op string, rows *sql.Rows, err error) ([]*ferry.Watch, error) {
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	var out []*ferry.Watch
	for rows.Next() {
		w, err := scanWatch(rows)
		if err != nil {
			return nil, dbErr(op, err)
		}
		out = append(out, w)
	}
	return out, dbErr(op, rows.Err())
}

// CreateWatch stores a user's watch on a folder; watching a folder twice is
// ferry.Exist.
func (d *DB) CreateWatch(ctx context.Context, w *ferry.Watch) error {
	_, err := d.sql.ExecContext(ctx, `INSERT INTO folder_watches (id, org_id, user_id, folder_id, created, last_mail) VALUES ($1, $2, $3, $4, $5, 0)`,
		w.ID, w.OrgID, w.UserID, w.FolderID, micro(w.Created))
	return dbErr("CreateWatch", err)
}

// WatchByID returns a watch by id.
func (d *DB) WatchByID(ctx context.Context, id string) (*ferry.Watch, error) {
	w, err := scanWatch(d.sql.QueryRowContext(ctx, `SELECT `+watchCols+watchFrom+`WHERE w.id = $1`, id))
	if err != nil {
		return nil, dbErr("WatchByID", err)
	}
	return w, nil
}

// WatchOf returns a user's watch on a folder.
func (d *DB) WatchOf(ctx context.Context, userID, folderID string) (*ferry.Watch, error) {
	w, err := scanWatch(d.sql.QueryRowContext(ctx, `SELECT `+watchCols+watchFrom+`WHERE w.user_id = $1 AND w.folder_id = $2`, userID, folderID))
	if err != nil {
		return nil, dbErr("WatchOf", err)
	}
	return w, nil
}

// WatchesOfUser lists a user's watches by folder path.
func (d *DB) WatchesOfUser(ctx context.Context, userID string) ([]*ferry.Watch, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+watchCols+watchFrom+`WHERE w.user_id = $1 ORDER BY f.path LIMIT 1000`, userID)
	return watchRows("WatchesOfUser", rows, err)
}

// WatchesOfFolder lists the watches on a folder.
func (d *DB) WatchesOfFolder(ctx context.Context, folderID string) ([]*ferry.Watch, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+watchCols+watchFrom+`WHERE w.folder_id = $1 LIMIT 10000`, folderID)
	return watchRows("WatchesOfFolder", rows, err)
}

// DeleteWatch removes a watch and its pending events.
func (d *DB) DeleteWatch(ctx context.Context, id string) error {
	return d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM watch_events WHERE watch_id = $1`, id); err != nil {
			return dbErr("DeleteWatch", err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM folder_watches WHERE id = $1`, id)
		return affectedOne("DeleteWatch", res, err)
	})
}

// AddWatchEvent records a file that arrived in a watched folder, to be
// mailed with the next notification.
func (d *DB) AddWatchEvent(ctx context.Context, id, watchID, name string, when time.Time) error {
	_, err := d.sql.ExecContext(ctx, `INSERT INTO watch_events (id, watch_id, name, created) VALUES ($1, $2, $3, $4)`, id, watchID, name, micro(when))
	return dbErr("AddWatchEvent", err)
}

// WatchesDue lists the watches with pending events whose last mail was at
// or before quietSince: the ones a notification may go out for now.
func (d *DB) WatchesDue(ctx context.Context, quietSince time.Time) ([]*ferry.Watch, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT `+watchCols+watchFrom+`WHERE w.last_mail <= $1 AND EXISTS (SELECT 1 FROM watch_events e WHERE e.watch_id = w.id) LIMIT 1000`, micro(quietSince))
	return watchRows("WatchesDue", rows, err)
}

// TakeWatchEvents claims a watch's notification: when its last mail was at
// or before quietSince it records now as the last mail, removes the pending
// events and returns their file names, oldest first, all in one
// transaction. Otherwise (mailed recently, or claimed by another node) it
// returns no names and changes nothing.
func (d *DB) TakeWatchEvents(ctx context.Context, watchID string, now, quietSince time.Time) ([]string, error) {
	var names []string
	err := d.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE folder_watches SET last_mail = $1 WHERE id = $2 AND last_mail <= $3
			AND EXISTS (SELECT 1 FROM watch_events e WHERE e.watch_id = folder_watches.id)`, micro(now), watchID, micro(quietSince))
		if err != nil {
			return dbErr("TakeWatchEvents", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return dbErr("TakeWatchEvents", err)
		}
		rows, err := tx.QueryContext(ctx, `SELECT name FROM watch_events WHERE watch_id = $1 ORDER BY created, id LIMIT 10000`, watchID)
		if err != nil {
			return dbErr("TakeWatchEvents", err)
		}
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return dbErr("TakeWatchEvents", err)
			}
			names = append(names, n)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return dbErr("TakeWatchEvents", err)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM watch_events WHERE watch_id = $1`, watchID)
		return dbErr("TakeWatchEvents", err)
	})
	return names, err
}
