// Command rest benchmarks Ferry's REST API with large files: it builds the
// ferry binary, starts `ferry serve` on 127.0.0.1, and times curl uploading
// (PUT /api/v1/files/…) and downloading a random file over HTTPS, round after
// round, while sampling the server's resident memory. In the same run it does
// the same against nginx (Debian's package, WebDAV PUT, self-signed TLS) as the
// reference. It prints medians over the rounds and the Ferry/nginx ratios.
//
//	go run ./bench/rest [-size 1GiB] [-rounds 5] [-http 2|1.1] [-ferry-env GOGC=50]
//
// Everything it creates lives in one temporary directory (on /dev/shm when it
// has room), removed at the end, also on error or interrupt; the servers it
// starts are stopped by their process ids.
package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rest:", err)
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	size     int64
	rounds   int
	http     string
	dir      string
	ferryEnv multiFlag
	noNginx  bool
	rssLimit float64 // MB
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func parseFlags() (*options, error) {
	o := &options{}
	size := flag.String("size", "1GiB", "file size: bytes, or with a suffix KiB, MiB, GiB (or KB, MB, GB)")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds of upload + download per server")
	flag.StringVar(&o.http, "http", "2", "HTTP version curl asks for: 2 (ALPN, curl's default) or 1.1")
	flag.StringVar(&o.dir, "dir", "", "parent of the temporary directory (default /dev/shm if it has room, else $TMPDIR)")
	flag.Var(&o.ferryEnv, "ferry-env", "KEY=VALUE added to the ferry server's environment (repeatable), e.g. GOGC=50")
	flag.BoolVar(&o.noNginx, "no-nginx", false, "skip the nginx reference")
	flag.Float64Var(&o.rssLimit, "rss-target", 40, "target for Ferry's peak RSS, MB (10^6 bytes)")
	flag.Parse()
	if flag.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", flag.Arg(0))
	}
	var err error
	if o.size, err = parseSize(*size); err != nil {
		return nil, err
	}
	if o.rounds < 1 {
		return nil, errors.New("-rounds must be at least 1")
	}
	if o.http != "2" && o.http != "1.1" {
		return nil, errors.New("-http must be 2 or 1.1")
	}
	return o, nil
}

func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("bad size %q", s)
			}
			return n * u.mult, nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n, nil
}

