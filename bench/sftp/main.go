// Command sftp benchmarks Ferry's SFTP server against OpenSSH's own
// sftp-server in the same run: it builds the ferry binary and starts `ferry
// serve`, starts a private sshd (Debian's openssh-server) on a loopback port,
// and has OpenSSH's `sftp -b` client upload and download a random file to and
// from each, per cipher, in alternating order, round after round. Everything
// lives on tmpfs. Per transfer it measures:
//
//   - steady throughput: MB/s between 20 % and 90 % of the file, from the
//     client's progress (its read position in the source file for uploads, the
//     size of the destination file for downloads), sampled every 5 ms;
//   - whole-transfer throughput, login included;
//   - server CPU seconds per GiB: utime+stime from /proc of the ferry process,
//     or of sshd's master including its reaped session processes (the
//     per-connection sshd and sftp-server);
//   - peak server RSS: the sum of VmRSS of the server processes, sampled (for
//     Ferry the whole server process; for OpenSSH the session's processes);
//
// and, separately, the login time: wall time of `sftp -b` running only
// "bye" (process start, key exchange, public-key login, subsystem start),
// and the same login from a Go client inside this program (no process to
// start), alternating between the servers.
// It prints the medians and the Ferry/OpenSSH ratios.
//
//	go run ./bench/sftp [-size 1GiB] [-rounds 5] [-ciphers aes128-gcm@openssh.com,chacha20-poly1305@openssh.com]
//
// With -sessions N it measures concurrency instead (see concurrent.go): N
// sessions at once, each on its own connection, each uploading and then
// downloading a file of -session-size, with a Go client (x/crypto/ssh and
// pkg/sftp) inside this program; it prints the aggregate MB/s, failures,
// server CPU and peak server RSS per server.
//
//	go run ./bench/sftp -sessions 200 -session-size 10MiB -rounds 3 -ciphers aes128-gcm@openssh.com
//
// golang.org/x/crypto/ssh offers no chacha20-poly1305 in FIPS 140-3 mode, in
// which `ferry serve` runs; for that cipher it runs a second ferry server
// with GODEBUG=fips140=off, and says so.
//
// It needs root (sshd), sshd and sftp-server from openssh-server, and the sftp
// client. Everything it creates lives in one temporary directory, removed at
// the end; the servers it starts are stopped by their process ids.
package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/ssh"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/sftp:", err)
		os.Exit(1)
	}
}

type options struct {
	size    int64
	rounds  int
	ciphers []string
	dir     string
	src     string // directory to build cmd/ferry from
	logins  int
	pin     bool

	sessions    int           // > 0: concurrency mode
	sessionSize int64         // bytes each session uploads and downloads
	packet      int           // SFTP read and write size of the concurrent client
	requests    int           // requests in flight per file of the concurrent client
	idleWait    time.Duration // how long to sample the idle servers' RSS after the last round
}

// Pinning: with -pin the servers run on CPU 0 and the client on CPU 1 (via
// taskset), so that each side has one core of its own instead of both
// competing for two; Go sets GOMAXPROCS from the affinity.
var serverCPU, clientCPU []string

