package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// adminGuardUsage lists the guard's admin commands (docs/GUARD.md).
const adminGuardUsage = `  unfreeze --org ORG WHO                        lift a guard freeze: a user's EMAIL or a subject as listed
  guard show --org ORG                          guard policy, frozen principals, canaries, webhook
  guard policy --org ORG [--window 10m] [--max-files N] [--max-bytes N] [--addr-max-files N]
          [--org-max-files N] [--peak-factor N] [--monitor[=false]]
                                                change only the flags given; 0 turns a limit off
  guard webhook --org ORG --url URL --secret-stdin   alert webhook (--url "" removes it)
  canary mark|unmark --org ORG PATH…            make existing files canaries, or not
  canary generate --org ORG --folder /PATH [--count 3]   create decoy canary files
  canary list --org ORG
`

// guardView is the guard's state as the admin API returns it.
type guardView struct {
	Org     string `json:"org"`
	Default bool   `json:"default_policy"`
	Policy  struct {
		Window       string `json:"window"`
		MaxFiles     int    `json:"max_files"`
		MaxBytes     int64  `json:"max_bytes"`
		AddrMaxFiles int    `json:"addr_max_files"`
		OrgMaxFiles  int    `json:"org_max_files"`
		PeakFactor   int    `json:"peak_factor"`
		Monitor      bool   `json:"monitor"`
	} `json:"policy"`
	Frozen []struct {
		Subject string    `json:"subject"`
		Name    string    `json:"name"`
		Reason  string    `json:"reason"`
		Detail  string    `json:"detail"`
		Frozen  time.Time `json:"frozen"`
	} `json:"frozen"`
	Canaries []struct {
		Path  string `json:"path"`
		Size  int64  `json:"size"`
		Decoy bool   `json:"decoy"`
	} `json:"canaries"`
	Webhook    string `json:"webhook"`
	Deliveries []struct {
		ID        string     `json:"id"`
		Attempts  int        `json:"attempts"`
		Delivered *time.Time `json:"delivered"`
		LastError string     `json:"last_error"`
	} `json:"webhook_deliveries"`
}

func printGuard(w io.Writer, v *guardView, canariesOnly bool) {
	if !canariesOnly {
		p := v.Policy
		def := ""
		if v.Default {
			def = " (defaults)"
		}
		fmt.Fprintf(w, "organisation    %s\npolicy%s\n  window          %s\n  max-files       %d\n  max-bytes       %d\n  addr-max-files  %d\n  org-max-files   %d\n  peak-factor     %d\n  monitor         %t\n",
			v.Org, def, p.Window, p.MaxFiles, p.MaxBytes, p.AddrMaxFiles, p.OrgMaxFiles, p.PeakFactor, p.Monitor)
		fmt.Fprintf(w, "frozen          %d\n", len(v.Frozen))
		for _, f := range v.Frozen {
			fmt.Fprintf(w, "  %s  %s  since %s  %s: %s\n", f.Name, f.Subject, f.Frozen.Format(time.RFC3339), f.Reason, f.Detail)
		}
		hook := v.Webhook
		if hook == "" {
			hook = "none"
		}
		fmt.Fprintf(w, "webhook         %s\n", hook)
		for _, d := range v.Deliveries {
			state := "pending"
			if d.Delivered != nil {
				state = "delivered " + d.Delivered.Format(time.RFC3339)
			}
			fmt.Fprintf(w, "  %s  %s  attempts %d  %s\n", d.ID, state, d.Attempts, d.LastError)
		}
		fmt.Fprintf(w, "canaries        %d\n", len(v.Canaries))
	}
	for _, c := range v.Canaries {
		kind := "marked"
		if c.Decoy {
			kind = "decoy"
		}
		fmt.Fprintf(w, "  %s  %d bytes  %s\n", c.Path, c.Size, kind)
	}
}