func run(ctx context.Context) (err error) {
	o, err := parseFlags()
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("curl"); err != nil {
		return errors.New("curl not found (apt-get install curl)")
	}
	nginxBin := ""
	if !o.noNginx {
		if nginxBin, err = exec.LookPath("nginx"); err != nil {
			if nginxBin, err = exec.LookPath("/usr/sbin/nginx"); err != nil {
				return errors.New("nginx not found: apt-get install -y nginx, or run with -no-nginx")
			}
		}
		if err := checkNginxDAV(ctx, nginxBin); err != nil {
			return err
		}
	}
	modDir, err := moduleDir(ctx)
	if err != nil {
		return err
	}

	// Room: the source, the download, and per server the stored file plus a
	// second copy while an upload replaces it.
	need := uint64(o.size)*6 + 256<<20
	parent := o.dir
	if parent == "" {
		parent = os.TempDir()
		if free, err := freeBytes("/dev/shm"); err == nil && free > need {
			parent = "/dev/shm"
		}
	}
	if free, err := freeBytes(parent); err == nil && free < need {
		return fmt.Errorf("%s has %d MB free, the benchmark needs about %d MB", parent, free/1e6, need/1e6)
	}
	tmp, err := os.MkdirTemp(parent, "ferry-bench-rest-")
	if err != nil {
		return err
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); rerr != nil && err == nil {
			err = rerr
		}
	}()
	logf("working in %s", tmp)

	bin := filepath.Join(tmp, "ferry")
	logf("building %s", bin)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/ferry")
	build.Dir, build.Stdout, build.Stderr = modDir, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}

	src := filepath.Join(tmp, "src.bin")
	logf("writing %d random bytes to %s", o.size, src)
	sum, err := writeRandom(src, o.size)
	if err != nil {
		return err
	}
	out := filepath.Join(tmp, "out.bin")

	fs, err := startFerry(ctx, bin, filepath.Join(tmp, "data"), o.ferryEnv)
	if err != nil {
		return err
	}
	defer fs.stop()
	if err := fs.setup(ctx); err != nil {
		return err
	}
	servers := []*target{fs.target()}
	if !o.noNginx {
		ng, err := startNginx(ctx, nginxBin, filepath.Join(tmp, "nginx"))
		if err != nil {
			return err
		}
		defer ng.stop()
		servers = append(servers, ng.target())
	}

	idle, _ := readStatus(fs.cmd.Process.Pid)
	logf("ferry idle: VmRSS %.1f MB", mb(idle.rss))
	results := map[string][]phaseResult{}
	for r := range o.rounds {
		// Alternate which server goes first, so neither always runs on a
		// machine warmed up (or heated up) by the other.
		order := slices.Clone(servers)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, t := range order {
			up, err := t.phase(ctx, "upload", func() (string, error) { return curlUpload(ctx, o.http, t, src) })
			if err != nil {
				return fmt.Errorf("%s upload, round %d: %w", t.name, r+1, err)
			}
			if err := t.checkUploaded(o.size); err != nil {
				return err
			}
			down, err := t.phase(ctx, "download", func() (string, error) { return curlDownload(ctx, o.http, t, out) })
			if err != nil {
				return fmt.Errorf("%s download, round %d: %w", t.name, r+1, err)
			}
			if fi, err := os.Stat(out); err != nil {
				return err
			} else if fi.Size() != o.size {
				return fmt.Errorf("%s download, round %d: got %d bytes, want %d", t.name, r+1, fi.Size(), o.size)
			}
			if r == 0 { // the first download of each server
				got, err := fileSHA256(out)
				if err != nil {
					return err
				}
				if got != sum {
					return fmt.Errorf("%s download, round %d: SHA-256 %s, want %s", t.name, r+1, got, sum)
				}
				logf("%s: download SHA-256 matches the source (%s)", t.name, sum[:16])
			}
			if err := os.Remove(out); err != nil {
				return err
			}
			up.bytes, down.bytes = o.size, o.size
			results[t.name] = append(results[t.name], up, down)
			logf("round %d %-5s up %7.1f MB/s (peak RSS %5.1f MB)  down %7.1f MB/s (peak RSS %5.1f MB)  %s",
				r+1, t.name, up.mbps(), mb(up.peakRSS), down.mbps(), mb(down.peakRSS), up.proto)
		}
	}
	hwm, _ := readStatus(fs.cmd.Process.Pid)
	report(os.Stdout, o, servers, results, idle, hwm)
	return nil
}

// moduleDir returns the directory of the ferry module (the main module of
// the current directory).
func moduleDir(ctx context.Context) (string, error) {
	b, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(b))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run from inside the ferry module (go run ./bench/rest)")
	}
	return filepath.Dir(mod), nil
}

func freeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// writeRandom writes n pseudo-random (ChaCha8, randomly seeded: not
// compressible, not repeating) bytes to path and returns their SHA-256.
func writeRandom(path string, n int64) (string, error) {
	var seed [32]byte
	crand.Read(seed[:])
	rng := mrand.NewChaCha8(seed)
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for left := n; left > 0; {
		p := buf[:min(int64(len(buf)), left)]
		rng.Read(p)
		h.Write(p)
		if _, err := f.Write(p); err != nil {
			f.Close()
			return "", err
		}
		left -= int64(len(p))
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "rest: "+format+"\n", args...)
}

// A target is a server under test, as curl sees it.
type target struct {
	name    string
	url     string   // of the file
	cacert  string   // CA file for curl
	headers []string // extra curl headers
	pids    func() []int
	stored  func() (int64, error) // size of what the server stored, if known
}

// phaseResult is one timed transfer.
type phaseResult struct {
	phase   string
	bytes   int64
	elapsed time.Duration
	peakRSS int64   // highest VmRSS sampled (summed over the server's processes)
	hwm     int64   // VmHWM after the phase (lifetime peak; main process)
	cpu     float64 // server CPU seconds (user+system) during the phase
	proto   string  // HTTP version curl used
}

func (p phaseResult) mbps() float64 { return float64(p.bytes) / 1e6 / p.elapsed.Seconds() }

