package cli

import (
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	"ferry.dev/ferry/internal/client"
)

const mvUsage = `usage: ferry mv [connection flags] SRC DST

Renames or moves a file or folder within the organisation. If DST is an
existing folder or ends in "/", SRC goes into it; otherwise DST must not
exist.
` + connectionUsage

func runMv(ctx context.Context, args []string, env Env) error {
	fs := newFlags("ferry mv", env)
	fs.Usage = func() { io.WriteString(env.Stderr, mvUsage) }
	rf := addRemoteFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		io.WriteString(env.Stderr, mvUsage)
		return usagef("ferry mv: need SRC DST")
	}
	c, err := rf.client(env)
	if err != nil {
		return err
	}
	src, dst := client.Clean(pos[0]), client.Clean(pos[1])
	into := strings.HasSuffix(pos[1], "/")
	if !into {
		if into, err = c.IsFolder(ctx, dst); err != nil {
			return fmt.Errorf("mv %s: %w", dst, err)
		}
	}
	if into {
		dst = path.Join(dst, path.Base(src))
	}
	if err := c.Move(ctx, src, dst); err != nil {
		return fmt.Errorf("mv %s: %w", src, err)
	}
	return nil
}
