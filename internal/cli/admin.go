package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const adminUsage = `usage: ferry admin --data DIR COMMAND …

  org create NAME
  party create --org ORG NAME --contact EMAIL [--contact EMAIL…]
  user create --org ORG --email EMAIL [--role admin|user|external] [--party PARTY] [--password-stdin]
  user disable EMAIL
  user enable EMAIL                             re-enable a disabled user; sessions that ended stay ended
  user role EMAIL --role admin|user|external
  user invite --org ORG --email EMAIL [--role admin|user|external] [--party PARTY]
                                                mails a single-use link to choose a password (docs/MAIL.md)
  folder create --org ORG /PATH [--party PARTY]
  grant --org ORG --user EMAIL /PATH PERMS      PERMS: list,read,write,delete,share,manage (or none)
  grant revoke --org ORG --user EMAIL /PATH     remove the user's grant on that folder (grants on
                                                parent folders are not touched)
  token create --user EMAIL [--expires 720h]    prints only the token
  token revoke TOKEN-ID
  sshkey add --user EMAIL --key-file FILE
  hold --org ORG /PATH [--release]              legal hold: the file never expires
  policy show --org ORG                         the organisation's sign-in policy
  policy set --org ORG [--min-password-len N] [--mfa-required] [--passkeys allowed|required|off]
          [--sso-required] [--session-idle 30m] [--session-max 12h]
          [--allowed-cidrs 10.0.0.0/8,…|none] [--sftp-keys-only]
                                                change only the flags given; see docs/POLICY.md
  sso set --org ORG --issuer URL --client-id ID --client-secret-stdin [--domains a.com,b.com]
          [--provision user|external|off] [--party PARTY] [--disabled]
                                                single sign-on (OpenID Connect); see docs/SSO.md
  sso show --org ORG
  hostkeys                                      SFTP host key fingerprints (reads DIR/keys; no server needed)

Except for hostkeys, the server must be running: ferry admin talks to it over
DIR/admin.sock.
`

// adminClient calls the admin API over the control socket.
type adminClient struct {
	sock string
	http *http.Client
}

func newAdminClient(data string) *adminClient {
	sock := filepath.Join(data, "admin.sock")
	return &adminClient{sock: sock, http: &http.Client{
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}}
}

// call POSTs req as JSON to path and decodes the answer into resp.
func (c *adminClient) call(ctx context.Context, path string, req, resp any) error {
	return c.do(ctx, http.MethodPost, path, req, resp)
}