func parseFlags() (*options, error) {
	o := &options{}
	var err error
	size := flag.String("size", "1GiB", "file size: bytes or with a suffix KiB, MiB, GiB")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds per server, cipher and direction")
	ciphers := flag.String("ciphers", "aes128-gcm@openssh.com,chacha20-poly1305@openssh.com", "comma-separated SSH ciphers")
	flag.StringVar(&o.dir, "dir", "/dev/shm", "parent of the temporary directory (tmpfs)")
	flag.StringVar(&o.src, "src", "", "build ferry from this module directory (e.g. a `git archive` of a commit) instead of this one")
	flag.IntVar(&o.logins, "logins", 20, "login-time samples per server")
	flag.BoolVar(&o.pin, "pin", numCPU() >= 2, "run the servers on CPU 0 and the client on CPU 1 (taskset)")
	flag.IntVar(&o.sessions, "sessions", 0, "concurrency mode: this many concurrent sessions per server")
	sessionSize := flag.String("session-size", "10MiB", "concurrency mode: bytes each session uploads and downloads")
	flag.IntVar(&o.packet, "session-packet", 261120, "concurrency mode: read and write request size (261120 = what both servers advertise in limits@openssh.com)")
	flag.IntVar(&o.requests, "session-requests", 16, "concurrency mode: requests in flight per file")
	flag.DurationVar(&o.idleWait, "idle-wait", 150*time.Second, "concurrency mode: sample the idle servers' RSS for this long after the last round (0: not)")
	flag.Parse()
	if o.sessionSize, err = parseSize(*sessionSize); err != nil {
		return nil, err
	}
	if o.pin {
		serverCPU, clientCPU = []string{"taskset", "-c", "0"}, []string{"taskset", "-c", "1"}
	}
	if o.size, err = parseSize(*size); err != nil {
		return nil, err
	}
	o.ciphers = strings.Split(*ciphers, ",")
	return o, nil
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

// server is one SFTP server under test.
type server struct {
	name     string // "ferry", "openssh"
	port     string
	user     string
	remote   string // remote directory for the uploaded file
	pid      int    // process whose CPU (and children's) is counted
	session  bool   // count only the pid's descendants for RSS (sshd)
	idleRSS  int64  // RSS before the concurrent rounds (Ferry)
	idleAnon int64  // the same without shared pages
	stop     func()
}

func run(ctx context.Context) error {
	o, err := parseFlags()
	if err != nil {
		return err
	}
	for _, p := range []string{"/usr/sbin/sshd", "/usr/lib/openssh/sftp-server"} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s missing: apt-get install openssh-server", p)
		}
	}
	if _, err := exec.LookPath("sftp"); err != nil && o.sessions == 0 {
		return errors.New("sftp missing: apt-get install openssh-client")
	}
	if o.sessions > 0 && o.pin && os.Getenv("FERRY_BENCH_PINNED") == "" {
		// The client is this program: run it again on CPU 1. Go then sets
		// GOMAXPROCS to 1; the servers are started on CPU 0 by taskset.
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		taskset, err := exec.LookPath("taskset")
		if err != nil {
			return err
		}
		return syscall.Exec(taskset, append(append([]string{"taskset"}, clientCPU[1:]...), append([]string{exe}, os.Args[1:]...)...),
			append(os.Environ(), "FERRY_BENCH_PINNED=1"))
	}
	tmp, err := os.MkdirTemp(o.dir, "ferry-sftp-bench.")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	logf("working in %s", tmp)

	// Client key, shared by both servers.
	key := filepath.Join(tmp, "id_ed25519")
	if err := writeKey(key); err != nil {
		return err
	}
	src := filepath.Join(tmp, "src.bin")
	if o.sessions == 0 {
		if err := writeRandom(src, o.size); err != nil {
			return err
		}
	}

	bin := filepath.Join(tmp, "ferry")
	logf("building ferry")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/ferry")
	build.Dir = moduleDir()
	if o.src != "" {
		build.Dir = o.src
	}
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}

	servers := map[string]*server{}
	ferryFIPS, err := startFerry(ctx, bin, filepath.Join(tmp, "ferry-data"), key, nil)
	if err != nil {
		return err
	}
	defer ferryFIPS.stop()
	servers["ferry"] = ferryFIPS
	if slices.Contains(o.ciphers, "chacha20-poly1305@openssh.com") {
		f, err := startFerry(ctx, bin, filepath.Join(tmp, "ferry-nofips"), key, []string{"GODEBUG=fips140=off"})
		if err != nil {
			return err
		}
		defer f.stop()
		f.name = "ferry (fips140=off)"
		servers["ferry-nofips"] = f
	}
	osshDir := filepath.Join(tmp, "openssh")
	ossh, err := startSSHD(ctx, osshDir, key)
	if err != nil {
		return err
	}
	defer ossh.stop()
	servers["openssh"] = ossh

	time.Sleep(time.Second)
	if o.sessions > 0 {
		return runConcurrent(ctx, o, servers, key, tmp)
	}
	idle := map[string]float64{}
	for k, s := range servers {
		if !s.session {
			idle[k] = float64(vmRSS(s.pid)) / 1e6
		}
	}
	type result struct {
		steady, whole, cpuPerGiB, rssMB float64
	}
	results := map[string][]result{} // key: cipher/direction/server
	for round := 0; round < o.rounds; round++ {
		for _, cipher := range o.ciphers {
			ferryKey := "ferry"
			if cipher == "chacha20-poly1305@openssh.com" {
				ferryKey = "ferry-nofips"
			}
			order := []*server{servers[ferryKey], ossh}
			if round%2 == 1 {
				order[0], order[1] = order[1], order[0]
			}
			for _, dir := range []string{"up", "down"} {
				for _, s := range order {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					r, err := transfer(ctx, s, key, cipher, dir, src, tmp, o.size)
					if err != nil {
						return fmt.Errorf("%s %s %s: %w", s.name, cipher, dir, err)
					}
					logf("round %d %-28s %-4s %-20s steady %7.1f MB/s  whole %7.1f MB/s  cpu %5.2f s/GiB  rss %6.1f MB  client cpu %5.2f s/GiB",
						round+1, cipher, dir, s.name, r.steady, r.whole, r.cpuPerGiB, r.rssMB, r.clientCPU)
					k := cipher + "/" + dir + "/" + s.name
					results[k] = append(results[k], result{r.steady, r.whole, r.cpuPerGiB, r.rssMB})
				}
			}
		}
	}
	logins, goLogins := map[string]float64{}, map[string]float64{}
	signer, err := loadSigner(key)
	if err != nil {
		return err
	}
	for i := 0; i < o.logins; i++ {
		// Alternating servers, so that a busy moment falls on both.
		for _, s := range []*server{servers["ferry"], ossh} {
			d, err := login(ctx, s, key)
			if err != nil {
				return fmt.Errorf("%s login: %w", s.name, err)
			}
			logins[s.name+"/"+strconv.Itoa(i)] = d.Seconds() * 1000
			if d, err = goLogin(ctx, s, signer, o); err != nil {
				return fmt.Errorf("%s login (Go client): %w", s.name, err)
			}
			goLogins[s.name+"/"+strconv.Itoa(i)] = d.Seconds() * 1000
		}
	}
	for _, m := range []map[string]float64{logins, goLogins} {
		for _, name := range []string{"ferry", "openssh"} {
			var ts []float64
			for i := 0; i < o.logins; i++ {
				ts = append(ts, m[name+"/"+strconv.Itoa(i)])
			}
			m[name] = median(ts)
		}
	}

	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "cipher\tdirection\tserver\tsteady MB/s\twhole MB/s\tserver CPU s/GiB\tpeak server RSS MB\t\n")
	for _, cipher := range o.ciphers {
		for _, dir := range []string{"up", "down"} {
			var ref result
			for _, name := range []string{"openssh", "ferry", "ferry (fips140=off)"} {
				rs := results[cipher+"/"+dir+"/"+name]
				if len(rs) == 0 {
					continue
				}
				m := result{
					steady:    median(pick(rs, func(r result) float64 { return r.steady })),
					whole:     median(pick(rs, func(r result) float64 { return r.whole })),
					cpuPerGiB: median(pick(rs, func(r result) float64 { return r.cpuPerGiB })),
					rssMB:     median(pick(rs, func(r result) float64 { return r.rssMB })),
				}
				ratio := ""
				if name == "openssh" {
					ref = m
				} else if ref.steady > 0 {
					ratio = fmt.Sprintf(" (%.2fx)", m.steady/ref.steady)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%.0f%s\t%.0f\t%.2f\t%.0f\t\n", cipher, dir, name, m.steady, ratio, m.whole, m.cpuPerGiB, m.rssMB)
			}
		}
	}
	w.Flush()
	fmt.Printf("\nlogin (sftp -b with only \"bye\", public key, median of %d): ferry %.0f ms, openssh %.0f ms\n",
		o.logins, logins["ferry"], logins["openssh"])
	fmt.Printf("login (Go client: connect, %s, public key, sftp subsystem ready; median of %d): ferry %.1f ms, openssh %.1f ms\n",
		sessionKEX, o.logins, goLogins["ferry"], goLogins["openssh"])
	fmt.Printf("idle RSS before the transfers: ferry %.0f MB", idle["ferry"])
	if v, ok := idle["ferry-nofips"]; ok {
		fmt.Printf(", ferry (fips140=off) %.0f MB", v)
	}
	fmt.Printf("; openssh's session processes exist only during a transfer\n")
	pinned := "client and servers share the cores"
	if o.pin {
		pinned = "servers pinned to CPU 0, client to CPU 1"
	}
	fmt.Printf("%s of random data, %d rounds, alternating order, %d cores, %s; medians.\n", humanSize(o.size), o.rounds, numCPU(), pinned)
	return nil
}

