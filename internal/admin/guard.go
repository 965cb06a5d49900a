package admin

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"time"

	"ferry.dev/ferry/internal/db"
	"ferry.dev/ferry/internal/ferry"
	"ferry.dev/ferry/internal/guard"
)

// The exfiltration guard's administration (docs/GUARD.md): its policy,
// frozen principals, canary files and the alert webhook, per organisation.
// Every change is audited ("guard.*").

// GuardView is an organisation's guard state for the admin UI and API.
type GuardView struct {
	Org      string
	Policy   *db.GuardPolicy
	Default  bool // Policy is the default (the organisation set none)
	Freezes  []*db.GuardFreeze
	Canaries []*GuardCanaryView
	Webhook  string // the webhook URL, "" when none (the secret is never shown)
	Outbox   []*db.GuardOutboxItem
}

// GuardCanaryView is one canary file.
type GuardCanaryView struct {
	Path  string
	Size  int64
	Decoy bool
}

// GuardPolicyChange changes an organisation's guard policy: nil fields keep
// their value.
type GuardPolicyChange struct {
	Window       *time.Duration
	MaxFiles     *int
	MaxBytes     *int64
	AddrMaxFiles *int
	OrgMaxFiles  *int
	PeakFactor   *int
	Monitor      *bool
}

func (s *Service) guard(op string) (*guard.Guard, error) {
	g := s.tr.Guard()
	if g == nil {
		return nil, ferry.E(op, ferry.Unavailable, "the guard is not running")
	}
	return g, nil
}

// guardOrg resolves the organisation and the guard for an administrator's
// call, auditing a refusal as action.
func (s *Service) guardOrg(ctx context.Context, op, action string, p *ferry.Principal, orgName string) (*guard.Guard, *ferry.Org, *ferry.Event, error) {
	ev := s.event(p, action)
	o, err := s.org(ctx, op, p, orgName)
	if err != nil {
		ev.Detail = "org " + orgName
		return nil, nil, nil, s.done(ctx, ev, err)
	}
	ev.OrgID = o.ID
	g, err := s.guard(op)
	if err != nil {
		return nil, nil, nil, s.done(ctx, ev, err)
	}
	return g, o, ev, nil
}

// GuardStatus returns an organisation's guard policy, frozen principals,
// canaries and webhook.
func (s *Service) GuardStatus(ctx context.Context, p *ferry.Principal, orgName string) (*GuardView, error) {
	const op = "admin.GuardStatus"
	o, err := s.org(ctx, op, p, orgName)
	if err != nil {
		ev := s.event(p, "guard.show")
		ev.Detail = "org " + orgName
		return nil, s.done(ctx, ev, err)
	}
	g, err := s.guard(op)
	if err != nil {
		return nil, err
	}
	v := &GuardView{Org: o.Name}
	if v.Policy, err = s.db.GuardPolicy(ctx, o.ID); ferry.KindOf(err) == ferry.NotExist {
		v.Policy, v.Default = guard.DefaultPolicy(o.ID), true
	} else if err != nil {
		return nil, err
	}
	if v.Freezes, err = g.Freezes(ctx, o.ID); err != nil {
		return nil, err
	}
	files, decoys, err := g.Canaries(ctx, o.ID)
	if err != nil {
		return nil, err
	}
	for i, f := range files {
		v.Canaries = append(v.Canaries, &GuardCanaryView{Path: f.Path, Size: f.Size, Decoy: decoys[i]})
	}
	w, items, err := g.Webhook(ctx, o.ID)
	if err != nil && ferry.KindOf(err) != ferry.NotExist {
		return nil, err
	}
	if w != nil {
		v.Webhook = w.URL
	}
	v.Outbox = items
	return v, nil
}

