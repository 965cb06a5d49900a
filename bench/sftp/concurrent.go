package main

// The concurrency mode (-sessions N): N SFTP sessions at once against each
// server, each on its own SSH connection, each uploading a file of
// -session-size and then downloading it again. Spawning N `sftp -b`
// processes would make the client the thing measured, so the client here is
// golang.org/x/crypto/ssh + github.com/pkg/sftp inside this program, the
// same for both servers.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// sessionKEX is the key exchange the concurrent client asks for: one that
// both sshd 9.2 and Ferry in FIPS mode offer, so both do the same work.
const sessionKEX = "ecdh-sha2-nistp256"

// concResult is one round of N concurrent sessions against one server.
type concResult struct {
	wall      time.Duration
	okBytes   int64 // bytes moved by the sessions that succeeded, both ways
	failures  int
	errs      []string // the first few errors
	cpu       float64  // server CPU seconds
	clientCPU float64  // this program's CPU seconds (the client)
	peakRSS   int64    // peak sum of VmRSS of the server processes
	peakAnon  int64    // the same without file-backed and shared pages (statm resident - shared)
	idleRSS   int64    // server RSS before the concurrent rounds (Ferry; 0 for sshd, whose sessions come and go)
	idleAnon  int64    // the same for peakAnon
	maxProcs  int      // most server processes seen at once (sshd)
	logins    []float64
	upSecs    []float64
	downSecs  []float64
	sessionMs []float64
}

func (r concResult) mbps() float64 { return float64(r.okBytes) / 1e6 / r.wall.Seconds() }

// runConcurrent runs the concurrency mode: per cipher and round, servers in
// alternating order.
func runConcurrent(ctx context.Context, o *options, servers map[string]*server, keyFile, tmp string) error {
	signer, err := loadSigner(keyFile)
	if err != nil {
		return err
	}
	data := make([]byte, o.sessionSize)
	rand.Read(data)
	// Ferry's RSS before any concurrent round; a Go server keeps some of
	// what a round used, so the RSS before later rounds would be too high.
	for _, s := range servers {
		if !s.session {
			s.idleRSS, s.idleAnon, _ = serverMem(s)
		}
	}
	ossh := servers["openssh"]
	results := map[string][]concResult{} // key: cipher/server name
	for round := 0; round < o.rounds; round++ {
		for _, cipher := range o.ciphers {
			f := servers["ferry"]
			if cipher == "chacha20-poly1305@openssh.com" {
				f = servers["ferry-nofips"]
			}
			order := []*server{f, ossh}
			if round%2 == 1 {
				order[0], order[1] = order[1], order[0]
			}
			for _, s := range order {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r, err := concurrentRound(ctx, s, signer, cipher, data, o)
				if err != nil {
					return fmt.Errorf("%s %s: %w", s.name, cipher, err)
				}
				logf("round %d %-28s %-20s %4d sessions: %7.1f MB/s aggregate in %5.1f s, %d failed, server cpu %6.2f s, client cpu %6.2f s, peak rss %6.0f MB (anon %6.0f MB, %d processes), login median %4.0f ms max %5.0f ms",
					round+1, cipher, s.name, o.sessions, r.mbps(), r.wall.Seconds(), r.failures, r.cpu, r.clientCPU,
					float64(r.peakRSS)/1e6, float64(r.peakAnon)/1e6, r.maxProcs, median(r.logins), slices.Max(append(r.logins, 0)))
				for _, e := range r.errs {
					logf("  error: %s", e)
				}
				k := cipher + "/" + s.name
				results[k] = append(results[k], r)
				if err := cleanConcurrent(ctx, s, signer, cipher, o); err != nil {
					return fmt.Errorf("%s: removing the files: %w", s.name, err)
				}
			}
		}
	}

	// How much of what the rounds used the idle Ferry keeps, and for how
	// long: Go returns freed memory to the OS lazily (its forced collection
	// runs every 2 minutes), so the RSS is sampled past that.
	idleAfter := map[string][]int64{}
	if o.idleWait > 0 {
		logf("idle: sampling the RSS of the idle servers for %v", o.idleWait)
		start := time.Now()
		for _, at := range idleMarks(o.idleWait) {
			time.Sleep(time.Until(start.Add(at)))
			for name, s := range servers {
				if !s.session {
					rss, _, _ := serverMem(s)
					idleAfter[name] = append(idleAfter[name], rss)
				}
			}
		}
	}

	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "cipher\tserver\taggregate MB/s (min-max)\twall s\tfailed\tserver CPU s\tCPU s/GiB\tpeak RSS MB\tper session MB\tpeak anon MB\tper session MB\tlogin ms p50/p95\tsession s p50/p95\t\n")
	for _, cipher := range o.ciphers {
		var ref float64
		for _, name := range []string{"openssh", "ferry", "ferry (fips140=off)"} {
			rs := results[cipher+"/"+name]
			if len(rs) == 0 {
				continue
			}
			agg := pick(rs, concResult.mbps)
			m := median(agg)
			ratio := ""
			if name == "openssh" {
				ref = m
			} else if ref > 0 {
				ratio = fmt.Sprintf(" (%.2fx)", m/ref)
			}
			failed := 0
			var logins, sessions []float64
			for _, r := range rs {
				failed += r.failures
				logins = append(logins, r.logins...)
				sessions = append(sessions, r.sessionMs...)
			}
			cpu := median(pick(rs, func(r concResult) float64 { return r.cpu }))
			gib := median(pick(rs, func(r concResult) float64 { return float64(r.okBytes) / (1 << 30) }))
			rss := median(pick(rs, func(r concResult) float64 { return float64(r.peakRSS) / 1e6 }))
			anon := median(pick(rs, func(r concResult) float64 { return float64(r.peakAnon) / 1e6 }))
			// Per session: what the sessions added to the idle server (Ferry),
			// or the session processes themselves (sshd).
			idle := median(pick(rs, func(r concResult) float64 { return float64(r.idleRSS) / 1e6 }))
			idleAnon := median(pick(rs, func(r concResult) float64 { return float64(r.idleAnon) / 1e6 }))
			fmt.Fprintf(w, "%s\t%s\t%.0f%s (%.0f-%.0f)\t%.1f\t%d\t%.1f\t%.2f\t%.0f\t%.2f\t%.0f\t%.2f\t%.0f/%.0f\t%.2f/%.2f\t\n",
				cipher, name, m, ratio, slices.Min(agg), slices.Max(agg),
				median(pick(rs, func(r concResult) float64 { return r.wall.Seconds() })), failed,
				cpu, cpu/gib, rss, (rss-idle)/float64(o.sessions), anon, (anon-idleAnon)/float64(o.sessions),
				median(logins), percentile(logins, 0.95), median(sessions)/1000, percentile(sessions, 0.95)/1000)
		}
	}
	w.Flush()
	pinned := "client and servers share the cores"
	if o.pin {
		pinned = "servers pinned to CPU 0, this program (the client) to CPU 1"
	}
	fmt.Printf("\n%d concurrent sessions, each on its own SSH connection (kex %s), uploading then downloading %s with pkg/sftp (%d-byte requests, %d in flight per file); %d rounds, alternating order, %d cores, %s; medians.\n",
		o.sessions, sessionKEX, humanSize(o.sessionSize), o.packet, o.requests, o.rounds, numCPU(), pinned)
	for name, s := range servers {
		if !s.session {
			fmt.Printf("idle %s before the rounds: RSS %.0f MB, anon %.0f MB\n", s.name, float64(s.idleRSS)/1e6, float64(s.idleAnon)/1e6)
			if rs := idleAfter[name]; len(rs) > 0 {
				fmt.Printf("idle %s after the last round:", s.name)
				for i, at := range idleMarks(o.idleWait) {
					fmt.Printf(" %v %.0f MB;", at, float64(rs[i])/1e6)
				}
				fmt.Println()
			}
		}
	}
	fmt.Printf("per session MB: (peak - idle server RSS) / sessions; the idle RSS is 0 for sshd, whose session processes exist only during the round. anon = statm resident - shared, summed over the processes.\n")
	return nil
}

