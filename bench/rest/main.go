// Command rest benchmarks Ferry's REST API with large files: it builds the
// ferry binary, starts `ferry serve` on 127.0.0.1, and times uploads and
// downloads of a random file over HTTPS with curl, round after round, while
// measuring the server's resident memory and CPU time. Ferry is uploaded to
// in several ways (-variants): a plain PUT /api/v1/files/…, a tus upload in
// one PATCH, a tus upload in 16 MiB PATCHes (one curl each), and `ferry put`;
// each upload is followed by a download of the file it made (so tus files,
// stored in parts, are read across parts). In the same rounds it uploads and
// downloads the same file with nginx (Debian's package, WebDAV PUT,
// self-signed TLS) as the reference, and prints medians, ranges and ratios,
// per size, and the server's peak RSS per size.
//
//	go run ./bench/rest [-sizes 1MiB,64MiB,1GiB,4GiB] [-rounds 5] [-http 2|1.1]
//	    [-variants put,tus,tus16,cli] [-rev REV] [-base REV] [-perf DIR] [-ferry-env GODEBUG=fips140=off]
//
// -rev REV builds ferry at git revision REV instead of the working tree.
// -base REV also builds ferry at git revision REV and runs it as a second
// server in the same rounds (before/after comparisons). -perf DIR records
// `perf record -g` of each server during each phase of the first round.
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
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
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
	sizes    []int64
	rounds   int
	http     string
	variants []string
	chunk    int64
	base     string
	rev      string
	perfDir  string
	dir      string
	ferryEnv multiFlag
	noNginx  bool
	rssLimit float64 // MB
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// The ways Ferry is uploaded to. Each upload is followed by a download of
// the file it made, and then the file is deleted (not timed).
var allVariants = map[string]string{
	"put":   "curl -T: one PUT /api/v1/files/…",
	"tus":   "curl: tus POST, then one PATCH of the whole file (one part)",
	"tus16": "curl: tus POST, then one PATCH per -chunk (16 MiB) with Upload-Checksum, one curl per PATCH (one part each)",
	"cli":   "ferry put --chunk-size -chunk (hashes the file, then tus PATCHes with Upload-Checksum over one connection)",
}