// command returns a command run through prefix (taskset) if any. The
// process started is then taskset, which execs the program: same pid.
func command(ctx context.Context, prefix []string, name string, args ...string) *exec.Cmd {
	if len(prefix) > 0 {
		name, args = prefix[0], append(append(slices.Clone(prefix[1:]), name), args...)
	}
	return exec.CommandContext(ctx, name, args...)
}

func pick[T any](xs []T, f func(T) float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func humanSize(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func moduleDir() string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "."
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func writeKey(path string) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	blk, err := ssh.MarshalPrivateKey(priv, "bench")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
		return err
	}
	sp, _ := ssh.NewPublicKey(pub)
	return os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(sp), 0o644)
}

func writeRandom(path string, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for n > 0 {
		m := min(int64(len(buf)), n)
		rand.Read(buf[:m])
		if _, err := f.Write(buf[:m]); err != nil {
			f.Close()
			return err
		}
		n -= m
	}
	return f.Close()
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port, nil
}

// startFerry starts `ferry serve` with its data on tmpfs and registers the
// benchmark user with the client key.
func startFerry(ctx context.Context, bin, data, key string, env []string) (*server, error) {
	cmd := command(context.WithoutCancel(ctx), serverCPU, bin, "serve", "--data", data, "--public-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--sftp-addr", "127.0.0.1:0", "--log-level", "warn")
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addr := make(chan string, 1)
	var mu sync.Mutex
	var tail []string
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			tail = append(tail, line)
			mu.Unlock()
			if a, ok := strings.CutPrefix(line, "ferry: sftp listener "); ok {
				addr <- a
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	}
	var a string
	select {
	case a = <-addr:
	case <-time.After(60 * time.Second):
		stop()
		mu.Lock()
		defer mu.Unlock()
		return nil, fmt.Errorf("ferry serve did not start:\n%s", strings.Join(tail, "\n"))
	}
	time.Sleep(200 * time.Millisecond) // "ready" follows the listener lines
	admin := func(args ...string) error {
		out, err := exec.CommandContext(ctx, bin, append([]string{"admin", "--data", data}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ferry admin %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	for _, args := range [][]string{
		{"org", "create", "bench"},
		{"user", "create", "--org", "bench", "--email", "bench@bench.test", "--role", "admin"},
		{"sshkey", "add", "--user", "bench@bench.test", "--key-file", key + ".pub"},
		{"folder", "create", "--org", "bench", "/bench"},
		// Hundreds of sessions reading their own files at once is the bulk
		// read the exfiltration guard stops (docs/GUARD.md): lift its
		// limits here (it still counts every read, so its cost is measured).
		{"guard", "policy", "--org", "bench", "--max-files", "0", "--max-bytes", "0", "--addr-max-files", "0"},
	} {
		if err := admin(args...); err != nil {
			stop()
			return nil, err
		}
	}
	_, port, _ := net.SplitHostPort(a)
	logf("ferry serve pid %d on %s %s", cmd.Process.Pid, a, strings.Join(env, " "))
	return &server{name: "ferry", port: port, user: "bench@bench.test", remote: "/bench", pid: cmd.Process.Pid, stop: stop}, nil
}

// startSSHD starts a private sshd on a loopback port whose only purpose is
// OpenSSH's sftp-server for root with the client key.
func startSSHD(ctx context.Context, dir, key string) (*server, error) {
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o700); err != nil {
		return nil, err
	}
	os.MkdirAll("/run/sshd", 0o755)
	hostKey := filepath.Join(dir, "host_ed25519")
	if err := writeKey(hostKey); err != nil {
		return nil, err
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	pidFile := filepath.Join(dir, "sshd.pid")
	conf := fmt.Sprintf(`Port %s
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
UsePAM no
AuthorizedKeysFile %s
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel ERROR
MaxStartups 1000
`, port, hostKey, pidFile, filepath.Join(dir, "authorized_keys"))
	cf := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, "/usr/sbin/sshd", "-t", "-f", cf).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("sshd -t: %v\n%s", err, out)
	}
	cmd := command(context.WithoutCancel(ctx), serverCPU, "/usr/sbin/sshd", "-D", "-e", "-f", cf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return nil, errors.New("sshd did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	logf("sshd pid %d on 127.0.0.1:%s", cmd.Process.Pid, port)
	return &server{name: "openssh", port: port, user: "root", remote: filepath.Join(dir, "files"), pid: cmd.Process.Pid, session: true, stop: stop}, nil
}

func sftpArgs(s *server, key, cipher string) []string {
	args := []string{"-P", s.port, "-i", key, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
		"-o", "Compression=no", "-o", "ControlMaster=no"}
	if cipher != "" {
		args = append(args, "-c", cipher)
	}
	return args
}

type measure struct {
	steady, whole, cpuPerGiB, rssMB, clientCPU float64
}

// transfer runs one upload or download and measures it.
func transfer(ctx context.Context, s *server, key, cipher, dir, src, tmp string, size int64) (measure, error) {
	remote := s.remote + "/up.bin"
	dst := filepath.Join(tmp, "download.bin")
	os.Remove(dst)
	var cmdline string
	if dir == "up" {
		cmdline = fmt.Sprintf("put %s %s\n", src, remote)
	} else {
		cmdline = fmt.Sprintf("get %s %s\n", remote, dst)
	}
	bf := filepath.Join(tmp, "batch")
	if err := os.WriteFile(bf, []byte(cmdline), 0o600); err != nil {
		return measure{}, err
	}
	cpu0 := cpuTicks(s.pid, true)
	cmd := command(ctx, clientCPU, "sftp", append(sftpArgs(s, key, cipher), "-b", bf, s.user+"@127.0.0.1")...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return measure{}, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var t20, t90 time.Time
	peak := int64(0)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var err error
loop:
	for {
		select {
		case err = <-done:
			break loop
		case <-tick.C:
		}
		var pos int64
		if dir == "up" {
			pos = readPos(cmd.Process.Pid, src)
		} else if fi, err := os.Stat(dst); err == nil {
			pos = fi.Size()
		}
		now := time.Now()
		if t20.IsZero() && pos >= size/5 {
			t20 = now
		}
		if t90.IsZero() && pos >= size*9/10 {
			t90 = now
		}
		peak = max(peak, serverRSS(s))
	}
	whole := time.Since(start)
	if err != nil {
		return measure{}, fmt.Errorf("sftp: %v\n%s", err, out.String())
	}
	if dir == "down" {
		if fi, err := os.Stat(dst); err != nil || fi.Size() != size {
			return measure{}, fmt.Errorf("downloaded file: %v", err)
		}
	}
	if s.session {
		waitNoChildren(s.pid)
	}
	cpu := float64(cpuTicks(s.pid, true)-cpu0) / 100
	gib := float64(size) / (1 << 30)
	client := (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	m := measure{whole: float64(size) / 1e6 / whole.Seconds(), cpuPerGiB: cpu / gib, rssMB: float64(peak) / 1e6, clientCPU: client / gib}
	if !t20.IsZero() && !t90.IsZero() && t90.After(t20) {
		m.steady = float64(size) * 0.7 / 1e6 / t90.Sub(t20).Seconds()
	}
	return m, nil
}

// goLogin times a login with the Go client (golang.org/x/crypto/ssh and
// github.com/pkg/sftp, in this process): TCP connect, key exchange, public
// key, sftp subsystem ready. Unlike login, no client process starts.
func goLogin(ctx context.Context, s *server, signer ssh.Signer, o *options) (time.Duration, error) {
	start := time.Now()
	_, closeFn, err := dialSFTP(ctx, s, clientConfig(s, signer, "aes128-gcm@openssh.com"), o)
	if err != nil {
		return 0, err
	}
	d := time.Since(start)
	closeFn()
	return d, nil
}

// login times an sftp session that only says bye.
func login(ctx context.Context, s *server, key string) (time.Duration, error) {
	start := time.Now()
	cmd := command(ctx, clientCPU, "sftp", append(sftpArgs(s, key, ""), "-b", "-", s.user+"@127.0.0.1")...)
	cmd.Stdin = strings.NewReader("bye\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%v\n%s", err, out)
	}
	return time.Since(start), nil
}

// readPos returns the file position of the process's open descriptor on
// path, or 0.
func readPos(pid int, path string) int64 {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err != nil || target != path {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		if err != nil {
			return 0
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "pos:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				return n
			}
		}
	}
	return 0
}

// cpuTicks returns utime+stime of pid, plus cutime+cstime (its reaped
// children) when withChildren.
func cpuTicks(pid int, withChildren bool) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// f[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
	get := func(field int) int64 { n, _ := strconv.ParseInt(f[field-3], 10, 64); return n }
	t := get(14) + get(15)
	if withChildren {
		t += get(16) + get(17)
	}
	return t
}

func children(pid int) []int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func descendants(pid int) []int {
	var out []int
	for _, c := range children(pid) {
		out = append(out, c)
		out = append(out, descendants(c)...)
	}
	return out
}

// waitNoChildren waits until sshd has reaped its session processes, so that
// their CPU time shows in its cutime and cstime.
func waitNoChildren(pid int) {
	deadline := time.Now().Add(10 * time.Second)
	for len(children(pid)) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

func vmRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n * 1024
		}
	}
	return 0
}

// serverRSS is the resident memory of the server: the ferry process, or
// sshd's session processes.
func serverRSS(s *server) int64 {
	if !s.session {
		return vmRSS(s.pid)
	}
	var sum int64
	for _, p := range descendants(s.pid) {
		sum += vmRSS(p)
	}
	return sum
}