// idleMarks are the times after the last round at which the idle servers'
// RSS is sampled.
func idleMarks(wait time.Duration) []time.Duration {
	var marks []time.Duration
	for _, at := range []time.Duration{time.Second, 10 * time.Second, time.Minute, 2 * time.Minute} {
		if at < wait {
			marks = append(marks, at)
		}
	}
	return append(marks, wait)
}

func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// loadSigner reads the client's private key.
func loadSigner(keyFile string) (ssh.Signer, error) {
	pem, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	return ssh.ParsePrivateKey(pem)
}

func clientConfig(s *server, signer ssh.Signer, cipher string) *ssh.ClientConfig {
	return &ssh.ClientConfig{
		User:            s.user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // loopback, servers started by this program
		Config:          ssh.Config{Ciphers: []string{cipher}, KeyExchanges: []string{sessionKEX}},
		Timeout:         2 * time.Minute,
	}
}

// dialSFTP connects, logs in and starts the sftp subsystem.
func dialSFTP(ctx context.Context, s *server, cfg *ssh.ClientConfig, o *options) (*sftp.Client, func(), error) {
	addr := net.JoinHostPort("127.0.0.1", s.port)
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	c, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("ssh: %w", err)
	}
	client := ssh.NewClient(c, chans, reqs)
	sc, err := sftp.NewClient(client, sftp.MaxPacketUnchecked(o.packet), sftp.MaxConcurrentRequestsPerFile(o.requests),
		sftp.UseConcurrentWrites(true))
	if err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("sftp: %w", err)
	}
	return sc, func() { sc.Close(); client.Close() }, nil
}

type sessionTimes struct {
	login, up, down, total time.Duration
}