func parseFlags() (*options, error) {
	o := &options{}
	size := flag.String("size", "1GiB", "file size: bytes, or with a suffix KiB, MiB, GiB (or KB, MB, GB)")
	sizes := flag.String("sizes", "", "comma-separated sizes, run one after the other (overrides -size), e.g. 1MiB,64MiB,1GiB,4GiB")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds of upload + download per server, variant and size")
	flag.StringVar(&o.http, "http", "2", "HTTP version curl asks for: 2 (ALPN, curl's default) or 1.1")
	variants := flag.String("variants", "put,tus,tus16", "Ferry upload paths, comma-separated: put, tus, tus16, cli")
	chunk := flag.String("chunk", "16MiB", "PATCH size of the tus16 and cli variants")
	flag.StringVar(&o.base, "base", "", "also build ferry at this git revision (git archive) and run it as server \"base\" in the same rounds")
	flag.StringVar(&o.rev, "rev", "", "build ferry at this git revision (git archive) instead of the working tree")
	flag.StringVar(&o.perfDir, "perf", "", "record `perf record -g` of each server during each phase of the first round into this directory")
	flag.StringVar(&o.dir, "dir", "", "parent of the temporary directory (default /dev/shm if it has room, else $TMPDIR)")
	flag.Var(&o.ferryEnv, "ferry-env", "KEY=VALUE added to the ferry servers' environment (repeatable), e.g. GOGC=50")
	flag.BoolVar(&o.noNginx, "no-nginx", false, "skip the nginx reference")
	flag.Float64Var(&o.rssLimit, "rss-target", 40, "target for Ferry's peak RSS, MB (10^6 bytes)")
	flag.Parse()
	if flag.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", flag.Arg(0))
	}
	list := *size
	if *sizes != "" {
		list = *sizes
	}
	for _, s := range strings.Split(list, ",") {
		n, err := parseSize(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		o.sizes = append(o.sizes, n)
	}
	for _, v := range strings.Split(*variants, ",") {
		v = strings.TrimSpace(v)
		if _, ok := allVariants[v]; !ok {
			return nil, fmt.Errorf("unknown variant %q (want put, tus, tus16 or cli)", v)
		}
		o.variants = append(o.variants, v)
	}
	var err error
	if o.chunk, err = parseSize(*chunk); err != nil {
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
	if o.perfDir != "" {
		if _, err := exec.LookPath("perf"); err != nil {
			return errors.New("-perf needs perf (apt-get install linux-perf)")
		}
		if err := os.MkdirAll(o.perfDir, 0o755); err != nil {
			return err
		}
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

	// Room: the source, the download, and the one stored file (each is
	// deleted after its download), plus a margin.
	largest := slices.Max(o.sizes)
	need := uint64(largest)*3 + 512<<20
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

	bin, srcDir := filepath.Join(tmp, "ferry"), modDir
	if o.rev != "" {
		srcDir = filepath.Join(tmp, "src")
		if err := exportRevision(ctx, modDir, o.rev, srcDir); err != nil {
			return err
		}
	}
	if err := buildFerry(ctx, srcDir, bin); err != nil {
		return err
	}
	var servers []*target
	fs, err := startFerry(ctx, "ferry", bin, filepath.Join(tmp, "data"), o.ferryEnv)
	if err != nil {
		return err
	}
	defer fs.stop()
	if err := fs.setup(ctx); err != nil {
		return err
	}
	servers = append(servers, fs.target())
	if o.base != "" {
		src := filepath.Join(tmp, "base-src")
		if err := exportRevision(ctx, modDir, o.base, src); err != nil {
			return err
		}
		baseBin := filepath.Join(tmp, "ferry-base")
		if err := buildFerry(ctx, src, baseBin); err != nil {
			return err
		}
		bs, err := startFerry(ctx, "base", baseBin, filepath.Join(tmp, "data-base"), o.ferryEnv)
		if err != nil {
			return err
		}
		defer bs.stop()
		if err := bs.setup(ctx); err != nil {
			return err
		}
		servers = append(servers, bs.target())
	}
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
	var all []sizeResult
	for _, size := range o.sizes {
		res, err := runSize(ctx, o, tmp, size, servers)
		if err != nil {
			return err
		}
		all = append(all, res)
	}
	hwm, _ := readStatus(fs.cmd.Process.Pid)
	report(os.Stdout, o, servers, all, idle, hwm)
	return nil
}

// sizeResult holds every timed transfer of one file size.
type sizeResult struct {
	size    int64
	results map[string][]phaseResult // by server name + " " + phase
}

// runSize runs the rounds for one file size.
func runSize(ctx context.Context, o *options, tmp string, size int64, servers []*target) (sizeResult, error) {
	res := sizeResult{size: size, results: map[string][]phaseResult{}}
	src := filepath.Join(tmp, "src.bin")
	logf("writing %d random bytes to %s", size, src)
	sum, err := writeRandom(src, size)
	if err != nil {
		return res, err
	}
	defer os.Remove(src)
	chunkSums, err := chunkSHA256s(src, size, o.chunk)
	if err != nil {
		return res, err
	}
	out := filepath.Join(tmp, "out.bin")
	in := input{file: src, size: size, sha256: sum, chunk: o.chunk, chunkSums: chunkSums}
	for r := range o.rounds {
		// Rotate which server goes first, so none always runs on a machine
		// warmed up (or heated up) by another.
		order := slices.Clone(servers)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, t := range order {
			variants := []string{"put"}
			if t.ferry != nil {
				variants = o.variants
			}
			var line []string
			for _, v := range variants {
				perf := ""
				if o.perfDir != "" && r == 0 {
					perf = filepath.Join(o.perfDir, fmt.Sprintf("%s-%s-%s", t.name, strings.ReplaceAll(humanSize(size), " ", ""), v))
				}
				up, err := t.phase(ctx, "up "+v, perf, func() (string, error) { return t.upload(ctx, o, v, in) })
				if err != nil {
					return res, fmt.Errorf("%s upload (%s), round %d: %w", t.name, v, r+1, err)
				}
				if err := t.checkUploaded(v, size); err != nil {
					return res, err
				}
				down, err := t.phase(ctx, "down "+v, perf, func() (string, error) { return curlDownload(ctx, o.http, t, t.fileURL(v), out) })
				if err != nil {
					return res, fmt.Errorf("%s download (%s), round %d: %w", t.name, v, r+1, err)
				}
				if fi, err := os.Stat(out); err != nil {
					return res, err
				} else if fi.Size() != size {
					return res, fmt.Errorf("%s download (%s), round %d: got %d bytes, want %d", t.name, v, r+1, fi.Size(), size)
				}
				if r == 0 { // the first download of each file
					got, err := fileSHA256(out)
					if err != nil {
						return res, err
					}
					if got != sum {
						return res, fmt.Errorf("%s download (%s), round %d: SHA-256 %s, want %s", t.name, v, r+1, got, sum)
					}
				}
				if err := os.Remove(out); err != nil {
					return res, err
				}
				if err := t.remove(ctx, v); err != nil {
					return res, fmt.Errorf("%s: deleting the %s file: %w", t.name, v, err)
				}
				up.bytes, down.bytes = size, size
				res.results[t.name+" up "+v] = append(res.results[t.name+" up "+v], up)
				res.results[t.name+" down "+v] = append(res.results[t.name+" down "+v], down)
				line = append(line, fmt.Sprintf("%s up %.0f (%.1f MB) down %.0f (%.1f MB)", v, up.mbps(), mb(up.peakRSS), down.mbps(), mb(down.peakRSS)))
			}
			logf("%s round %d %-5s MB/s (peak RSS): %s  %s", humanSize(size), r+1, t.name, strings.Join(line, "; "), res.results[t.name+" up "+variants[0]][r].proto)
		}
	}
	return res, nil
}

// input is the file being uploaded.
type input struct {
	file      string
	size      int64
	sha256    string   // hex
	chunk     int64    // PATCH size of tus16
	chunkSums []string // base64 SHA-256 of each chunk, for Upload-Checksum
}

func chunkSHA256s(path string, size, chunk int64) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var sums []string
	for off := int64(0); off < size; off += chunk {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, off, min(chunk, size-off))); err != nil {
			return nil, err
		}
		sums = append(sums, base64.StdEncoding.EncodeToString(h.Sum(nil)))
	}
	return sums, nil
}

