package cli

import (
	"fmt"
	"path/filepath"

	"ferry.dev/ferry/internal/sftpd"
)

// runHostKeys prints the fingerprints of the SFTP host keys in DATA/keys as
// `ssh-keygen -l` does, so that partners can check them on first connection.
// It reads only the public halves and needs no running server.
func runHostKeys(data string, args []string, env Env) error {
	if len(args) != 0 {
		return usagef("usage: ferry admin hostkeys")
	}
	keys, err := sftpd.ReadHostKeys(filepath.Join(data, "keys"))
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return fmt.Errorf("no SSH host keys in %s: they are generated when `ferry serve --data %s` first starts", filepath.Join(data, "keys"), data)
	}
	for _, k := range keys {
		fmt.Fprintln(env.Stdout, k)
	}
	return nil
}
