// Package config holds the server's configuration and reads it from, in
// order of precedence, command-line flags, FERRY_* environment variables and
// a config file of "key = value" lines. It has no package-level state.
package config

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"ferry.dev/ferry/internal/ferry"
)

// Config is the configuration of `ferry serve`.
type Config struct {
	Data            string        // data directory
	PublicAddr      string        // public HTTPS listener
	SFTPAddr        string        // SFTP listener
	SFTPLegacy      bool          // offer legacy SSH algorithms (sftp-legacy-algorithms)
	SFTPConnsPerIP  int           // concurrent SFTP connections per address
	SFTPSessions    int           // concurrent SFTP sessions per connection
	SFTPAuthTries   int           // failed authentications per SFTP connection
	SFTPIdle        time.Duration // SFTP connection idle timeout
	SFTPLoginGrace  time.Duration // time from connecting to logging in
	SFTPBuffered    int64         // server-wide budget for out-of-order SFTP write data, bytes
	AdminAddr       string        // admin HTTPS listener (loopback by default)
	DB              string        // database DSN; empty: SQLite at Data/ferry.db
	TLSCert         string        // PEM certificate; empty: Data/tls/cert.pem, generated
	TLSKey          string        // PEM key
	MaxUpload       int64         // largest accepted upload body, bytes
	PackageMax      int64         // most a package may hold, bytes (files plus replies)
	SweepInterval   time.Duration // how often expired files are shredded
	ShutdownTimeout time.Duration // how long in-flight requests get at shutdown
	UploadIdle      time.Duration // how long an upload body may stall
	UploadTTL       time.Duration // how long a resumable upload may sit without a write
	AdminRemote     bool          // allow a non-loopback admin listener
	LogLevel        string        // debug, info, warn, error
	SMTPURL         string        // smtp://[user:pass@]host:port or smtps://…; empty: mail is queued, not sent
	MailFrom        string        // sender address of Ferry's mail
	PublicURL       string        // base of links in mails; empty: https://<public listener>
	// OutboundAllow are the internal networks (loopback, private,
	// link-local…) that server-side requests (OpenID discovery, webhooks)
	// may reach; every other internal address is refused (internal/outbound).
	OutboundAllow []netip.Prefix
}

// option describes one setting: its flag and config-file key, its
// environment variable and default.
type option struct {
	key, env, def, usage string
	set                  func(c *Config, v string) error
}

func str(p func(c *Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *p(c) = v; return nil }
}