// phase runs fn, timing it and sampling the server's memory every 50 ms.
func (t *target) phase(ctx context.Context, name string, fn func() (string, error)) (phaseResult, error) {
	res := phaseResult{phase: name}
	pids := t.pids()
	cpu0 := cpuSeconds(pids)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var peak int64
	sample := func() {
		var sum int64
		for _, pid := range t.pids() {
			if st, err := readStatus(pid); err == nil {
				sum += st.rss
			}
		}
		peak = max(peak, sum)
	}
	sample()
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				sample()
			}
		}
	})
	start := time.Now()
	proto, err := fn()
	res.elapsed = time.Since(start)
	close(stop)
	wg.Wait()
	sample()
	res.peakRSS, res.proto = peak, proto
	res.cpu = cpuSeconds(t.pids()) - cpu0
	if st, err := readStatus(pids[0]); err == nil {
		res.hwm = st.hwm
	}
	return res, err
}

func (t *target) checkUploaded(size int64) error {
	if t.stored == nil {
		return nil
	}
	n, err := t.stored()
	if err != nil {
		return fmt.Errorf("%s: checking the stored file: %w", t.name, err)
	}
	if n != size {
		return fmt.Errorf("%s stored %d bytes, want %d", t.name, n, size)
	}
	return nil
}

func curlArgs(httpVersion string, t *target) []string {
	args := []string{"-sS", "--fail-with-body", "--cacert", t.cacert, "-w", "%{http_version}"}
	if httpVersion == "1.1" {
		args = append(args, "--http1.1")
	} else {
		args = append(args, "--http2")
	}
	for _, h := range t.headers {
		args = append(args, "-H", h)
	}
	return args
}

func curlUpload(ctx context.Context, httpVersion string, t *target, file string) (string, error) {
	args := append(curlArgs(httpVersion, t), "-o", os.DevNull, "-T", file, t.url)
	return runCurl(ctx, args)
}

func curlDownload(ctx context.Context, httpVersion string, t *target, out string) (string, error) {
	args := append(curlArgs(httpVersion, t), "-o", out, t.url)
	return runCurl(ctx, args)
}

// runCurl runs curl and returns what -w printed (the HTTP version).
func runCurl(ctx context.Context, args []string) (string, error) {
	cmd := exec.CommandContext(ctx, "curl", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("interrupted: %w", ctx.Err())
		}
		return "", fmt.Errorf("curl: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return "HTTP/" + strings.TrimSpace(string(b)), nil
}

// procStatus holds the memory figures of /proc/PID/status, in bytes: VmRSS,
// VmHWM, and VmRSS split into anonymous memory, mapped files and shared
// memory (tmpfs files, such as the binary when it lives on /dev/shm).
type procStatus struct{ rss, hwm, anon, file, shmem int64 }

func readStatus(pid int) (procStatus, error) {
	var st procStatus
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return st, err
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &st.rss
		case "VmHWM":
			dst = &st.hwm
		case "RssAnon":
			dst = &st.anon
		case "RssFile":
			dst = &st.file
		case "RssShmem":
			dst = &st.shmem
		}
		if !ok || dst == nil {
			continue
		}
		f := strings.Fields(v) // "12345 kB"
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		*dst = n << 10
	}
	return st, nil
}

// cpuSeconds sums user and system CPU time of the processes.
func cpuSeconds(pids []int) float64 {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:]) // f[0] is field 3 (state); utime is field 14
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		sy, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + sy
	}
	return float64(ticks) / 100 // USER_HZ is 100 on Linux
}

// children returns the child processes of pid.
func children(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func mb(b int64) float64 { return float64(b) / 1e6 }

// ferryServer is a running `ferry serve`.
type ferryServer struct {
	bin, data string
	cmd       *exec.Cmd
	publicURL string
	token     string
	done      chan error
	mu        sync.Mutex
	log       []string // last lines of its stderr
}

func startFerry(ctx context.Context, bin, data string, env []string) (*ferryServer, error) {
	s := &ferryServer{bin: bin, data: data, done: make(chan error, 1)}
	s.cmd = exec.Command(bin, "serve", "--data", data, "--public-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--sftp-addr", "127.0.0.1:0", "--log-level", "warn")
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start ferry serve: %w", err)
	}
	logf("started ferry serve (pid %d) %s", s.cmd.Process.Pid, strings.Join(env, " "))
	urlc, ready := make(chan string, 1), make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		closed := false
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log = append(s.log, line)
			if len(s.log) > 50 {
				s.log = s.log[1:]
			}
			s.mu.Unlock()
			switch {
			case strings.HasPrefix(line, "ferry: public listener "):
				urlc <- strings.TrimPrefix(line, "ferry: public listener ")
			case line == "ferry: ready" && !closed:
				close(ready)
				closed = true
			}
		}
		s.done <- s.cmd.Wait()
	}()
	timeout := time.After(60 * time.Second)
	for s.publicURL == "" || ready != nil {
		select {
		case u := <-urlc:
			s.publicURL = u
		case <-ready:
			ready = nil
		case err := <-s.done:
			s.done <- err
			return nil, fmt.Errorf("ferry serve exited before ready (%v):\n%s", err, s.tail())
		case <-timeout:
			s.stop()
			return nil, fmt.Errorf("ferry serve not ready after 60 s:\n%s", s.tail())
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		}
	}
	return s, nil
}