// oneSession uploads data as file i, downloads it and compares.
func oneSession(ctx context.Context, s *server, cfg *ssh.ClientConfig, o *options, i int, data []byte) (sessionTimes, error) {
	var t sessionTimes
	start := time.Now()
	sc, closeFn, err := dialSFTP(ctx, s, cfg, o)
	if err != nil {
		return t, fmt.Errorf("login: %w", err)
	}
	defer closeFn()
	t.login = time.Since(start)
	name := path.Join(s.remote, fmt.Sprintf("s%04d.bin", i))
	f, err := sc.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return t, fmt.Errorf("create: %w", err)
	}
	if _, err := f.ReadFrom(bytes.NewReader(data)); err != nil {
		f.Close()
		return t, fmt.Errorf("upload: %w", err)
	}
	if err := f.Close(); err != nil {
		return t, fmt.Errorf("upload close: %w", err)
	}
	up := time.Now()
	t.up = up.Sub(start) - t.login
	if f, err = sc.Open(name); err != nil {
		return t, fmt.Errorf("open: %w", err)
	}
	cw := &compareWriter{want: data}
	_, err = f.WriteTo(cw)
	f.Close()
	if err != nil {
		return t, fmt.Errorf("download: %w", err)
	}
	if cw.n != len(data) {
		return t, fmt.Errorf("download: %d bytes of %d", cw.n, len(data))
	}
	t.down = time.Since(up)
	t.total = time.Since(start)
	return t, nil
}

// compareWriter checks that what is written is want, in order.
type compareWriter struct {
	want []byte
	n    int
}

func (w *compareWriter) Write(p []byte) (int, error) {
	if len(p) > len(w.want)-w.n || !bytes.Equal(p, w.want[w.n:w.n+len(p)]) {
		return 0, fmt.Errorf("downloaded bytes differ from the upload at offset %d", w.n)
	}
	w.n += len(p)
	return len(p), nil
}

// concurrentRound starts o.sessions sessions at once and measures them.
func concurrentRound(ctx context.Context, s *server, signer ssh.Signer, cipher string, data []byte, o *options) (concResult, error) {
	cfg := clientConfig(s, signer, cipher)
	var r concResult
	r.idleRSS, r.idleAnon = s.idleRSS, s.idleAnon
	stopSampler := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			rss, anon, n := serverMem(s)
			r.peakRSS, r.peakAnon, r.maxProcs = max(r.peakRSS, rss), max(r.peakAnon, anon), max(r.maxProcs, n)
			select {
			case <-stopSampler:
				return
			case <-t.C:
			}
		}
	}()

	type out struct {
		t   sessionTimes
		err error
	}
	outs := make([]out, o.sessions)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range o.sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			outs[i].t, outs[i].err = oneSession(ctx, s, cfg, o, i, data)
		}()
	}
	time.Sleep(100 * time.Millisecond) // let the goroutines reach the gate
	cpu0, client0 := cpuTicks(s.pid, true), selfCPU()
	start := time.Now()
	close(gate)
	wg.Wait()
	r.wall = time.Since(start)
	r.clientCPU = selfCPU() - client0
	if s.session {
		waitNoChildren(s.pid)
	}
	r.cpu = float64(cpuTicks(s.pid, true)-cpu0) / 100
	close(stopSampler)
	<-sampled
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	for _, x := range outs {
		if x.err != nil {
			r.failures++
			if len(r.errs) < 5 {
				r.errs = append(r.errs, x.err.Error())
			}
			continue
		}
		r.okBytes += 2 * int64(len(data))
		r.logins = append(r.logins, float64(x.t.login.Microseconds())/1000)
		r.upSecs = append(r.upSecs, x.t.up.Seconds())
		r.downSecs = append(r.downSecs, x.t.down.Seconds())
		r.sessionMs = append(r.sessionMs, float64(x.t.total.Microseconds())/1000)
	}
	if r.failures == o.sessions {
		return r, fmt.Errorf("every session failed: %s", strings.Join(r.errs, "; "))
	}
	return r, nil
}

// cleanConcurrent removes the round's files, outside the measurement, so
// that tmpfs does not fill up round after round.
func cleanConcurrent(ctx context.Context, s *server, signer ssh.Signer, cipher string, o *options) error {
	if s.session { // sshd serves the local filesystem: remove directly
		files, _ := filepath.Glob(filepath.Join(s.remote, "s*.bin"))
		for _, f := range files {
			os.Remove(f)
		}
		return nil
	}
	sc, closeFn, err := dialSFTP(ctx, s, clientConfig(s, signer, cipher), o)
	if err != nil {
		return err
	}
	defer closeFn()
	for i := range o.sessions {
		err := sc.Remove(path.Join(s.remote, fmt.Sprintf("s%04d.bin", i)))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// serverMem returns the server's resident memory: the sum of VmRSS, the sum
// of resident minus shared pages (statm), and the number of processes.
func serverMem(s *server) (rss, anon int64, n int) {
	pids := []int{s.pid}
	if s.session {
		pids = descendants(s.pid)
	}
	page := int64(os.Getpagesize())
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", p))
		if err != nil {
			continue
		}
		var size, res, shared int64
		if _, err := fmt.Sscan(string(b), &size, &res, &shared); err != nil {
			continue
		}
		rss += res * page
		anon += (res - shared) * page
		n++
	}
	return rss, anon, n
}

// selfCPU returns this process's user and system CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
