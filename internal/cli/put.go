package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"ferry.dev/ferry/internal/client"
)

const putUsage = `usage: ferry put [--json] [--chunk-size SIZE] [connection flags] LOCAL... REMOTE

Uploads files and whole directories (recursively). With one LOCAL file, REMOTE
is the file's new path, unless it is an existing folder or ends in "/": then
the file goes into it. With several LOCALs or a directory, REMOTE is a folder,
created with its parents as needed. Re-running an interrupted put resumes it.

  --chunk-size SIZE   bytes per request (default 16MiB; K, M, G, KiB… accepted)
  --json              one JSON object per file on stdout
` + connectionUsage

const connectionUsage = `  --server URL        server (default $FERRY_SERVER, else what ferry login stored)
  --token TOKEN       API token (default $FERRY_TOKEN, else stored)
  --ca FILE           CA certificate to trust (default $FERRY_CA, else stored)
`

// putJob is one local file and where it goes.
type putJob struct {
	local  string
	remote string
	size   int64
}

func runPut(ctx context.Context, args []string, env Env) error {
	fs := newFlags("ferry put", env)
	fs.Usage = func() { io.WriteString(env.Stderr, putUsage) }
	rf := addRemoteFlags(fs)
	jsonOut := fs.Bool("json", false, "one JSON object per file on stdout")
	chunkFlag := fs.String("chunk-size", "16MiB", "bytes per request")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		io.WriteString(env.Stderr, putUsage)
		return usagef("ferry put: need LOCAL... REMOTE")
	}
	chunk, err := parseSize(*chunkFlag)
	if err != nil || chunk < 1 {
		return usagef("ferry put: --chunk-size %q: want a positive size such as 16MiB", *chunkFlag)
	}
	locals, remote := pos[:len(pos)-1], pos[len(pos)-1]
	c, err := rf.client(env)
	if err != nil {
		return err
	}

	intoFolder := len(locals) > 1 || strings.HasSuffix(remote, "/")
	for _, l := range locals {
		fi, err := os.Stat(l)
		if err != nil {
			return fmt.Errorf("put %s: %w", l, unwrapPathError(err))
		}
		if fi.IsDir() {
			intoFolder = true
		}
	}
	if !intoFolder {
		// One file: into REMOTE if that is a folder.
		isDir, err := c.IsFolder(ctx, remote)
		if err != nil {
			return fmt.Errorf("put %s: %w", client.Clean(remote), err)
		}
		intoFolder = isDir
	}
	jobs, dirs, err := planPut(locals, remote, intoFolder, func(p string) {
		fmt.Fprintf(env.Stderr, "ferry: put: skipping %s: not a regular file\n", p)
	})
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if err := c.MkdirAll(ctx, d); err != nil {
			return fmt.Errorf("put %s: %w", d, err)
		}
	}
	var total int64
	for _, j := range jobs {
		total += j.size
	}
	p := newProgress(env, *jsonOut, len(jobs), total)
	defer p.close()
	for _, j := range jobs {
		if err := putOne(ctx, c, p, j, chunk); err != nil {
			p.fail()
			if ctx.Err() != nil {
				return fmt.Errorf("put %s: interrupted; run the same command again to resume", j.remote)
			}
			return fmt.Errorf("put %s: %w", j.remote, err)
		}
	}
	return nil
}

// putOne uploads one file.
func putOne(ctx context.Context, c *client.Client, p *progress, j putJob, chunk int64) error {
	f, err := os.Open(j.local)
	if err != nil {
		return unwrapPathError(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	start := time.Now()
	p.begin(j.remote, fi.Size())
	res, err := c.Upload(ctx, f, fi.Size(), j.remote, client.UploadOptions{ChunkSize: chunk, Progress: p.set})
	if err != nil {
		return err
	}
	p.done(transferRecord{Op: "put", Local: j.local, Remote: res.Path, Size: res.Size, SHA256: res.SHA256,
		Sent: res.Sent, ResumedFrom: res.ResumedFrom, Seconds: time.Since(start).Seconds()})
	return nil
}

// planPut maps local files and directories to remote paths. With intoFolder,
// remote is a folder and each LOCAL goes into it under its base name
// (directories recursively); otherwise the one LOCAL file becomes remote.
// It returns the files and the remote folders to create first (parents
// before children). skipped is told about what is neither a file nor a
// directory.
func planPut(locals []string, remote string, intoFolder bool, skipped func(string)) ([]putJob, []string, error) {
	remote = client.Clean(remote)
	if !intoFolder {
		fi, err := os.Stat(locals[0])
		if err != nil {
			return nil, nil, fmt.Errorf("put %s: %w", locals[0], unwrapPathError(err))
		}
		return []putJob{{local: locals[0], remote: remote, size: fi.Size()}}, nil, nil
	}
	var jobs []putJob
	dirs := []string{remote}
	for _, l := range locals {
		abs, err := filepath.Abs(l)
		if err != nil {
			return nil, nil, err
		}
		base := filepath.Base(abs)
		fi, err := os.Stat(l)
		if err != nil {
			return nil, nil, fmt.Errorf("put %s: %w", l, unwrapPathError(err))
		}
		if !fi.IsDir() {
			if !fi.Mode().IsRegular() {
				skipped(l)
				continue
			}
			jobs = append(jobs, putJob{local: l, remote: path.Join(remote, base), size: fi.Size()})
			continue
		}
		err = filepath.WalkDir(l, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return fmt.Errorf("put %s: %w", p, unwrapPathError(err))
			}
			rel, err := filepath.Rel(l, p)
			if err != nil {
				return err
			}
			dst := path.Join(remote, base, filepath.ToSlash(rel))
			if d.IsDir() {
				dirs = append(dirs, dst)
				return nil
			}
			if !d.Type().IsRegular() {
				skipped(p)
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return fmt.Errorf("put %s: %w", p, unwrapPathError(err))
			}
			jobs = append(jobs, putJob{local: p, remote: dst, size: info.Size()})
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return jobs, dirs, nil
}

// unwrapPathError drops the path from an *fs.PathError: the caller's message
// names it already.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// parseSize parses a byte count: "1048576", "16M", "16MiB", "1G", "512k".
// K, M, G and T mean powers of 1024, with or without "iB" or "B".
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "i")
	mult := int64(1)
	if t != "" {
		switch strings.ToUpper(t[len(t)-1:]) {
		case "K":
			mult = 1 << 10
		case "M":
			mult = 1 << 20
		case "G":
			mult = 1 << 30
		case "T":
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}
