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

const loginUsage = `usage: ferry login --server URL [--token TOKEN] [--ca FILE]

Checks the token with the server and stores server, token and CA file in
$XDG_CONFIG_HOME/ferry/credentials.json (else ~/.config/ferry/…), mode 0600.
Without --token, reads the token from stdin (prompting, without echo, on a
terminal). Later commands use what is stored unless given --server, --token,
--ca or FERRY_SERVER, FERRY_TOKEN, FERRY_CA.
`

func runLogin(ctx context.Context, args []string, env Env) error {
	fs := newFlags("ferry login", env)
	fs.Usage = func() { io.WriteString(env.Stderr, loginUsage) }
	server := fs.String("server", "", "server URL, e.g. https://ferry.example:8443")
	token := fs.String("token", "", "API token (default: read from stdin)")
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

// readToken reads one line from stdin; on a terminal it prompts on stderr
// and does not echo.
func readToken(env Env) (string, error) {
	if f, ok := env.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(env.Stderr, "token: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(env.Stderr)
		return strings.TrimSpace(string(b)), err
	}
	line, err := bufio.NewReader(env.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimSpace(line), nil
}
