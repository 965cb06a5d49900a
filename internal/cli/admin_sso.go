package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// adminSSO runs `ferry admin sso set` and `ferry admin sso show`.
func adminSSO(ctx context.Context, c *adminClient, cmd string, sub *flag.FlagSet, args []string, env Env) error {
	org := sub.String("org", "", "organisation")
	if cmd == "sso show" {
		pos, err := parseInterspersed(sub, args)
		if err != nil {
			return err
		}
		if len(pos) != 0 || *org == "" {
			return usagef("usage: ferry admin sso show --org ORG")
		}
		var resp struct {
			Issuer    string    `json:"issuer"`
			ClientID  string    `json:"client_id"`
			Domains   []string  `json:"domains"`
			Provision string    `json:"provision"`
			Party     string    `json:"party"`
			Enabled   bool      `json:"enabled"`
			Updated   time.Time `json:"updated"`
		}
		if err := c.call(ctx, "/admin/v1/sso/show", map[string]any{"org": *org}, &resp); err != nil {
			return err
		}
		prov := resp.Provision
		if resp.Party != "" {
			prov += " (party " + resp.Party + ")"
		}
		doms := strings.Join(resp.Domains, ",")
		if doms == "" {
			doms = "(none)"
		}
		fmt.Fprintf(env.Stdout, "issuer     %s\nclient id  %s\nsecret     (stored sealed; not shown)\ndomains    %s\nprovision  %s\nenabled    %t\nupdated    %s\n",
			resp.Issuer, resp.ClientID, doms, prov, resp.Enabled, resp.Updated.Format(time.RFC3339))
		return nil
	}
	issuer := sub.String("issuer", "", "the provider's issuer URL")
	clientID := sub.String("client-id", "", "Ferry's client id at the provider")
	secretStdin := sub.Bool("client-secret-stdin", false, "read the client secret from the first line of standard input")
	domains := sub.String("domains", "", "comma-separated email domains whose users sign in through this provider")
	provision := sub.String("provision", "off", "unknown verified users: user, external or off")
	party := sub.String("party", "", "party of users provisioned as external")
	disabled := sub.Bool("disabled", false, "store the configuration but do not allow sign-in through it")
	const usage = "usage: ferry admin sso set --org ORG --issuer URL --client-id ID --client-secret-stdin [--domains a.com,b.com] [--provision user|external|off] [--party PARTY] [--disabled]"
	pos, err := parseInterspersed(sub, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *org == "" || *issuer == "" || *clientID == "" || !*secretStdin {
		return usagef(usage)
	}
	line, err := bufio.NewReader(io.LimitReader(env.Stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the client secret from stdin: %w", err)
	}
	secret := strings.TrimRight(line, "\r\n")
	if secret == "" {
		return usagef("--client-secret-stdin: standard input is empty")
	}
	var doms []string
	for _, d := range strings.Split(*domains, ",") {
		if d = strings.TrimSpace(d); d != "" {
			doms = append(doms, d)
		}
	}
	req := map[string]any{"org": *org, "issuer": *issuer, "client_id": *clientID, "client_secret": secret, "domains": doms,
		"provision": *provision, "party": *party, "disabled": *disabled}
	if err := c.call(ctx, "/admin/v1/sso", req, nil); err != nil {
		return err
	}
	state := "enabled"
	if *disabled {
		state = "disabled"
	}
	fmt.Fprintf(env.Stdout, "single sign-on for %s set (%s): issuer %s, client %s, provisioning %s\n", *org, state, *issuer, *clientID, *provision)
	return nil
}
