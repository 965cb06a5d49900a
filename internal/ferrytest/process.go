package ferrytest

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// Binary builds the ferry binary (./cmd/ferry, not race-instrumented) once
// per test binary and returns its path. Call RemoveBinary from TestMain to
// delete it when the tests are done.
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "ferrytest-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "ferry")
		if runtime.GOOS == "windows" {
			binPath += ".exe"
		}
		out, err := exec.Command("go", "build", "-o", binPath, "ferry.dev/ferry/cmd/ferry").CombinedOutput()
		if err != nil {
			binErr = errors.New("go build ./cmd/ferry: " + err.Error() + "\n" + string(out))
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// RemoveBinary deletes what Binary built.
func RemoveBinary() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// Proxy is a TCP proxy that counts the bytes it carries each way, for tests
// that measure what a client really sent (TLS passes through untouched).
type Proxy struct {
	Addr string // 127.0.0.1:PORT to connect to

	ln     net.Listener
	target string
	up     atomic.Int64 // client → server
	down   atomic.Int64 // server → client
	conns0 atomic.Int64 // connections accepted
	mu     sync.Mutex
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
	closed bool
}

// StartProxy listens on 127.0.0.1:0 and forwards every connection to target
// (host:port) until the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Up returns the bytes carried from clients to the server so far.
func (p *Proxy) Up() int64 { return p.up.Load() }

// Accepted returns how many connections the proxy accepted so far.
func (p *Proxy) Accepted() int64 { return p.conns0.Load() }

// Down returns the bytes carried from the server to clients so far.
func (p *Proxy) Down() int64 { return p.down.Load() }

// Cut closes every open connection (the listener stays), as a dropped
// network would.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// Close stops the proxy and cuts every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			return
		}
		p.conns0.Add(1)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer c.Close()
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				return
			}
			if !p.track(s) {
				return
			}
			defer s.Close()
			done := make(chan struct{})
			go func() {
				copyCounting(s, c, &p.up)
				s.(*net.TCPConn).CloseWrite()
				close(done)
			}()
			copyCounting(c, s, &p.down)
			c.(*net.TCPConn).CloseWrite()
			<-done
			p.mu.Lock()
			delete(p.conns, c)
			delete(p.conns, s)
			p.mu.Unlock()
		}()
	}
}

// copyCounting copies src to dst, adding each write to n.
func copyCounting(dst io.Writer, src io.Reader, n *atomic.Int64) {
	buf := make([]byte, 256<<10)
	for {
		m, err := src.Read(buf)
		if m > 0 {
			w, werr := dst.Write(buf[:m])
			n.Add(int64(w))
			if werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
