// Package cli is the ferry command: `ferry serve`, `ferry admin …`,
// `ferry audit …` and the client commands (`ferry login`, `put`, `get`, `ls`,
// `rm`, `mkdir`, `mv`). cmd/ferry's main calls Run; tests call it too (through
// internal/ferrytest), so the program under test is the real one.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Env is the program's environment, passed in so tests control it.
type Env struct {
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// UsageError is an error in how the command was called; main exits 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

const usage = `usage: ferry COMMAND [ARGS]

  ferry serve [--data DIR] [--public-addr HOST:PORT] [--admin-addr HOST:PORT] [--db DSN] [--config FILE] …
        run the server (ferry serve --help lists every option)
  ferry admin --data DIR SUBCOMMAND …
        administer a running server through DIR/admin.sock (ferry admin --help)
  ferry audit verify|log --data DIR …
        check and read the audit log (ferry audit --help)
  ferry login --server URL [--token TOKEN] [--ca FILE]
        check an API token and store it for the commands below
  ferry put [--json] LOCAL... REMOTE      upload files and directories (resumable)
  ferry get [-r] [--json] REMOTE... LOCAL download files and folders (resumable, verified)
  ferry ls [-l] [REMOTE]                  list a folder
  ferry rm [-r] REMOTE...                 delete files and folders
  ferry mkdir [-p] REMOTE...              create folders
  ferry mv SRC DST                        rename or move
  ferry send FILE... --to EMAIL [--subject S] [--message M] [--expires 7d]
                                          send files as a package (ferry send --help)
  ferry share [--expires 7d] [--password-stdin] [--max-downloads N] REMOTE
                                          make a share link (ferry share ls, ferry share revoke ID)
        (each takes --server, --token, --ca; ferry put --help says more)
  ferry version
`

// Version is the program version, set at build time.
var Version = "dev"

// Run runs the ferry command with args (without the program name).
func Run(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 {
		io.WriteString(env.Stderr, usage)
		return &UsageError{Msg: "no command given"}
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], env)
	case "admin":
		return runAdmin(ctx, args[1:], env)
	case "audit":
		return runAudit(ctx, args[1:], env)
	case "login":
		return runLogin(ctx, args[1:], env)
	case "put":
		return runPut(ctx, args[1:], env)
	case "get":
		return runGet(ctx, args[1:], env)
	case "ls":
		return runLs(ctx, args[1:], env)
	case "rm":
		return runRm(ctx, args[1:], env)
	case "mkdir":
		return runMkdir(ctx, args[1:], env)
	case "mv":
		return runMv(ctx, args[1:], env)
	case "send":
		return runSend(ctx, args[1:], env)
	case "share":
		return runShare(ctx, args[1:], env)
	case "version", "--version":
		fmt.Fprintln(env.Stdout, "ferry", Version)
		return nil
	case "help", "-h", "--help":
		io.WriteString(env.Stdout, usage)
		return nil
	}
	io.WriteString(env.Stderr, usage)
	return usagef("unknown command %q", args[0])
}

// parseInterspersed parses flags that may appear before, between or after
// positional arguments, and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &UsageError{Msg: err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// newFlags returns a FlagSet that reports errors instead of exiting.
func newFlags(name string, env Env) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
