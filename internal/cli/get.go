package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"ferry.dev/ferry/internal/client"
)

const getUsage = `usage: ferry get [-r] [--json] [connection flags] REMOTE... LOCAL

Downloads files. With one REMOTE file, LOCAL is the new file, unless it is an
existing directory or ends in "/": then the file goes into it. With several
REMOTEs or a folder (-r), LOCAL is a directory, created as needed. An
interrupted get resumes from .NAME.ferry-part next to the target; every file
is checked against the server's SHA-256 before it is renamed into place.

  -r                  download folders recursively
  --json              one JSON object per file on stdout
` + connectionUsage

// getJob is one remote file and where it goes.
type getJob struct {
	remote string
	local  string
	size   int64
}

func runGet(ctx context.Context, args []string, env Env) error {
	fs := newFlags("ferry get", env)
	fs.Usage = func() { io.WriteString(env.Stderr, getUsage) }
	rf := addRemoteFlags(fs)
	jsonOut := fs.Bool("json", false, "one JSON object per file on stdout")
	recursive := fs.Bool("r", false, "download folders recursively")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		io.WriteString(env.Stderr, getUsage)
		return usagef("ferry get: need REMOTE... LOCAL")
	}
	remotes, local := pos[:len(pos)-1], pos[len(pos)-1]
	c, err := rf.client(env)
	if err != nil {
		return err
	}

	// What is each REMOTE?
	var jobs []getJob
	var dirs []string
	localIsDir := len(remotes) > 1 || strings.HasSuffix(local, "/") || strings.HasSuffix(local, string(os.PathSeparator))
	if fi, err := os.Stat(local); err == nil && fi.IsDir() {
		localIsDir = true
	}
	type item struct {
		remote string
		folder bool
		size   int64
	}
	var items []item
	for _, r := range remotes {
		r = client.Clean(r)
		isDir, err := c.IsFolder(ctx, r)
		if err != nil {
			return fmt.Errorf("get %s: %w", r, err)
		}
		if isDir {
			if !*recursive {
				return fmt.Errorf("get %s: is a folder (use -r)", r)
			}
			localIsDir = true
			items = append(items, item{remote: r, folder: true})
			continue
		}
		st, err := c.Stat(ctx, r)
		if err != nil {
			return fmt.Errorf("get %s: %w", r, err)
		}
		items = append(items, item{remote: r, size: st.Size})
	}
	if localIsDir {
		dirs = append(dirs, local)
	}
	for _, it := range items {
		if !it.folder {
			target := local
			if localIsDir {
				target = filepath.Join(local, path.Base(it.remote))
			}
			jobs = append(jobs, getJob{remote: it.remote, local: target, size: it.size})
			continue
		}
		base := filepath.Join(local, path.Base(it.remote))
		if it.remote == "/" {
			base = local
		}
		var walk func(remote, dir string) error
		walk = func(remote, dir string) error {
			dirs = append(dirs, dir)
			entries, err := c.List(ctx, remote)
			if err != nil {
				return fmt.Errorf("get %s: %w", remote, err)
			}
			for _, e := range entries {
				if !localName(e.Name) {
					return fmt.Errorf("get %s: refusing the name %q", remote, e.Name)
				}
				r := path.Join(remote, e.Name)
				if e.IsFolder() {
					if err := walk(r, filepath.Join(dir, e.Name)); err != nil {
						return err
					}
					continue
				}
				jobs = append(jobs, getJob{remote: r, local: filepath.Join(dir, e.Name), size: e.Size})
			}
			return nil
		}
		if err := walk(it.remote, base); err != nil {
			return err
		}
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("get: %w", err)
		}
	}

	var total int64
	for _, j := range jobs {
		total += j.size
	}
	p := newProgress(env, *jsonOut, len(jobs), total)
	defer p.close()
	for _, j := range jobs {
		start := time.Now()
		p.begin(j.local, j.size)
		res, err := c.Download(ctx, j.remote, j.local, client.DownloadOptions{Progress: p.set})
		if err != nil {
			p.fail()
			if ctx.Err() != nil {
				return fmt.Errorf("get %s: interrupted; run the same command again to resume", j.remote)
			}
			return fmt.Errorf("get %s: %w", j.remote, unwrapPathError(err))
		}
		p.done(transferRecord{Op: "get", Local: j.local, Remote: res.Path, Size: res.Size, SHA256: res.SHA256,
			Sent: res.Received, ResumedFrom: res.ResumedFrom, Seconds: time.Since(start).Seconds()})
	}
	return nil
}

// localName reports whether a name from a listing is safe as one local path
// element (the server validates names too; this is the client's own check).
func localName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, `/\`+"\x00")
}
