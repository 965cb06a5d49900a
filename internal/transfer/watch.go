package transfer

import (
	"context"
	"net/url"
	"strings"
	"time"

	"ferry.dev/ferry/internal/ferry"
)

// Folder watches: a user watching a folder is mailed when files arrive in it
// (not the ones they upload themselves), at most once per folder per batching
// window; files arriving within the window wait in the database and are
// listed together in the next mail. The watcher's permission is checked
// again when each mail goes out, so a watch outliving its grant tells
// nothing.

// Watch starts watching the folder at path for the principal, who needs list
// or read permission on it. Watching a folder twice is Exist.
func (s *Service) Watch(ctx context.Context, p *ferry.Principal, pth string) (*ferry.Watch, error) {
	const op = "transfer.Watch"
	pth, err := clean(op, p, pth)
	if err != nil {
		return nil, err
	}
	if p.UserID == "" || p.ShareID != "" {
		return nil, ferry.E(op, ferry.Permission, "only users can watch folders")
	}
	ev := s.event(p, "watch.add", pth)
	a, err := s.accessAt(ctx, p, pth)
	if err != nil {
		return nil, err
	}
	if a.perm&(ferry.PermList|ferry.PermRead) == 0 {
		ev.Outcome, ev.Detail = ferry.OutcomeDenied, "missing permission list or read"
		if err := s.append(ctx, ev); err != nil {
			return nil, err
		}
		if !a.visible {
			return nil, ferry.E(op, ferry.NotExist, "no such folder")
		}
		return nil, ferry.Errorf(op, ferry.Permission, "you need %q permission on %s to watch it", "list", pth)
	}
	fo, err := s.db.FolderByPath(ctx, p.OrgID, pth)
	if err != nil {
		return nil, s.notFound(ctx, op, ev, err)
	}
	ev.PartyID, _ = s.FolderParty(ctx, fo)
	w := &ferry.Watch{ID: ferry.NewID(s.rand), OrgID: p.OrgID, UserID: p.UserID, FolderID: fo.ID, Path: fo.Path, Created: s.now().UTC()}
	if err := s.db.CreateWatch(ctx, w); err != nil {
		if ferry.KindOf(err) == ferry.Exist {
			return nil, ferry.Errorf(op, ferry.Exist, "you already watch %s", pth)
		}
		return nil, s.fail(ctx, ev, err)
	}
	ev.Object = w.ID
	if err := s.append(ctx, ev); err != nil {
		return nil, err
	}
	return w, nil
}

// Watches lists the principal's watches.
func (s *Service) Watches(ctx context.Context, p *ferry.Principal) ([]*ferry.Watch, error) {
	if p == nil || p.UserID == "" || p.ShareID != "" {
		return nil, ferry.E("transfer.Watches", ferry.Unauthenticated, "authentication required")
	}
	return s.db.WatchesOfUser(ctx, p.UserID)
}

// WatchOf returns the principal's watch on the folder at path, or NotExist.
func (s *Service) WatchOf(ctx context.Context, p *ferry.Principal, pth string) (*ferry.Watch, error) {
	const op = "transfer.WatchOf"
	pth, err := clean(op, p, pth)
	if err != nil {
		return nil, err
	}
	fo, err := s.db.FolderByPath(ctx, p.OrgID, pth)
	if err != nil {
		return nil, ferry.E(op, ferry.NotExist, "no such watch")
	}
	return s.db.WatchOf(ctx, p.UserID, fo.ID)
}

// Unwatch ends one of the principal's watches, by id.
func (s *Service) Unwatch(ctx context.Context, p *ferry.Principal, id string) error {
	const op = "transfer.Unwatch"
	if p == nil || p.UserID == "" || p.ShareID != "" {
		return ferry.E(op, ferry.Unauthenticated, "authentication required")
	}
	w, err := s.db.WatchByID(ctx, id)
	if err != nil || w.UserID != p.UserID {
		// Someone else's watch, or none: the same answer, audited.
		ev := s.event(p, "watch.remove", "")
		ev.Object, ev.Outcome, ev.Detail = id, ferry.OutcomeDenied, "no such watch"
		if aerr := s.append(ctx, ev); aerr != nil {
			return aerr
		}
		return ferry.E(op, ferry.NotExist, "no such watch")
	}
	ev := s.event(p, "watch.remove", w.Path)
	ev.Object = w.ID
	if err := s.db.DeleteWatch(ctx, id); err != nil {
		return s.fail(ctx, ev, err)
	}
	return s.append(ctx, ev)
}

