package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"ferry.dev/ferry/internal/client"
)

const loginUsage = `usage: ferry login --server URL [--email EMAIL | --token TOKEN] [--ca FILE]

With --email, signs in with your password (and the code of your
authenticator app when your account or organisation needs a second factor),
read from the terminal without echo (or stdin, one per line), and gets an API
token for this computer (scope read,write,share, valid 90 days).
Otherwise checks the given token (--token, or one line of stdin).
Stores server, token and CA file in $XDG_CONFIG_HOME/ferry/credentials.json
(else ~/.config/ferry/…), mode 0600. Later commands use what is stored unless
given --server, --token, --ca or FERRY_SERVER, FERRY_TOKEN, FERRY_CA.
`

func runLogin(ctx context.Context, args []string, env Env) error {
	fs := newFlags("ferry login", env)
	fs.Usage = func() { io.WriteString(env.Stderr, loginUsage) }
	server := fs.String("server", "", "server URL, e.g. https://ferry.example:8443")
	token := fs.String("token", "", "API token (default: read from stdin)")
	email := fs.String("email", "", "sign in with this email and your password instead of a token")
	ca := fs.String("ca", "", "PEM file of the CA certificate to trust")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		io.WriteString(env.Stderr, loginUsage)
		return usagef("ferry login: unexpected argument %q", pos[0])
	}
	if *server == "" {
		*server = env.Getenv("FERRY_SERVER")
	}
	if *server == "" {
		io.WriteString(env.Stderr, loginUsage)
		return usagef("ferry login: --server is required")
	}
	if *ca == "" {
		*ca = env.Getenv("FERRY_CA")
	}
	if *ca != "" {
		if *ca, err = filepath.Abs(*ca); err != nil {
			return err
		}
	}
	if *email != "" && *token != "" {
		return usagef("ferry login: give --email or --token, not both")
	}
	if *email != "" {
		if *token, err = passwordLogin(ctx, env, *server, *ca, *email); err != nil {
			return fmt.Errorf("login: %w", err)
		}
	}
	if *token == "" {
		if *token, err = readToken(env); err != nil {
			return fmt.Errorf("login: reading the token: %w", err)
		}
	}
	if *token == "" {
		return errors.New("login: no token given")
	}
	c, err := client.New(client.Config{Server: *server, Token: *token, CAFile: *ca})
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	me, err := c.Me(ctx)
	if err != nil {
		return fmt.Errorf("login %s: %w", c.Server(), err)
	}
	if _, err := saveCredentials(env.Getenv, credentials{Server: c.Server(), Token: *token, CA: *ca}); err != nil {
		return fmt.Errorf("login: storing the credentials: %w", err)
	}
	fmt.Fprintf(env.Stdout, "logged in to %s as %s (%s)\n", c.Server(), me.Email, me.Org)
	return nil
}

// passwordLogin gets an API token from the token endpoint with email and a
// password (and a TOTP code if the server asks for one) read from stdin.
func passwordLogin(ctx context.Context, env Env, server, ca, email string) (string, error) {
	c, err := client.New(client.Config{Server: server, CAFile: ca})
	if err != nil {
		return "", err
	}
	in := bufio.NewReader(env.Stdin)
	pw, err := readSecret(env, in, "password")
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	host, _ := os.Hostname()
	req := client.TokenRequest{Email: email, Password: pw, Name: clip("ferry CLI on "+host, 100), Scope: "read,write,share", ExpiresIn: 90 * 24 * 3600}
	t, err := c.IssueToken(ctx, req)
	if client.SecondFactorRequired(err) {
		if req.TOTP, err = readSecret(env, in, "authenticator code"); err != nil {
			return "", fmt.Errorf("reading the code: %w", err)
		}
		t, err = c.IssueToken(ctx, req)
	}
	if err != nil {
		return "", fmt.Errorf("signing in to %s: %w", c.Server(), err)
	}
	return t.Token, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// readToken reads one line from stdin; on a terminal it prompts on stderr
// and does not echo.
func readToken(env Env) (string, error) {
	return readSecret(env, bufio.NewReader(env.Stdin), "token")
}

// readSecret reads one line: on a terminal after a prompt on stderr, without
// echo; otherwise from in.
func readSecret(env Env, in *bufio.Reader, what string) (string, error) {
	if f, ok := env.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(env.Stderr, what+": ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(env.Stderr)
		return trimSecret(what, string(b)), err
	}
	line, err := in.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return trimSecret(what, line), nil
}

// trimSecret drops the line end; a password keeps its spaces.
func trimSecret(what, s string) string {
	if what == "password" {
		return strings.TrimRight(s, "\r\n")
	}
	return strings.TrimSpace(s)
}
