package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"ferry.dev/ferry/internal/client"
)

const sendUsage = `usage: ferry send FILE... --to EMAIL [--to EMAIL…] [options] [connection flags]

Sends files as a package: recipients get a mail with a link (external
addresses also get a one-time code when they open it). Each file is uploaded
resumably, then the package is sent. Prints the package id and recipients.

  --to EMAIL           recipient; repeat it or give a comma-separated list
  --subject S          subject (default: the first file's name)
  --message M          message shown with the files
  --expires D          how long the link works: 7d, 36h… (default: the organisation's file expiry)
  --max-downloads N    downloads allowed per file and recipient (default unlimited)
  --require-signin     recipients must sign in to Ferry (no one-time codes)
  --notify             mail me on every download
  --allow-reply        recipients may send files back
  --json               print the package as JSON
` + connectionUsage

func runSend(ctx context.Context, args []string, env Env) error {
	fs := newFlags("ferry send", env)
	fs.Usage = func() { io.WriteString(env.Stderr, sendUsage) }
	rf := addRemoteFlags(fs)
	var to multiFlag
	fs.Var(&to, "to", "recipient (repeatable, or comma-separated)")
	subject := fs.String("subject", "", "subject")
	message := fs.String("message", "", "message")
	expires := fs.String("expires", "", "expiry such as 7d")
	maxDl := fs.Int("max-downloads", 0, "downloads per file and recipient")
	signin := fs.Bool("require-signin", false, "recipients must sign in")
	notify := fs.Bool("notify", false, "mail me on every download")
	reply := fs.Bool("allow-reply", false, "recipients may reply with files")
	jsonOut := fs.Bool("json", false, "print the package as JSON")
	files, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if len(files) == 0 || len(to) == 0 {
		io.WriteString(env.Stderr, sendUsage)
		return usagef("ferry send: need FILE... and --to EMAIL")
	}
	type job struct {
		local, name string
		size        int64
	}
	var jobs []job
	seen := map[string]bool{}
	var total int64
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return fmt.Errorf("send %s: %w", f, unwrapPathError(err))
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("send %s: not a regular file", f)
		}
		name := filepath.Base(f)
		if seen[name] {
			return fmt.Errorf("send: two files are called %s", name)
		}
		seen[name] = true
		jobs = append(jobs, job{local: f, name: name, size: fi.Size()})
		total += fi.Size()
	}
	if *subject == "" {
		*subject = jobs[0].name
	}
	c, err := rf.client(env)
	if err != nil {
		return err
	}
	// The draft is checked (recipients, subject, expiry) before any upload.
	pkg, err := c.CreatePackage(ctx, client.PackageRequest{To: to, Subject: *subject, Message: *message, Expires: *expires,
		MaxDownloads: *maxDl, RequireSignIn: *signin, Notify: *notify, AllowReply: *reply})
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	p := newProgress(env, false, len(jobs), total)
	for _, j := range jobs {
		err := putOne(ctx, c, p, putJob{local: j.local, remote: pkg.UploadFolder + "/" + j.name, size: j.size}, client.DefaultChunkSize)
		if err != nil {
			p.fail()
			p.close()
			if ctx.Err() != nil {
				return fmt.Errorf("send %s: interrupted; the package %s was not sent", j.local, pkg.ID)
			}
			return fmt.Errorf("send %s: %w (the package %s was not sent)", j.local, err, pkg.ID)
		}
	}
	p.close()
	sent, err := c.SendPackage(ctx, pkg.ID)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if *jsonOut {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sent)
	}
	var rcpts []string
	for _, r := range sent.Recipients {
		rcpts = append(rcpts, r.Email)
	}
	fmt.Fprintf(env.Stdout, "package %s sent to %s (%d files, expires %s)\n", sent.ID, strings.Join(rcpts, ", "), len(sent.Files), sent.Expires.Local().Format("2006-01-02 15:04"))
	return nil
}