func buildFerry(ctx context.Context, dir, bin string) error {
	logf("building %s from %s", bin, dir)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/ferry")
	build.Dir, build.Stdout, build.Stderr = dir, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	return nil
}

// exportRevision writes the tree of git revision rev of the repository at
// modDir into dir (git archive | tar -x), leaving the repository untouched.
func exportRevision(ctx context.Context, modDir, rev, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	logf("exporting %s into %s", rev, dir)
	archive := exec.CommandContext(ctx, "git", "archive", "--format=tar", rev)
	archive.Dir, archive.Stderr = modDir, os.Stderr
	untar := exec.CommandContext(ctx, "tar", "-x", "-C", dir)
	untar.Stderr = os.Stderr
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return err
	}
	untar.Stdin = pipe
	if err := untar.Start(); err != nil {
		return err
	}
	if err := archive.Run(); err != nil {
		untar.Wait()
		return fmt.Errorf("git archive %s: %w", rev, err)
	}
	if err := untar.Wait(); err != nil {
		return fmt.Errorf("tar -x: %w", err)
	}
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
	cacert  string   // CA file for curl
	headers []string // extra curl headers
	pids    func() []int
	ferry   *ferryServer // nil for nginx
	nginx   *nginxServer // nil for Ferry
}

// fileURL is the URL of the file that variant v uploads.
func (t *target) fileURL(v string) string {
	if t.ferry != nil {
		return t.ferry.publicURL + "/api/v1/files" + t.ferry.remote(v)
	}
	return t.nginx.url + "/bench/big.bin"
}

