package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"ferry.dev/ferry/internal/client"
)

// credentials is what `ferry login` stores: which server, with which token,
// trusting which CA file.
type credentials struct {
	Server string `json:"server"`
	Token  string `json:"token"`
	CA     string `json:"ca,omitempty"`
}

// credentialsPath returns $XDG_CONFIG_HOME/ferry/credentials.json, or
// $HOME/.config/ferry/credentials.json.
func credentialsPath(getenv func(string) string) (string, error) {
	dir := getenv("XDG_CONFIG_HOME")
	if dir == "" || !filepath.IsAbs(dir) {
		home := getenv("HOME")
		if home == "" {
			return "", errors.New("cannot find the config directory: neither XDG_CONFIG_HOME nor HOME is set")
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "ferry", "credentials.json"), nil
}

// loadCredentials reads the stored credentials; none stored is not an error
// (it returns a zero value).
func loadCredentials(getenv func(string) string) (credentials, error) {
	var c credentials
	p, err := credentialsPath(getenv)
	if err != nil {
		return c, nil
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: %v (run ferry login again)", p, err)
	}
	return c, nil
}

// saveCredentials writes the credentials atomically (temp file, fsync,
// rename) with mode 0600 in a directory of mode 0700, and returns the path.
func saveCredentials(getenv func(string) string, c credentials) (string, error) {
	p, err := credentialsPath(getenv)
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", err
	}
	if err := writeFileAtomic(p, append(b, '\n'), 0o600); err != nil {
		return "", err
	}
	return p, nil
}

// remoteFlags are the connection flags every client command takes.
type remoteFlags struct {
	server, token, ca string
}

func addRemoteFlags(fs *flag.FlagSet) *remoteFlags {
	rf := &remoteFlags{}
	fs.StringVar(&rf.server, "server", "", "server URL (default: $FERRY_SERVER, else the one ferry login stored)")
	fs.StringVar(&rf.token, "token", "", "API token (default: $FERRY_TOKEN, else the stored one)")
	fs.StringVar(&rf.ca, "ca", "", "PEM file of the CA to trust (default: $FERRY_CA, else the stored one)")
	return rf
}

// resolve combines flags, FERRY_* variables and the stored credentials, in
// that order of precedence. The stored token and CA are used only for the
// stored server, so a token never goes to a server it was not given for.
func (rf *remoteFlags) resolve(env Env) (credentials, error) {
	first := func(vals ...string) string {
		for _, v := range vals {
			if v != "" {
				return v
			}
		}
		return ""
	}
	c := credentials{
		Server: first(rf.server, env.Getenv("FERRY_SERVER")),
		Token:  first(rf.token, env.Getenv("FERRY_TOKEN")),
		CA:     first(rf.ca, env.Getenv("FERRY_CA")),
	}
	stored, err := loadCredentials(env.Getenv)
	if err != nil {
		return c, err
	}
	if c.Server == "" {
		c.Server = stored.Server
	}
	if stored.Server != "" && sameServer(c.Server, stored.Server) {
		c.Token = first(c.Token, stored.Token)
		c.CA = first(c.CA, stored.CA)
	}
	switch {
	case c.Server == "":
		return c, errors.New("no server: run ferry login --server URL, or pass --server or set FERRY_SERVER")
	case c.Token == "":
		return c, errors.New("no token: run ferry login, or pass --token or set FERRY_TOKEN")
	}
	return c, nil
}

// client returns an API client for the resolved connection.
func (rf *remoteFlags) client(env Env) (*client.Client, error) {
	c, err := rf.resolve(env)
	if err != nil {
		return nil, err
	}
	return client.New(client.Config{Server: c.Server, Token: c.Token, CAFile: c.CA})
}

func sameServer(a, b string) bool {
	return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
}