func (s *ferryServer) tail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.log, "\n")
}

// stop sends SIGTERM and waits (SIGKILL after 30 s).
func (s *ferryServer) stop() {
	if s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		s.done <- err
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		s.done <- <-s.done
	}
}

// admin runs `ferry admin --data DATA args…` and returns its standard output.
func (s *ferryServer) admin(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, s.bin, append([]string{"admin", "--data", s.data}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("ferry admin %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// setup creates the organisation, user, folder, grant and API token.
func (s *ferryServer) setup(ctx context.Context) error {
	const org, user = "bench", "bench@example.com"
	steps := [][]string{
		{"org", "create", org},
		{"user", "create", "--org", org, "--email", user},
		{"folder", "create", "--org", org, "/bench"},
		{"grant", "--org", org, "--user", user, "/bench", "list,read,write,delete"},
	}
	for _, args := range steps {
		if _, err := s.admin(ctx, args...); err != nil {
			return err
		}
	}
	tok, err := s.admin(ctx, "token", "create", "--user", user)
	if err != nil {
		return err
	}
	if tok == "" || strings.ContainsAny(tok, " \n") {
		return fmt.Errorf("ferry admin token create printed %q", tok)
	}
	s.token = tok
	return nil
}

func (s *ferryServer) target() *target {
	return &target{
		name:    "ferry",
		url:     s.publicURL + "/api/v1/files/bench/big.bin",
		cacert:  filepath.Join(s.data, "tls", "cert.pem"),
		headers: []string{"Authorization: Bearer " + s.token},
		pids:    func() []int { return []int{s.cmd.Process.Pid} },
	}
}

// nginxServer is a running nginx with a private configuration.
type nginxServer struct {
	dir  string
	cmd  *exec.Cmd
	url  string
	done chan error
}

func checkNginxDAV(ctx context.Context, bin string) error {
	out, err := exec.CommandContext(ctx, bin, "-V").CombinedOutput()
	if err != nil {
		return fmt.Errorf("nginx -V: %v", err)
	}
	if !strings.Contains(string(out), "--with-http_dav_module") {
		return errors.New("this nginx lacks the DAV module (PUT); Debian's nginx package has it")
	}
	return nil
}

const nginxConf = `# written by bench/rest
{{user}}
worker_processes 1;
daemon off;
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path {{dir}}/body;
    proxy_temp_path {{dir}}/proxy;
    fastcgi_temp_path {{dir}}/fastcgi;
    uwsgi_temp_path {{dir}}/uwsgi;
    scgi_temp_path {{dir}}/scgi;
    types { }
    default_type application/octet-stream;
    sendfile on;
    server {
        listen {{addr}} ssl http2;
        ssl_certificate {{dir}}/cert.pem;
        ssl_certificate_key {{dir}}/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        root {{dir}}/www;
        client_max_body_size 0;
        location / {
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw;
        }
    }
}
`

func startNginx(ctx context.Context, bin, dir string) (*nginxServer, error) {
	for _, d := range []string{dir, filepath.Join(dir, "www"), filepath.Join(dir, "body")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if err := writeSelfSigned(dir); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // the workers write into dir, which is root's
	}
	conf := strings.NewReplacer("{{dir}}", dir, "{{addr}}", addr, "{{user}}", user).Replace(nginxConf)
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	s := &nginxServer{dir: dir, url: "https://" + addr, done: make(chan error, 1)}
	s.cmd = exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confFile)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start nginx: %w", err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	logf("started nginx (pid %d) on %s", s.cmd.Process.Pid, addr)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-s.done:
			s.done <- err
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return nil, fmt.Errorf("nginx exited (%v):\n%s", err, log)
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("nginx not listening on %s after 15 s", addr)
		}
	}
	return s, nil
}

// stop asks nginx for a fast shutdown (SIGTERM) and waits (SIGKILL after 10 s).
func (s *nginxServer) stop() {
	if s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		s.done <- err
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		s.done <- <-s.done
	}
}