// fileArrived is called once a new file (or version) f has been committed
// by p: it queues a notice for every watcher of its folder but p.
func (s *Service) fileArrived(ctx context.Context, p *ferry.Principal, f *ferry.File) {
	if s.mail == nil {
		return
	}
	batch := s.watchBatch()
	ctx = context.WithoutCancel(ctx)
	ws, err := s.db.WatchesOfFolder(ctx, f.FolderID)
	if err != nil {
		s.logger.Error("watches of folder", "folder", f.FolderID, "err", err)
		return
	}
	for _, w := range ws {
		if p != nil && p.UserID != "" && w.UserID == p.UserID {
			continue
		}
		if err := s.db.AddWatchEvent(ctx, ferry.NewID(s.rand), w.ID, f.Name, s.now()); err != nil {
			s.logger.Error("add watch event", "watch", w.ID, "err", err)
			continue
		}
		if !s.flushWatch(ctx, w.ID) {
			s.scheduleFlush(w.ID, w.LastMail.Add(batch).Sub(s.now()))
		}
	}
}

// FlushWatches sends every watch notification that is due; a periodic
// sweep may call it so that batched notices go out after a restart too.
func (s *Service) FlushWatches(ctx context.Context) error {
	ws, err := s.db.WatchesDue(ctx, s.now().Add(-s.watchBatch()))
	if err != nil {
		return err
	}
	for _, w := range ws {
		s.flushWatch(ctx, w.ID)
	}
	return nil
}

// flushWatch mails a watch's pending files if its window allows, and
// reports whether the window allowed it.
func (s *Service) flushWatch(ctx context.Context, id string) bool {
	if s.mail == nil {
		return true
	}
	batch := s.watchBatch()
	now := s.now()
	names, err := s.db.TakeWatchEvents(ctx, id, now, now.Add(-batch))
	if err != nil {
		s.logger.Error("take watch events", "watch", id, "err", err)
		return true
	}
	if len(names) == 0 {
		return false
	}
	w, err := s.db.WatchByID(ctx, id)
	if err != nil {
		return true
	}
	u, err := s.db.UserByID(ctx, w.UserID)
	if err != nil || u.Disabled {
		return true
	}
	wp := &ferry.Principal{UserID: u.ID, Email: u.Email, OrgID: u.OrgID, Role: u.Role}
	if a, err := s.accessAt(ctx, wp, w.Path); err != nil || a.perm&(ferry.PermList|ferry.PermRead) == 0 {
		return true
	}
	segs := strings.Split(w.Path, "/")
	for i, sg := range segs {
		segs[i] = url.PathEscape(sg)
	}
	data := map[string]any{
		"Folder": w.Path, "Files": names, "Count": len(names), "Link": s.link("/files" + strings.Join(segs, "/")),
		"Window": batch.String(),
	}
	s.notify(ctx, "watch_new_file", []string{u.Email}, data)
	return true
}

// scheduleFlush tries a watch's notice again after d (once per watch at a
// time). It lives in this process only; FlushWatches catches up after a
// restart.
func (s *Service) scheduleFlush(id string, d time.Duration) {
	if d < time.Second {
		d = time.Second
	}
	st := &s.shares
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.timers == nil {
		st.timers = map[string]*time.Timer{}
	}
	if _, ok := st.timers[id]; ok {
		return
	}
	st.timers[id] = time.AfterFunc(d, func() {
		st.mu.Lock()
		delete(st.timers, id)
		st.mu.Unlock()
		s.flushWatch(context.Background(), id)
	})
}