var options = []option{
	{"data", "FERRY_DATA", "./ferry-data", "data directory", str(func(c *Config) *string { return &c.Data })},
	{"public-addr", "FERRY_PUBLIC_ADDR", "127.0.0.1:8443", "public HTTPS listen address", str(func(c *Config) *string { return &c.PublicAddr })},
	{"sftp-addr", "FERRY_SFTP_ADDR", "127.0.0.1:2222", "SFTP listen address", str(func(c *Config) *string { return &c.SFTPAddr })},
	{"sftp-max-conns-per-ip", "FERRY_SFTP_MAX_CONNS_PER_IP", "256", "concurrent SFTP connections from one address (an IPv6 /64 counts as one)", func(c *Config, v string) (err error) {
		c.SFTPConnsPerIP, err = strconv.Atoi(v)
		return err
	}},
	{"sftp-max-sessions", "FERRY_SFTP_MAX_SESSIONS", "10", "concurrent SFTP sessions (channels) per connection", func(c *Config, v string) (err error) {
		c.SFTPSessions, err = strconv.Atoi(v)
		return err
	}},
	{"sftp-max-auth-tries", "FERRY_SFTP_MAX_AUTH_TRIES", "6", "failed authentication attempts per SFTP connection", func(c *Config, v string) (err error) {
		c.SFTPAuthTries, err = strconv.Atoi(v)
		return err
	}},
	{"sftp-idle-timeout", "FERRY_SFTP_IDLE_TIMEOUT", "15m", "close an SFTP connection idle this long", func(c *Config, v string) (err error) {
		c.SFTPIdle, err = time.ParseDuration(v)
		return err
	}},
	{"sftp-login-grace", "FERRY_SFTP_LOGIN_GRACE", "60s", "time an SFTP client has from connecting to logging in", func(c *Config, v string) (err error) {
		c.SFTPLoginGrace, err = time.ParseDuration(v)
		return err
	}},
	{"sftp-max-buffered-writes", "FERRY_SFTP_MAX_BUFFERED_WRITES", "268435456", "bytes of out-of-order SFTP write data held in memory across all sessions", func(c *Config, v string) (err error) {
		c.SFTPBuffered, err = strconv.ParseInt(v, 10, 64)
		return err
	}},
	{"sftp-legacy-algorithms", "FERRY_SFTP_LEGACY_ALGORITHMS", "false", "also offer legacy SSH algorithms for old partner systems: AES-CTR with HMAC-SHA2 (libssh2 before 1.11), finite-field DH, HMAC-SHA1, ssh-rsa; logged at start", func(c *Config, v string) (err error) {
		c.SFTPLegacy, err = strconv.ParseBool(v)
		return err
	}},
	{"admin-addr", "FERRY_ADMIN_ADDR", "127.0.0.1:9443", "admin HTTPS listen address (loopback unless admin-remote)", str(func(c *Config) *string { return &c.AdminAddr })},
	{"db", "FERRY_DB", "", "database: postgres://… for PostgreSQL; default SQLite at DATA/ferry.db", str(func(c *Config) *string { return &c.DB })},
	{"tls-cert", "FERRY_TLS_CERT", "", "TLS certificate (PEM); default DATA/tls/cert.pem, self-signed", str(func(c *Config) *string { return &c.TLSCert })},
	{"tls-key", "FERRY_TLS_KEY", "", "TLS private key (PEM)", str(func(c *Config) *string { return &c.TLSKey })},
	{"max-upload", "FERRY_MAX_UPLOAD", "1099511627776", "largest upload in bytes", func(c *Config, v string) (err error) {
		c.MaxUpload, err = strconv.ParseInt(v, 10, 64)
		return err
	}},
	{"package-max-bytes", "FERRY_PACKAGE_MAX_BYTES", "10737418240", "most a package may hold in bytes, its files and replies together (413 before an upload beyond it starts)", func(c *Config, v string) (err error) {
		c.PackageMax, err = strconv.ParseInt(v, 10, 64)
		return err
	}},
	{"sweep-interval", "FERRY_SWEEP_INTERVAL", "1m", "how often expired files are crypto-shredded", func(c *Config, v string) (err error) {
		c.SweepInterval, err = time.ParseDuration(v)
		return err
	}},
	{"shutdown-timeout", "FERRY_SHUTDOWN_TIMEOUT", "30s", "grace period for in-flight requests at shutdown", func(c *Config, v string) (err error) {
		c.ShutdownTimeout, err = time.ParseDuration(v)
		return err
	}},
	{"upload-idle-timeout", "FERRY_UPLOAD_IDLE_TIMEOUT", "1m", "cut an upload whose body stalls this long", func(c *Config, v string) (err error) {
		c.UploadIdle, err = time.ParseDuration(v)
		return err
	}},
	{"upload-ttl", "FERRY_UPLOAD_TTL", "24h", "shred a resumable upload left this long without a write", func(c *Config, v string) (err error) {
		c.UploadTTL, err = time.ParseDuration(v)
		return err
	}},
	{"admin-remote", "FERRY_ADMIN_REMOTE", "false", "allow the admin listener on a non-loopback address", func(c *Config, v string) (err error) {
		c.AdminRemote, err = strconv.ParseBool(v)
		return err
	}},
	{"log-level", "FERRY_LOG_LEVEL", "info", "log level: debug, info, warn, error", str(func(c *Config) *string { return &c.LogLevel })},
	{"smtp-url", "FERRY_SMTP_URL", "", "SMTP server for Ferry's mail: smtp://[user:pass@]host:port (STARTTLS when offered) or smtps://… (implicit TLS); empty: mail is queued, not sent", str(func(c *Config) *string { return &c.SMTPURL })},
	{"mail-from", "FERRY_MAIL_FROM", "", "sender address of Ferry's mail (required with smtp-url)", str(func(c *Config) *string { return &c.MailFrom })},
	{"public-url", "FERRY_PUBLIC_URL", "", "public base URL for links in mails; default https://PUBLIC-ADDR", str(func(c *Config) *string { return &c.PublicURL })},
	{"outbound-allow", "FERRY_OUTBOUND_ALLOW", "", "CIDR[,CIDR…] of internal networks (loopback, private, link-local) that OpenID discovery and webhooks may reach; all others are refused", func(c *Config, v string) (err error) {
		c.OutboundAllow, err = parsePrefixes(v)
		return err
	}},
}