func (s *nginxServer) target() *target {
	file := filepath.Join(s.dir, "www", "bench", "big.bin")
	return &target{
		name:   "nginx",
		url:    s.url + "/bench/big.bin",
		cacert: filepath.Join(s.dir, "cert.pem"),
		pids:   func() []int { return append([]int{s.cmd.Process.Pid}, children(s.cmd.Process.Pid)...) },
		stored: func() (int64, error) {
			fi, err := os.Stat(file)
			if err != nil {
				return 0, err
			}
			return fi.Size(), nil
		},
	}
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

// writeSelfSigned writes cert.pem and key.pem for 127.0.0.1 into dir: an
// ECDSA P-256 certificate, as Ferry generates for itself.
func writeSelfSigned(dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		return err
	}
	serial, err := crand.Int(crand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"bench/rest self-signed"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
}

// report prints the medians over the rounds.
func report(w io.Writer, o *options, servers []*target, results map[string][]phaseResult, idle, final procStatus) {
	type summary struct {
		mbps, peak, cpu float64
		proto           string
	}
	med := func(name, phase string) summary {
		var mbps, peak, cpu []float64
		var s summary
		for _, r := range results[name] {
			if r.phase == phase {
				mbps = append(mbps, r.mbps())
				peak = append(peak, mb(r.peakRSS))
				cpu = append(cpu, r.cpu)
				s.proto = r.proto
			}
		}
		s.mbps, s.peak, s.cpu = median(mbps), median(peak), median(cpu)
		return s
	}
	fmt.Fprintf(w, "\nREST %s over HTTPS on loopback, curl %s, %d rounds, medians (MB = 10^6 bytes)\n\n",
		humanSize(o.size), med("ferry", "upload").proto, o.rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\tupload MB/s\tdownload MB/s\tpeak RSS up MB\tpeak RSS down MB\tCPU s up\tCPU s down\t")
	sums := map[string][2]summary{}
	for _, t := range servers {
		up, down := med(t.name, "upload"), med(t.name, "download")
		sums[t.name] = [2]summary{up, down}
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\t%.2f\t\n", t.name, up.mbps, down.mbps, up.peak, down.peak, up.cpu, down.cpu)
	}
	if ng, ok := sums["nginx"]; ok {
		f := sums["ferry"]
		fmt.Fprintf(tw, "ferry/nginx\t%.2fx\t%.2fx\t%.1fx\t%.1fx\t%.2fx\t%.2fx\t\n",
			f[0].mbps/ng[0].mbps, f[1].mbps/ng[1].mbps, f[0].peak/ng[0].peak, f[1].peak/ng[1].peak, f[0].cpu/ng[0].cpu, f[1].cpu/ng[1].cpu)
	}
	tw.Flush()
	var peaks []float64
	for _, r := range results["ferry"] {
		peaks = append(peaks, mb(r.peakRSS))
	}
	worst := slices.Max(peaks)
	verdict := "MET"
	if mb(final.hwm) > o.rssLimit {
		verdict = "NOT MET"
	}
	fmt.Fprintf(w, "\nferry server RSS: idle %.1f MB; highest 50 ms sample %.1f MB; VmHWM (lifetime peak) %.1f MB; target <= %.0f MB: %s\n",
		mb(idle.rss), worst, mb(final.hwm), o.rssLimit, verdict)
	fmt.Fprintf(w, "ferry server VmRSS at the end: %.1f MB = RssAnon %.1f + RssFile %.1f + RssShmem %.1f (the binary's pages count as RssShmem when it lives on tmpfs)\n",
		mb(final.rss), mb(final.anon), mb(final.file), mb(final.shmem))
	if len(o.ferryEnv) > 0 {
		fmt.Fprintf(w, "ferry server environment: %s\n", strings.Join(o.ferryEnv, " "))
	}
	fmt.Fprintln(w, "\nper round:")
	for _, t := range servers {
		for _, r := range results[t.name] {
			fmt.Fprintf(w, "  %-5s %-8s %8.1f MB/s  %6.2f s  peak RSS %6.1f MB  VmHWM %6.1f MB  CPU %5.2f s\n",
				t.name, r.phase, r.mbps(), r.elapsed.Seconds(), mb(r.peakRSS), mb(r.hwm), r.cpu)
		}
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.SortFunc(s, cmp.Compare)
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