// phaseResult is one timed transfer.
type phaseResult struct {
	phase   string
	bytes   int64
	elapsed time.Duration
	peakRSS int64   // peak RSS of the server during the phase (see phase)
	cpu     float64 // server CPU seconds (user+system) during the phase
	writes  int64   // server write system calls during the phase (syscw of /proc/PID/io)
	proto   string  // HTTP version curl used
}

func (p phaseResult) mbps() float64 { return float64(p.bytes) / 1e6 / p.elapsed.Seconds() }

// phase runs fn, timing it and measuring the server's memory: each process's
// VmHWM is reset (clear_refs 5) before and read after, and VmRSS summed over
// the processes is sampled every 50 ms; the peak is the larger of the sum of
// the VmHWMs and the highest sample. With perf set, it records the server's
// CPU profile into perf+"-"+phase+".data".
func (t *target) phase(ctx context.Context, name, perf string, fn func() (string, error)) (phaseResult, error) {
	res := phaseResult{phase: name}
	pids := t.pids()
	for _, pid := range pids {
		os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0)
	}
	if perf != "" {
		stopPerf, err := startPerf(ctx, pids, perf+"-"+strings.ReplaceAll(name, " ", "-")+".data")
		if err != nil {
			return res, err
		}
		defer stopPerf()
	}
	cpu0, w0 := cpuSeconds(pids), writeCalls(pids)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var peak int64
	sample := func() {
		var sum int64
		for _, pid := range pids {
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
	res.cpu, res.writes = cpuSeconds(pids)-cpu0, writeCalls(pids)-w0
	var hwm int64
	for _, pid := range pids {
		if st, err := readStatus(pid); err == nil {
			hwm += st.hwm
		}
	}
	res.peakRSS, res.proto = max(peak, hwm), proto
	return res, err
}

// startPerf starts `perf record -g` on the processes and returns a function
// that stops it (SIGINT) and waits for it to write its file.
func startPerf(ctx context.Context, pids []int, out string) (func(), error) {
	var ps []string
	for _, p := range pids {
		ps = append(ps, strconv.Itoa(p))
	}
	cmd := exec.CommandContext(ctx, "perf", "record", "-g", "-q", "-F", "999", "-o", out, "-p", strings.Join(ps, ","))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf record: %w", err)
	}
	time.Sleep(300 * time.Millisecond) // let it attach
	return func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		logf("wrote %s", out)
	}, nil
}

func (t *target) checkUploaded(v string, size int64) error {
	if t.nginx == nil {
		return nil // the download checks the size
	}
	fi, err := os.Stat(filepath.Join(t.nginx.dir, "www", "bench", "big.bin"))
	if err != nil {
		return fmt.Errorf("%s: checking the stored file: %w", t.name, err)
	}
	if fi.Size() != size {
		return fmt.Errorf("%s stored %d bytes, want %d", t.name, fi.Size(), size)
	}
	return nil
}