// do sends req as JSON (no body if req is nil) with method to path and
// decodes the answer into resp.
func (c *adminClient) do(ctx context.Context, method, path string, req, resp any) error {
	var body io.Reader = http.NoBody
	if req != nil {
		b, err := json.Marshal(req)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	hr, err := http.NewRequestWithContext(ctx, method, "http://ferry"+path, body)
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json")
	res, err := c.http.Do(hr)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("cannot reach the Ferry server at %s: is `ferry serve --data %s` running?", c.sock, filepath.Dir(c.sock))
		}
		if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EACCES) {
			return fmt.Errorf("permission denied on %s: run ferry admin as the user that runs the server", c.sock)
		}
		return fmt.Errorf("cannot reach the Ferry server at %s: %v", c.sock, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading the server's answer: %w", err)
	}
	if res.StatusCode >= 300 {
		var e struct {
			Error struct{ Kind, Message string } `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s (%s)", e.Error.Message, e.Error.Kind)
		}
		return fmt.Errorf("server answered %s", res.Status)
	}
	if resp != nil {
		return json.Unmarshal(data, resp)
	}
	return nil
}

func runAdmin(ctx context.Context, args []string, env Env) error {
	fs := newFlags("ferry admin", env)
	data := fs.String("data", "", "data directory of the running server ($FERRY_DATA, default ./ferry-data)")
	fs.Usage = func() { io.WriteString(env.Stderr, adminUsage+adminGuardUsage) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &UsageError{Msg: err.Error()}
	}
	if *data == "" {
		*data = env.Getenv("FERRY_DATA")
	}
	if *data == "" {
		*data = "./ferry-data"
	}
	rest := fs.Args()
	if len(rest) == 0 {
		io.WriteString(env.Stderr, adminUsage)
		return usagef("ferry admin: no command given")
	}
	if rest[0] == "hostkeys" {
		return runHostKeys(*data, rest[1:], env)
	}
	c := newAdminClient(*data)
	cmd := rest[0]
	if len(rest) > 1 && !strings.HasPrefix(rest[1], "-") && cmd != "grant" && cmd != "hold" && cmd != "unfreeze" {
		cmd += " " + rest[1]
		rest = rest[1:]
	}
	if cmd == "grant" && len(rest) > 1 && rest[1] == "revoke" { // "grant /PATH PERMS" has no subcommand
		cmd, rest = "grant revoke", rest[1:]
	}
	sub := newFlags("ferry admin "+cmd, env)
	sub.Usage = func() { io.WriteString(env.Stderr, adminUsage) }
	out := env.Stdout
	switch cmd {
	case "org create":
		pos, err := parseInterspersed(sub, rest[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("usage: ferry admin org create NAME")
		}
		if err := c.call(ctx, "/admin/v1/orgs", map[string]any{"name": pos[0]}, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "created organisation %s\n", pos[0])
	case "party create":
		org := sub.String("org", "", "organisation")
		var contacts multiFlag
		sub.Var(&contacts, "contact", "contact email (repeatable)")
		pos, err := parseInterspersed(sub, rest[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 || *org == "" {
			return usagef("usage: ferry admin party create --org ORG NAME --contact EMAIL")
		}
		if err := c.call(ctx, "/admin/v1/parties", map[string]any{"org": *org, "name": pos[0], "contacts": []string(contacts)}, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "created party %s in %s\n", pos[0], *org)
	case "user create":
		org := sub.String("org", "", "organisation")
		email := sub.String("email", "", "email address (the login name)")
		role := sub.String("role", "user", "admin, user or external")
		party := sub.String("party", "", "party (required for external users)")
		pwStdin := sub.Bool("password-stdin", false, "read a password from the first line of standard input")
		pos, err := parseInterspersed(sub, rest[1:])
		if err != nil {
			return err
		}
		if len(pos) != 0 || *org == "" || *email == "" {
			return usagef("usage: ferry admin user create --org ORG --email EMAIL [--role admin|user|external] [--party PARTY] [--password-stdin]")
		}
		req := map[string]any{"org": *org, "email": *email, "role": *role, "party": *party}
		if *pwStdin {
			line, err := bufio.NewReader(io.LimitReader(env.Stdin, 4096)).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("reading password from stdin: %w", err)
			}
			pw := strings.TrimRight(line, "\r\n")
			if pw == "" {
				return usagef("--password-stdin: standard input is empty")
			}
			req["password"] = pw
		}
		if err := c.call(ctx, "/admin/v1/users", req, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "created user %s (%s) in %s\n", strings.ToLower(*email), *role, *org)
	case "user disable":
		pos, err := parseInterspersed(sub, rest[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("usage: ferry admin user disable EMAIL")
		}
		if err := c.call(ctx, "/admin/v1/users/disable", map[string]any{"email": pos[0]}, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "disabled user %s\n", pos[0])
	case "user enable":
		pos, err := parseInterspersed(sub, rest[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("usage: ferry admin user enable EMAIL")
		}
		if err := c.call(ctx, "/admin/v1/users/enable", map[string]any{"email": pos[0]}, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "enabled user %s\n", pos[0])
	case "user role":
		role := sub.String("role", "", "the new role: admin, user or external")
		pos, err := parseInterspersed(sub, rest[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 || *role == "" {
			return usagef("usage: ferry admin user role EMAIL --role admin|user|external")
		}
		if err := c.call(ctx, "/admin/v1/users/role", map[string]any{"email": pos[0], "role": *role}, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "user %s is now %s; their sessions have ended\n", pos[0], *role)
	case "folder create":
		org := sub.String("org", "", "organisation")
		party := sub.String("party", "", "party whose data the folder holds")
		pos, err := parseInterspersed(sub, rest[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 || *org == "" {
			return usagef("usage: ferry admin folder create --org ORG /PATH [--party PARTY]")
		}
		if err := c.call(ctx, "/admin/v1/folders", map[string]any{"org": *org, "path": pos[0], "party": *party}, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "created folder %s in %s\n", pos[0], *org)
	case "grant":
		org := sub.String("org", "", "organisation")
		user := sub.String("user", "", "user email")
		pos, err := parseInterspersed(sub, rest[1:])
		if err != nil {
			return err
		}
		if len(pos) != 2 || *org == "" || *user == "" {
			return usagef("usage: ferry admin grant --org ORG --user EMAIL /PATH PERMS")
		}
		if err := c.call(ctx, "/admin/v1/grants", map[string]any{"org": *org, "email": *user, "path": pos[0], "perms": pos[1]}, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "granted %s on %s to %s\n", pos[1], pos[0], *user)
	case "grant revoke":
		org := sub.String("org", "", "organisation")
		user := sub.String("user", "", "user email")
		pos, err := parseInterspersed(sub, rest[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 || *org == "" || *user == "" {
			return usagef("usage: ferry admin grant revoke --org ORG --user EMAIL /PATH")
		}
		if err := c.call(ctx, "/admin/v1/grants/revoke", map[string]any{"org": *org, "email": *user, "path": pos[0]}, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "revoked the grant on %s from %s\n", pos[0], *user)
	case "token create":
		user := sub.String("user", "", "user email")
		expires := sub.String("expires", "720h", "lifetime, e.g. 720h (30 days)")
		pos, err := parseInterspersed(sub, rest[1:])
		if err != nil {
			return err
		}
		if len(pos) != 0 || *user == "" {
			return usagef("usage: ferry admin token create --user EMAIL [--expires 720h]")
		}
		if d, err := time.ParseDuration(*expires); err != nil || d <= 0 {
			return usagef("--expires %q: want a positive duration such as 720h", *expires)
		}
		var resp struct {
			Token   string     `json:"token"`
			ID      string     `json:"id"`
			Expires *time.Time `json:"expires"`
		}
		if err := c.call(ctx, "/admin/v1/tokens", map[string]any{"email": *user, "expires": *expires}, &resp); err != nil {
			return err
		}
		fmt.Fprintln(out, resp.Token)
		if resp.Expires != nil {
			fmt.Fprintf(env.Stderr, "token id %s for %s, expires %s\n", resp.ID, *user, resp.Expires.Format(time.RFC3339))
		}
		return nil
	case "token revoke":
		pos, err := parseInterspersed(sub, rest[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("usage: ferry admin token revoke TOKEN-ID")
		}
		if err := c.call(ctx, "/admin/v1/tokens/revoke", map[string]any{"id": pos[0]}, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "revoked token %s\n", pos[0])
	case "sshkey add":
		user := sub.String("user", "", "user email")
		keyFile := sub.String("key-file", "", "public key file (authorized_keys format, e.g. id_ed25519.pub)")
		pos, err := parseInterspersed(sub, rest[1:])
		if err != nil {
			return err
		}
		if len(pos) != 0 || *user == "" || *keyFile == "" {
			return usagef("usage: ferry admin sshkey add --user EMAIL --key-file FILE")
		}
		key, err := os.ReadFile(*keyFile)
		if err != nil {
			return fmt.Errorf("read key file: %w", err)
		}
		if len(key) > 16<<10 {
			return fmt.Errorf("%s is too large to be a public key", *keyFile)
		}
		var resp struct {
			Fingerprint string `json:"fingerprint"`
		}
		if err := c.call(ctx, "/admin/v1/sshkeys", map[string]any{"email": *user, "key": string(key)}, &resp); err != nil {
			return err
		}
		fmt.Fprintf(out, "added SSH key %s for %s\n", resp.Fingerprint, *user)
	case "hold":
		org := sub.String("org", "", "organisation")
		release := sub.Bool("release", false, "release the hold")
		pos, err := parseInterspersed(sub, rest[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 || *org == "" {
			return usagef("usage: ferry admin hold --org ORG /PATH [--release]")
		}
		if err := c.call(ctx, "/admin/v1/holds", map[string]any{"org": *org, "path": pos[0], "hold": !*release}, nil); err != nil {
			return err
		}
		if *release {
			fmt.Fprintf(out, "released hold on %s\n", pos[0])
		} else {
			fmt.Fprintf(out, "%s is on hold\n", pos[0])
		}
	case "user invite":
		return adminInvite(ctx, c, sub, rest[1:], env) // admin_invite.go
	case "sso set", "sso show":
		return adminSSO(ctx, c, cmd, sub, rest[1:], env)
	case "unfreeze", "guard show", "guard policy", "guard webhook", "canary mark", "canary unmark", "canary generate", "canary list":
		return adminGuard(ctx, c, cmd, sub, rest[1:], env) // admin_guard.go
	case "policy show", "policy set":
		return adminPolicy(ctx, c, cmd, sub, rest[1:], env)
	default:
		io.WriteString(env.Stderr, adminUsage)
		return usagef("ferry admin: unknown command %q", cmd)
	}
	return nil
}
