package cli

import (
	"context"
	"fmt"
	"io"

	"ferry.dev/ferry/internal/client"
)

const rmUsage = `usage: ferry rm [-r] [connection flags] REMOTE...

Deletes files (crypto-shredded on the server) and empty folders; with -r,
folders with everything in them (contents first).

  -r                  delete folders recursively
` + connectionUsage

func runRm(ctx context.Context, args []string, env Env) error {
	fs := newFlags("ferry rm", env)
	fs.Usage = func() { io.WriteString(env.Stderr, rmUsage) }
	rf := addRemoteFlags(fs)
	recursive := fs.Bool("r", false, "delete folders recursively")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		io.WriteString(env.Stderr, rmUsage)
		return usagef("ferry rm: need REMOTE")
	}
	c, err := rf.client(env)
	if err != nil {
		return err
	}
	for _, r := range pos {
		r = client.Clean(r)
		if r == "/" {
			return fmt.Errorf("rm /: refusing to delete the root folder")
		}
		if *recursive {
			err = c.RemoveAll(ctx, r, nil)
		} else {
			err = c.Delete(ctx, r)
		}
		if err != nil {
			return fmt.Errorf("rm %s: %w", r, err)
		}
	}
	return nil
}