// Unfreeze lifts a freeze in one action. who is a user's email, or a frozen
// subject as listed ("user:ID", "share:ID", "guest:PACKAGE:EMAIL"). Audited
// as "guard.unfreeze".
func (s *Service) Unfreeze(ctx context.Context, p *ferry.Principal, orgName, who string) error {
	const op = "admin.Unfreeze"
	g, o, ev, err := s.guardOrg(ctx, op, "guard.unfreeze", p, orgName)
	if err != nil {
		return err
	}
	ev.Detail = who
	err = func() error {
		subject := who
		if !strings.Contains(who, ":") {
			u, err := s.db.UserByEmail(ctx, strings.ToLower(strings.TrimSpace(who)))
			if err != nil || u.OrgID != o.ID {
				return ferry.Errorf(op, ferry.NotExist, "no user %q in %s", who, o.Name)
			}
			subject = guard.UserSubject(u.ID)
		}
		ev.Object = subject
		frs, err := g.Freezes(ctx, o.ID)
		if err != nil {
			return err
		}
		for _, f := range frs {
			if f.Subject == subject {
				ev.Detail = f.Name + " (frozen " + f.Frozen.Format(time.RFC3339) + ": " + f.Reason + ": " + f.Detail + ")"
				return g.Unfreeze(ctx, subject)
			}
		}
		return ferry.Errorf(op, ferry.NotExist, "%s is not frozen in %s", who, o.Name)
	}()
	return s.done(ctx, ev, err)
}

// fileAt resolves a file path in an organisation.
func (s *Service) fileAt(ctx context.Context, op string, o *ferry.Org, path string) (*ferry.File, error) {
	clean, err := ferry.CleanPath(path)
	if err != nil {
		return nil, err
	}
	parent, name := ferry.ParentPath(clean)
	fo, err := s.db.FolderByPath(ctx, o.ID, parent)
	if err == nil {
		var f *ferry.File
		if f, err = s.db.FileByName(ctx, fo.ID, name); err == nil {
			return f, nil
		}
	}
	if ferry.KindOf(err) == ferry.NotExist {
		return nil, ferry.Errorf(op, ferry.NotExist, "no file %s in %s", clean, o.Name)
	}
	return nil, err
}

// MarkCanary makes existing files canaries ("guard.canary.mark"), or, with
// unmark, ordinary files again ("guard.canary.unmark").
func (s *Service) MarkCanary(ctx context.Context, p *ferry.Principal, orgName string, paths []string, unmark bool) error {
	const op = "admin.MarkCanary"
	action := "guard.canary.mark"
	if unmark {
		action = "guard.canary.unmark"
	}
	g, o, ev, err := s.guardOrg(ctx, op, action, p, orgName)
	if err != nil {
		return err
	}
	if len(paths) == 0 || len(paths) > 1000 {
		return s.done(ctx, ev, ferry.E(op, ferry.Invalid, "name 1 to 1000 files"))
	}
	for _, path := range paths {
		e := *ev
		e.Path = path
		err := func() error {
			f, err := s.fileAt(ctx, op, o, path)
			if err != nil {
				return err
			}
			e.Object, e.Path, e.PartyID = f.ID, f.Path, f.PartyID
			if unmark {
				return g.UnmarkCanary(ctx, f.ID)
			}
			return g.MarkCanary(ctx, f, false, p.Name())
		}()
		if err := s.done(ctx, &e, err); err != nil {
			return err
		}
	}
	return nil
}

