package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"ferry.dev/ferry/internal/client"
)

const shareUsage = `usage: ferry share [flags] [connection flags] REMOTE
       ferry share ls [--all] [--json] [connection flags]
       ferry share revoke [connection flags] ID...

Makes a share link for a file or folder and prints it: anyone holding the
link can download the file (or the folder's files), until it expires, is
used up or is revoked. The link is shown once; Ferry stores only its hash.

  --expires D         how long the link works: 7d (default), 12h, 90m
  --password-file F   protect the link with the password in file F (first line)
  --password-stdin    read the password from standard input (first line)
  --max-downloads N   stop after N downloads (0: no limit)
  --allow-ip CIDR     only visitors from this range (repeat for more)
  --dropbox           (folders) visitors upload, and cannot list or download
  --json              print the link as JSON

ferry share ls lists your active links (--all: the organisation's, for its
admins); ferry share revoke stops links at once.
` + connectionUsage

// parseLifetime parses 7d, 12h, 90m or a Go duration.
func parseLifetime(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil || d <= 0 || d > 3660 {
			return 0, fmt.Errorf("--expires %q: want a number of days such as 7d", s)
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--expires %q: want a duration such as 7d, 12h or 90m", s)
	}
	return d, nil
}

func runShare(ctx context.Context, args []string, env Env) error {
	if len(args) > 0 {
		switch args[0] {
		case "ls", "list":
			return runShareLs(ctx, args[1:], env)
		case "revoke":
			return runShareRevoke(ctx, args[1:], env)
		}
	}
	fs := newFlags("ferry share", env)
	fs.Usage = func() { io.WriteString(env.Stderr, shareUsage) }
	rf := addRemoteFlags(fs)
	expires := fs.String("expires", "7d", "lifetime")
	pwFile := fs.String("password-file", "", "password file")
	pwStdin := fs.Bool("password-stdin", false, "password on stdin")
	maxDl := fs.Int("max-downloads", 0, "download limit")
	var ips multiFlag
	fs.Var(&ips, "allow-ip", "allowed address range")
	dropbox := fs.Bool("dropbox", false, "upload-only folder")
	jsonOut := fs.Bool("json", false, "JSON output")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		io.WriteString(env.Stderr, shareUsage)
		return usagef("ferry share: need exactly one REMOTE")
	}
	if *pwFile != "" && *pwStdin {
		return usagef("ferry share: --password-file and --password-stdin exclude each other")
	}
	life, err := parseLifetime(*expires)
	if err != nil {
		return usagef("ferry share: %v", err)
	}
	req := client.ShareRequest{Path: client.Clean(pos[0]), MaxDownloads: *maxDl, AllowedIPs: ips}
	until := time.Now().Add(life).UTC()
	req.Expires = &until
	if *dropbox {
		req.Mode = "dropbox"
	}
	switch {
	case *pwFile != "":
		f, err := os.Open(*pwFile)
		if err != nil {
			return fmt.Errorf("ferry share: %w", err)
		}
		req.Password, err = firstLine(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("ferry share: reading %s: %w", *pwFile, err)
		}
	case *pwStdin:
		if req.Password, err = firstLine(env.Stdin); err != nil {
			return fmt.Errorf("ferry share: reading the password: %w", err)
		}
	}
	if (*pwFile != "" || *pwStdin) && req.Password == "" {
		return usagef("ferry share: the password is empty")
	}
	c, err := rf.client(env)
	if err != nil {
		return err
	}
	sh, err := c.CreateShare(ctx, req)
	if err != nil {
		return fmt.Errorf("share %s: %w", req.Path, err)
	}
	if *jsonOut {
		return json.NewEncoder(env.Stdout).Encode(sh)
	}
	fmt.Fprintln(env.Stdout, sh.URL)
	fmt.Fprintf(env.Stderr, "ferry: link %s for %s, %s, until %s%s\n", sh.ID, sh.Path, sh.Mode, sh.Expires.Local().Format("2006-01-02 15:04"), describeLimits(sh))
	return nil
}

func describeLimits(sh *client.Share) string {
	var out []string
	if sh.Password {
		out = append(out, "password")
	}
	if sh.MaxDownloads > 0 {
		out = append(out, fmt.Sprintf("%d downloads", sh.MaxDownloads))
	}
	if len(sh.AllowedIPs) > 0 {
		out = append(out, "from "+strings.Join(sh.AllowedIPs, " "))
	}
	if len(out) == 0 {
		return ""
	}
	return ", " + strings.Join(out, ", ")
}

// firstLine reads the first line of r, without its line ending.
func firstLine(r io.Reader) (string, error) {
	sc := bufio.NewScanner(io.LimitReader(r, 4096))
	if sc.Scan() {
		return strings.TrimRight(sc.Text(), "\r"), nil
	}
	return "", sc.Err()
}

func runShareLs(ctx context.Context, args []string, env Env) error {
	fs := newFlags("ferry share ls", env)
	fs.Usage = func() { io.WriteString(env.Stderr, shareUsage) }
	rf := addRemoteFlags(fs)
	all := fs.Bool("all", false, "every link of the organisation")
	jsonOut := fs.Bool("json", false, "JSON lines")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("ferry share ls: takes no arguments")
	}
	c, err := rf.client(env)
	if err != nil {
		return err
	}
	ss, err := c.Shares(ctx, *all)
	if err != nil {
		return fmt.Errorf("share ls: %w", err)
	}
	if *jsonOut {
		enc := json.NewEncoder(env.Stdout)
		for _, s := range ss {
			if err := enc.Encode(s); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPATH\tMODE\tEXPIRES\tDOWNLOADS\tOWNER")
	for _, s := range ss {
		dl := strconv.Itoa(s.Downloads)
		if s.MaxDownloads > 0 {
			dl += "/" + strconv.Itoa(s.MaxDownloads)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Path, s.Mode, s.Expires.UTC().Format("2006-01-02 15:04"), dl, s.Owner)
	}
	return tw.Flush()
}

func runShareRevoke(ctx context.Context, args []string, env Env) error {
	fs := newFlags("ferry share revoke", env)
	fs.Usage = func() { io.WriteString(env.Stderr, shareUsage) }
	rf := addRemoteFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("ferry share revoke: need ID")
	}
	c, err := rf.client(env)
	if err != nil {
		return err
	}
	for _, id := range pos {
		if err := c.RevokeShare(ctx, id); err != nil {
			return fmt.Errorf("share revoke %s: %w", id, err)
		}
		fmt.Fprintf(env.Stderr, "ferry: revoked %s\n", id)
	}
	return nil
}