// parsePrefixes reads a comma-separated list of CIDR prefixes or single
// addresses (ferry.ParsePrefixes).
func parsePrefixes(v string) ([]netip.Prefix, error) {
	out, err := ferry.ParsePrefixes(strings.Split(v, ","))
	if err != nil {
		return nil, errors.New(ferry.Message(err))
	}
	return out, nil
}

// Load reads the configuration of `ferry serve` from args (flags), getenv and
// the config file named by --config or FERRY_CONFIG, read with readFile.
// Flags win over the environment, which wins over the file.
func Load(args []string, getenv func(string) string, readFile func(string) ([]byte, error), usage io.Writer) (*Config, error) {
	fs := flag.NewFlagSet("ferry serve", flag.ContinueOnError)
	fs.SetOutput(usage)
	flags := map[string]*string{}
	for _, o := range options {
		flags[o.key] = fs.String(o.key, o.def, o.usage+" ($"+o.env+")")
	}
	cfgFile := fs.String("config", "", "config file of key = value lines ($FERRY_CONFIG)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	path := *cfgFile
	if path == "" {
		path = getenv("FERRY_CONFIG")
	}
	file := map[string]string{}
	if path != "" {
		b, err := readFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config file: %w", err)
		}
		if file, err = Parse(bytes.NewReader(b)); err != nil {
			return nil, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	c := &Config{}
	for _, o := range options {
		v, src := o.def, "default"
		if fv, ok := file[o.key]; ok {
			v, src = fv, "config file"
		}
		if ev := getenv(o.env); ev != "" {
			v, src = ev, "$"+o.env
		}
		if set[o.key] {
			v, src = *flags[o.key], "flag --"+o.key
		}
		if err := o.set(c, v); err != nil {
			return nil, fmt.Errorf("%s: bad value %q for %s", src, v, o.key)
		}
	}
	return c, c.Validate()
}

// Parse reads a config file: "key = value" lines, "#" comments, blank lines.
// Unknown keys are an error.
func Parse(r io.Reader) (map[string]string, error) {
	known := map[string]bool{}
	for _, o := range options {
		known[o.key] = true
	}
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.Trim(strings.TrimSpace(v), `"`)
		if !ok {
			return nil, fmt.Errorf("line %d: want key = value", n)
		}
		if !known[k] {
			return nil, fmt.Errorf("line %d: unknown key %q", n, k)
		}
		out[k] = v
	}
	return out, sc.Err()
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Data == "" {
		return fmt.Errorf("data directory must not be empty")
	}
	for _, a := range []struct{ name, addr string }{{"public-addr", c.PublicAddr}, {"sftp-addr", c.SFTPAddr}, {"admin-addr", c.AdminAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%s %q: want HOST:PORT", a.name, a.addr)
		}
	}
	if !c.AdminRemote && !IsLoopback(c.AdminAddr) {
		return fmt.Errorf("admin-addr %q is not a loopback address; the admin plane stays off the network unless admin-remote = true", c.AdminAddr)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("tls-cert and tls-key go together")
	}
	if c.PackageMax <= 0 {
		return fmt.Errorf("package-max-bytes must be positive")
	}
	if c.MaxUpload <= 0 {
		return fmt.Errorf("max-upload must be positive")
	}
	if c.SFTPBuffered < 8<<20 {
		return fmt.Errorf("sftp-max-buffered-writes must be at least 8388608 (one session's window)")
	}
	if c.SFTPConnsPerIP <= 0 || c.SFTPSessions <= 0 || c.SFTPAuthTries <= 0 || c.SFTPIdle <= 0 || c.SFTPLoginGrace <= 0 {
		return fmt.Errorf("the sftp limits and timeouts must be positive")
	}
	if c.SweepInterval <= 0 || c.ShutdownTimeout < 0 || c.UploadIdle <= 0 || c.UploadTTL <= 0 {
		return fmt.Errorf("sweep-interval, upload-idle-timeout and upload-ttl must be positive, shutdown-timeout not negative")
	}
	if c.SMTPURL != "" && c.MailFrom == "" {
		return fmt.Errorf("smtp-url needs mail-from (the sender address)")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	return nil
}

// DSN returns the database DSN: the configured one, or the SQLite file in the
// data directory.
func (c *Config) DSN() string {
	if c.DB != "" {
		return c.DB
	}
	return filepath.Join(c.Data, "ferry.db")
}

// IsLoopback reports whether a HOST:PORT names a loopback host.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