// remove deletes the file variant v uploaded (not timed).
func (t *target) remove(ctx context.Context, v string) error {
	if t.nginx != nil {
		return os.Remove(filepath.Join(t.nginx.dir, "www", "bench", "big.bin"))
	}
	args := append(curlArgs("1.1", t), "-o", os.DevNull, "-X", "DELETE", t.fileURL(v))
	_, err := runCurl(ctx, args, nil)
	return err
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

// upload uploads the input the way variant v says.
func (t *target) upload(ctx context.Context, o *options, v string, in input) (string, error) {
	switch v {
	case "put":
		args := append(curlArgs(o.http, t), "-o", os.DevNull, "-T", in.file, t.fileURL(v))
		return runCurl(ctx, args, nil)
	case "tus":
		loc, err := t.tusCreate(ctx, o.http, v, in)
		if err != nil {
			return "", err
		}
		args := append(curlArgs(o.http, t), "-o", os.DevNull, "-X", "PATCH", "-H", "Tus-Resumable: 1.0.0",
			"-H", "Content-Type: application/offset+octet-stream", "-H", "Upload-Offset: 0", "-T", in.file, loc)
		return runCurl(ctx, args, nil)
	case "tus16":
		loc, err := t.tusCreate(ctx, o.http, v, in)
		if err != nil {
			return "", err
		}
		f, err := os.Open(in.file)
		if err != nil {
			return "", err
		}
		defer f.Close()
		var proto string
		for i, off := 0, int64(0); off < in.size; i, off = i+1, off+in.chunk {
			n := min(in.chunk, in.size-off)
			args := append(curlArgs(o.http, t), "-o", os.DevNull, "-X", "PATCH", "-H", "Tus-Resumable: 1.0.0",
				"-H", "Content-Type: application/offset+octet-stream", "-H", "Upload-Offset: "+strconv.FormatInt(off, 10),
				"-H", "Upload-Checksum: sha256 "+in.chunkSums[i], "--data-binary", "@-", loc)
			if proto, err = runCurl(ctx, args, io.NewSectionReader(f, off, n)); err != nil {
				return "", fmt.Errorf("PATCH at %d: %w", off, err)
			}
		}
		return proto, nil
	case "cli":
		f := t.ferry
		cmd := exec.CommandContext(ctx, f.bin, "put", "--server", f.publicURL, "--token", f.token, "--ca", t.cacert,
			"--chunk-size", strconv.FormatInt(o.chunk, 10), in.file, f.remote(v))
		cmd.Env = append(os.Environ(), "HOME="+filepath.Dir(f.data), "XDG_CONFIG_HOME="+filepath.Join(filepath.Dir(f.data), "config"))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("ferry put: %v: %s", err, strings.TrimSpace(stderr.String()))
		}
		return "ferry put", nil
	}
	return "", fmt.Errorf("unknown variant %q", v)
}

// tusCreate creates a tus upload of the input for variant v and returns its
// URL.
func (t *target) tusCreate(ctx context.Context, httpVersion, v string, in input) (string, error) {
	b64 := base64.StdEncoding.EncodeToString
	args := append(curlArgs(httpVersion, t), "-o", os.DevNull, "-X", "POST", "-H", "Tus-Resumable: 1.0.0",
		"-H", "Upload-Length: "+strconv.FormatInt(in.size, 10),
		"-H", "Upload-Metadata: path "+b64([]byte(t.ferry.remote(v)))+",sha256 "+b64([]byte(in.sha256)),
		"-w", "%{http_version}\n%header{location}", t.ferry.publicURL+"/api/v1/uploads/")
	out, err := runCurl(ctx, args, nil)
	if err != nil {
		return "", fmt.Errorf("tus POST: %w", err)
	}
	_, loc, _ := strings.Cut(out, "\n")
	loc = strings.TrimSpace(loc)
	if loc == "" {
		return "", errors.New("tus POST: no Location")
	}
	if strings.HasPrefix(loc, "/") {
		loc = t.ferry.publicURL + loc
	}
	return loc, nil
}

func curlDownload(ctx context.Context, httpVersion string, t *target, url, out string) (string, error) {
	args := append(curlArgs(httpVersion, t), "-o", out, url)
	return runCurl(ctx, args, nil)
}

// runCurl runs curl with stdin (if not nil) and returns what -w printed
// (the HTTP version first).
func runCurl(ctx context.Context, args []string, stdin io.Reader) (string, error) {
	cmd := exec.CommandContext(ctx, "curl", args...)
	cmd.Stdin = stdin
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("interrupted: %w", ctx.Err())
		}
		return "", fmt.Errorf("curl: %v: %s %s", err, strings.TrimSpace(stderr.String()), strings.TrimSpace(string(b)))
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