// GenerateDecoys creates n decoy files with plausible names and content in
// folder (through transfer, like any upload) and makes them canaries
// ("guard.canary.generate"). It returns their paths.
func (s *Service) GenerateDecoys(ctx context.Context, p *ferry.Principal, orgName, folder string, n int) ([]string, error) {
	const op = "admin.GenerateDecoys"
	g, o, ev, err := s.guardOrg(ctx, op, "guard.canary.generate", p, orgName)
	if err != nil {
		return nil, err
	}
	ev.Path = folder
	var paths []string
	err = func() error {
		if n < 1 || n > 100 {
			return ferry.E(op, ferry.Invalid, "generate 1 to 100 decoys at a time")
		}
		dir, err := ferry.CleanPath(folder)
		if err != nil {
			return err
		}
		year := s.now().Year()
		for range n {
			var name string
			for try := 0; ; try++ {
				if name, err = guard.DecoyName(s.rand, year); err != nil {
					return ferry.E(op, ferry.Internal, err)
				}
				if try > 0 {
					name = strings.Replace(name, ".", "_"+strconv.Itoa(try+1)+".", 1)
				}
				if _, err := s.fileAt(ctx, op, o, joinPath(dir, name)); ferry.KindOf(err) == ferry.NotExist {
					break
				}
			}
			content, err := guard.DecoyContent(s.rand, 200)
			if err != nil {
				return ferry.E(op, ferry.Internal, err)
			}
			f, err := s.tr.Put(ctx, scoped(p, o), joinPath(dir, name), bytes.NewReader(content))
			if err != nil {
				return err
			}
			if err := g.MarkCanary(ctx, f, true, p.Name()); err != nil {
				return err
			}
			paths = append(paths, f.Path)
		}
		return nil
	}()
	ev.Detail = strconv.Itoa(len(paths)) + " decoys: " + strings.Join(paths, ", ")
	return paths, s.done(ctx, ev, err)
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// SetGuardPolicy changes an organisation's guard policy ("guard.policy",
// with every changed value as old→new) and returns the new one.
func (s *Service) SetGuardPolicy(ctx context.Context, p *ferry.Principal, orgName string, ch GuardPolicyChange) (*db.GuardPolicy, error) {
	const op = "admin.SetGuardPolicy"
	g, o, ev, err := s.guardOrg(ctx, op, "guard.policy", p, orgName)
	if err != nil {
		return nil, err
	}
	ev.Object = o.ID
	var pol *db.GuardPolicy
	err = func() error {
		old, err := g.Policy(ctx, o.ID)
		if err != nil {
			return err
		}
		nw := *old
		var diff []string
		setInt := func(name string, dst *int, v *int) {
			if v != nil && *v != *dst {
				diff = append(diff, name+" "+strconv.Itoa(*dst)+"→"+strconv.Itoa(*v))
				*dst = *v
			}
		}
		if ch.Window != nil && *ch.Window != nw.Window {
			diff = append(diff, "window "+nw.Window.String()+"→"+ch.Window.String())
			nw.Window = *ch.Window
		}
		setInt("max-files", &nw.MaxFiles, ch.MaxFiles)
		if ch.MaxBytes != nil && *ch.MaxBytes != nw.MaxBytes {
			diff = append(diff, "max-bytes "+strconv.FormatInt(nw.MaxBytes, 10)+"→"+strconv.FormatInt(*ch.MaxBytes, 10))
			nw.MaxBytes = *ch.MaxBytes
		}
		setInt("addr-max-files", &nw.AddrMaxFiles, ch.AddrMaxFiles)
		setInt("org-max-files", &nw.OrgMaxFiles, ch.OrgMaxFiles)
		setInt("peak-factor", &nw.PeakFactor, ch.PeakFactor)
		if ch.Monitor != nil && *ch.Monitor != nw.Monitor {
			diff = append(diff, "monitor "+strconv.FormatBool(nw.Monitor)+"→"+strconv.FormatBool(*ch.Monitor))
			nw.Monitor = *ch.Monitor
		}
		ev.Detail = "no change"
		if len(diff) > 0 {
			ev.Detail = strings.Join(diff, "; ")
		}
		if err := g.SetPolicy(ctx, &nw); err != nil {
			return err
		}
		pol = &nw
		return nil
	}()
	return pol, s.done(ctx, ev, err)
}

// SetGuardWebhook sets (or, with an empty URL, removes) an organisation's
// alert webhook ("guard.webhook"; the secret is not recorded).
func (s *Service) SetGuardWebhook(ctx context.Context, p *ferry.Principal, orgName, url, secret string) error {
	const op = "admin.SetGuardWebhook"
	g, o, ev, err := s.guardOrg(ctx, op, "guard.webhook", p, orgName)
	if err != nil {
		return err
	}
	ev.Object, ev.Detail = o.ID, "url "+url
	if url == "" {
		ev.Detail = "removed"
	}
	return s.done(ctx, ev, g.SetWebhook(ctx, o.ID, url, secret))
}

// MaxGiB is the policy's byte limit in whole GiB (for the admin UI's form).
func (v *GuardView) MaxGiB() int64 { return v.Policy.MaxBytes >> 30 }

// WindowMinutes is the policy's window in minutes (for the admin UI's form).
func (v *GuardView) WindowMinutes() int64 { return int64(v.Policy.Window / time.Minute) }
