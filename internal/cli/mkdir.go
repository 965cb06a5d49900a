package cli

import (
	"context"
	"fmt"
	"io"

	"ferry.dev/ferry/internal/client"
)

const mkdirUsage = `usage: ferry mkdir [-p] [connection flags] REMOTE...

Creates folders. The parent must exist, and the folder must not, unless -p.

  -p                  create missing parents; an existing folder is fine
` + connectionUsage

func runMkdir(ctx context.Context, args []string, env Env) error {
	fs := newFlags("ferry mkdir", env)
	fs.Usage = func() { io.WriteString(env.Stderr, mkdirUsage) }
	rf := addRemoteFlags(fs)
	parents := fs.Bool("p", false, "create parents as needed")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		io.WriteString(env.Stderr, mkdirUsage)
		return usagef("ferry mkdir: need REMOTE")
	}
	c, err := rf.client(env)
	if err != nil {
		return err
	}
	for _, r := range pos {
		r = client.Clean(r)
		if *parents {
			err = c.MkdirAll(ctx, r)
		} else {
			err = c.Mkdir(ctx, r)
		}
		if err != nil {
			return fmt.Errorf("mkdir %s: %w", r, err)
		}
	}
	return nil
}
