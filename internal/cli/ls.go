package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"

	"ferry.dev/ferry/internal/client"
)

const lsUsage = `usage: ferry ls [-l] [--json] [connection flags] [REMOTE]

Lists a folder (default "/"), folders with a trailing "/"; for a file, prints
its path.

  -l                  long listing: type, size, modified (UTC), name
  --json              one JSON object per entry on stdout
` + connectionUsage

func runLs(ctx context.Context, args []string, env Env) error {
	fs := newFlags("ferry ls", env)
	fs.Usage = func() { io.WriteString(env.Stderr, lsUsage) }
	rf := addRemoteFlags(fs)
	long := fs.Bool("l", false, "long listing")
	jsonOut := fs.Bool("json", false, "JSON lines")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		io.WriteString(env.Stderr, lsUsage)
		return usagef("ferry ls: at most one REMOTE")
	}
	remote := "/"
	if len(pos) == 1 {
		remote = pos[0]
	}
	remote = client.Clean(remote)
	c, err := rf.client(env)
	if err != nil {
		return err
	}
	entries, err := c.List(ctx, remote)
	if client.IsStatus(err, http.StatusNotFound) {
		// Not a folder: perhaps a file. If not, the folder error says so.
		st, serr := c.Stat(ctx, remote)
		if serr != nil {
			return fmt.Errorf("ls %s: %w", remote, err)
		}
		entries, err = []client.Entry{{Name: path.Base(remote), Type: "file", Size: st.Size, SHA256: st.SHA256}}, nil
	}
	if err != nil {
		return fmt.Errorf("ls %s: %w", remote, err)
	}
	switch {
	case *jsonOut:
		enc := json.NewEncoder(env.Stdout)
		for _, e := range entries {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
	case *long:
		io.WriteString(env.Stdout, longListing(entries))
	default:
		for _, e := range entries {
			fmt.Fprintln(env.Stdout, entryName(e))
		}
	}
	return nil
}

// longListing formats entries as aligned "TYPE SIZE MODIFIED NAME" lines.
func longListing(entries []client.Entry) string {
	w := 1
	for _, e := range entries {
		w = max(w, len(sizeColumn(e)))
	}
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&b, "%-6s  %*s  %s  %s\n", e.Type, w, sizeColumn(e), timeColumn(e.Modified), entryName(e))
	}
	return b.String()
}

func entryName(e client.Entry) string {
	if e.IsFolder() {
		return e.Name + "/"
	}
	return e.Name
}

func sizeColumn(e client.Entry) string {
	if e.IsFolder() {
		return "-"
	}
	return fmt.Sprint(e.Size)
}

func timeColumn(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04")
}