// adminGuard runs `ferry admin unfreeze|guard …|canary …`.
func adminGuard(ctx context.Context, c *adminClient, cmd string, sub *flag.FlagSet, args []string, env Env) error {
	org := sub.String("org", "", "organisation")
	var (
		window    = sub.String("window", "", "sliding window, whole minutes (1m-60m)")
		maxFiles  = sub.Int("max-files", 0, "distinct files per principal per window")
		maxBytes  = sub.Int64("max-bytes", 0, "bytes per principal per window")
		addrFiles = sub.Int("addr-max-files", 0, "distinct files per source address per window")
		orgFiles  = sub.Int("org-max-files", 0, "distinct files per organisation per window (alert only)")
		factor    = sub.Int("peak-factor", 0, "freeze above this many times the principal's own 30-day peak")
		monitor   = sub.Bool("monitor", false, "alert, but freeze nobody")
		hookURL   = sub.String("url", "", "webhook URL (empty removes it)")
		secretIn  = sub.Bool("secret-stdin", false, "read the webhook secret from standard input")
		folder    = sub.String("folder", "", "folder for generated decoys")
		count     = sub.Int("count", 3, "how many decoys")
	)
	pos, err := parseInterspersed(sub, args)
	if err != nil {
		return err
	}
	if *org == "" {
		return usagef("usage: ferry admin %s --org ORG …", cmd)
	}
	out := env.Stdout
	show := func(canariesOnly bool) error {
		var v guardView
		if err := c.do(ctx, http.MethodGet, "/admin/v1/guard?org="+url.QueryEscape(*org), nil, &v); err != nil {
			return err
		}
		printGuard(out, &v, canariesOnly)
		return nil
	}
	switch cmd {
	case "unfreeze":
		if len(pos) != 1 {
			return usagef("usage: ferry admin unfreeze --org ORG EMAIL|SUBJECT")
		}
		if err := c.call(ctx, "/admin/v1/guard/unfreeze", map[string]any{"org": *org, "who": pos[0]}, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "unfroze %s in %s\n", pos[0], *org)
	case "guard show":
		return show(false)
	case "canary list":
		return show(true)
	case "guard policy":
		req := map[string]any{}
		sub.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "window":
				req["window"] = *window
			case "max-files":
				req["max_files"] = *maxFiles
			case "max-bytes":
				req["max_bytes"] = *maxBytes
			case "addr-max-files":
				req["addr_max_files"] = *addrFiles
			case "org-max-files":
				req["org_max_files"] = *orgFiles
			case "peak-factor":
				req["peak_factor"] = *factor
			case "monitor":
				req["monitor"] = *monitor
			}
		})
		var v guardView
		if err := c.call(ctx, "/admin/v1/guard/policy?org="+url.QueryEscape(*org), req, &v); err != nil {
			return err
		}
		printGuard(out, &v, false)
	case "guard webhook":
		secret := ""
		if *secretIn {
			line, err := bufio.NewReader(io.LimitReader(env.Stdin, 4096)).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("reading the secret from stdin: %w", err)
			}
			secret = strings.TrimRight(line, "\r\n")
		}
		if *hookURL != "" && secret == "" {
			return usagef("usage: ferry admin guard webhook --org ORG --url URL --secret-stdin (a secret of 16+ characters on stdin)")
		}
		if err := c.call(ctx, "/admin/v1/guard/webhook", map[string]any{"org": *org, "url": *hookURL, "secret": secret}, nil); err != nil {
			return err
		}
		if *hookURL == "" {
			fmt.Fprintf(out, "removed the webhook of %s\n", *org)
		} else {
			fmt.Fprintf(out, "alerts of %s go to %s\n", *org, *hookURL)
		}
	case "canary mark", "canary unmark":
		if len(pos) == 0 {
			return usagef("usage: ferry admin %s --org ORG PATH…", cmd)
		}
		action := strings.TrimPrefix(cmd, "canary ")
		if err := c.call(ctx, "/admin/v1/guard/canaries", map[string]any{"org": *org, "action": action, "paths": pos}, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "%sed %d canar%s\n", action, len(pos), map[bool]string{true: "y", false: "ies"}[len(pos) == 1])
	case "canary generate":
		if *folder == "" || len(pos) != 0 {
			return usagef("usage: ferry admin canary generate --org ORG --folder /PATH [--count 3]")
		}
		var resp struct {
			Paths []string `json:"paths"`
		}
		if err := c.call(ctx, "/admin/v1/guard/canaries", map[string]any{"org": *org, "action": "generate", "folder": *folder, "count": *count}, &resp); err != nil {
			return err
		}
		for _, p := range resp.Paths {
			fmt.Fprintln(out, p)
		}
	default:
		return usagef("ferry admin: unknown command %q", cmd)
	}
	return nil
}
