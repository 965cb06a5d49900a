package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"
)

// adminInvite is `ferry admin user invite`: POST /admin/v1/users/invite.
// The server mails the user a single-use link; it is never printed here.
func adminInvite(ctx context.Context, c *adminClient, sub *flag.FlagSet, args []string, env Env) error {
	const usage = "usage: ferry admin user invite --org ORG --email EMAIL [--role admin|user|external] [--party PARTY]"
	org := sub.String("org", "", "organisation")
	email := sub.String("email", "", "email address (the login name; the invitation goes there)")
	role := sub.String("role", "user", "admin, user or external")
	party := sub.String("party", "", "party (required for external users)")
	pos, err := parseInterspersed(sub, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *org == "" || *email == "" {
		return usagef(usage)
	}
	var resp struct {
		Email     string    `json:"email"`
		Expires   time.Time `json:"expires"`
		Reinvited bool      `json:"reinvited"`
		MailOn    bool      `json:"mail_configured"`
	}
	if err := c.call(ctx, "/admin/v1/users/invite", map[string]any{"org": *org, "email": *email, "role": *role, "party": *party}, &resp); err != nil {
		return err
	}
	again := ""
	if resp.Reinvited {
		again = " again (the earlier link no longer works)"
	}
	fmt.Fprintf(env.Stdout, "invited %s%s; the mailed link works once, until %s\n", strings.ToLower(*email), again, resp.Expires.UTC().Format(time.RFC3339))
	if !resp.MailOn {
		fmt.Fprintln(env.Stderr, "ferry: warning: the server has no SMTP server configured (--smtp-url); the invitation waits in the outbox until one is")
	}
	return nil
}