// writeCalls sums the write system calls the processes made (syscw).
func writeCalls(pids []int) int64 {
	var n int64
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "syscw: "); ok {
				k, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += k
			}
		}
	}
	return n
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
	name      string
	bin, data string
	cmd       *exec.Cmd
	publicURL string
	token     string
	done      chan error
	mu        sync.Mutex
	log       []string // last lines of its stderr
}

func startFerry(ctx context.Context, name, bin, data string, env []string) (*ferryServer, error) {
	s := &ferryServer{name: name, bin: bin, data: data, done: make(chan error, 1)}
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
	logf("started %s: ferry serve (pid %d) %s", name, s.cmd.Process.Pid, strings.Join(env, " "))
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
		name:    s.name,
		cacert:  filepath.Join(s.data, "tls", "cert.pem"),
		headers: []string{"Authorization: Bearer " + s.token},
		pids:    func() []int { return []int{s.cmd.Process.Pid} },
		ferry:   s,
	}
}

// remote is the path of the file variant v uploads.
func (s *ferryServer) remote(v string) string { return "/bench/big-" + v + ".bin" }

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
	return &target{
		name:   "nginx",
		cacert: filepath.Join(s.dir, "cert.pem"),
		pids:   func() []int { return append([]int{s.cmd.Process.Pid}, children(s.cmd.Process.Pid)...) },
		nginx:  s,
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

// stats is the median and range of a set of figures.
type stats struct{ med, lo, hi float64 }

func statsOf(xs []float64) stats {
	if len(xs) == 0 {
		return stats{}
	}
	return stats{median(xs), slices.Min(xs), slices.Max(xs)}
}

func (s stats) String() string { return fmt.Sprintf("%.1f [%.1f-%.1f]", s.med, s.lo, s.hi) }

// report prints, per size, the medians and ranges over the rounds, the
// ratios, and the peak RSS of each size.
func report(w io.Writer, o *options, servers []*target, all []sizeResult, idle, final procStatus) {
	fmt.Fprintf(w, "\nREST over HTTPS on loopback, curl --http%s, %d rounds; median [min-max] (MB = 10^6 bytes)\n", o.http, o.rounds)
	for v, d := range allVariants {
		if slices.Contains(o.variants, v) {
			fmt.Fprintf(w, "  %-6s %s\n", v, d)
		}
	}
	type rssRow struct {
		size int64
		peak map[string]float64 // by server, highest over its phases and rounds
	}
	var rss []rssRow
	for _, sr := range all {
		get := func(name, phase string, f func(phaseResult) float64) []float64 {
			var xs []float64
			for _, r := range sr.results[name+" "+phase] {
				xs = append(xs, f(r))
			}
			return xs
		}
		rate := func(r phaseResult) float64 { return r.mbps() }
		peak := func(r phaseResult) float64 { return mb(r.peakRSS) }
		cpu := func(r phaseResult) float64 { return r.cpu / (float64(r.bytes) / (1 << 30)) }
		fmt.Fprintf(w, "\n%s\n", humanSize(sr.size))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "server\tupload path\tupload MB/s\tdownload MB/s\tpeak RSS up MB\tpeak RSS down MB\tCPU s/GiB up\tCPU s/GiB down\t")
		row := rssRow{size: sr.size, peak: map[string]float64{}}
		for _, t := range servers {
			variants := []string{"put"}
			if t.ferry != nil {
				variants = o.variants
			}
			for _, v := range variants {
				pu, pd := get(t.name, "up "+v, peak), get(t.name, "down "+v, peak)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f\t%.1f\t%.2f\t%.2f\t\n", t.name, v,
					statsOf(get(t.name, "up "+v, rate)), statsOf(get(t.name, "down "+v, rate)),
					slices.Max(pu), slices.Max(pd), median(get(t.name, "up "+v, cpu)), median(get(t.name, "down "+v, cpu)))
				row.peak[t.name] = max(row.peak[t.name], slices.Max(pu), slices.Max(pd))
			}
		}
		tw.Flush()
		rss = append(rss, row)

		// Ratios: of medians, and the range of the per-round ratios (the
		// servers of one round ran back to back).
		ratio := func(a, b []float64) string {
			if len(a) == 0 || len(b) == 0 {
				return "-"
			}
			var per []float64
			for i := range min(len(a), len(b)) {
				per = append(per, a[i]/b[i])
			}
			return fmt.Sprintf("%.2fx [%.2f-%.2f]", median(a)/median(b), slices.Min(per), slices.Max(per))
		}
		fmt.Fprintln(w)
		for _, t := range servers {
			if t.ferry == nil {
				continue
			}
			for _, v := range o.variants {
				fmt.Fprintf(w, "%s %-5s download / nginx download: %-22s upload / own put download: %-22s upload / nginx upload: %s\n", t.name, v,
					ratio(get(t.name, "down "+v, rate), get("nginx", "down put", rate)),
					ratio(get(t.name, "up "+v, rate), get(t.name, "down put", rate)),
					ratio(get(t.name, "up "+v, rate), get("nginx", "up put", rate)))
			}
		}
		if len(servers) > 1 && servers[1].name == "base" {
			for _, v := range o.variants {
				fmt.Fprintf(w, "ferry/base %-5s download: %-22s upload: %s\n", v,
					ratio(get("ferry", "down "+v, rate), get("base", "down "+v, rate)),
					ratio(get("ferry", "up "+v, rate), get("base", "up "+v, rate)))
			}
		}
	}

	fmt.Fprintf(w, "\npeak server RSS per size, MB (highest over all phases and rounds; VmHWM reset before each phase):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "server\t")
	for _, r := range rss {
		fmt.Fprintf(tw, "%s\t", humanSize(r.size))
	}
	fmt.Fprintln(tw, "spread\t")
	for _, t := range servers {
		fmt.Fprintf(tw, "%s\t", t.name)
		var xs []float64
		for _, r := range rss {
			fmt.Fprintf(tw, "%.1f\t", r.peak[t.name])
			xs = append(xs, r.peak[t.name])
		}
		fmt.Fprintf(tw, "%.1f\t\n", slices.Max(xs)-slices.Min(xs))
	}
	tw.Flush()
	worst := 0.0
	for _, r := range rss {
		worst = max(worst, r.peak["ferry"])
	}
	verdict := "MET"
	if worst > o.rssLimit {
		verdict = "NOT MET"
	}
	fmt.Fprintf(w, "\nferry server RSS: idle %.1f MB; highest peak %.1f MB; target <= %.0f MB: %s\n", mb(idle.rss), worst, o.rssLimit, verdict)
	fmt.Fprintf(w, "ferry server VmRSS at the end: %.1f MB = RssAnon %.1f + RssFile %.1f + RssShmem %.1f (the binary's pages count as RssShmem when it lives on tmpfs)\n",
		mb(final.rss), mb(final.anon), mb(final.file), mb(final.shmem))
	if len(o.ferryEnv) > 0 {
		fmt.Fprintf(w, "ferry server environment: %s\n", strings.Join(o.ferryEnv, " "))
	}
	fmt.Fprintln(w, "\nper round (MB/s, s, peak RSS MB, server CPU s, server write calls):")
	for _, sr := range all {
		for _, t := range servers {
			for _, k := range slices.Sorted(maps.Keys(sr.results)) {
				if !strings.HasPrefix(k, t.name+" ") {
					continue
				}
				var parts []string
				for _, r := range sr.results[k] {
					parts = append(parts, fmt.Sprintf("%.0f/%.2fs/%.1f/%.2f/%d", r.mbps(), r.elapsed.Seconds(), mb(r.peakRSS), r.cpu, r.writes))
				}
				fmt.Fprintf(w, "  %-8s %-16s %s\n", humanSize(sr.size), k, strings.Join(parts, "  "))
			}
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
