package cli_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"ferry.dev/ferry/internal/ferrytest"
)

// openPTY opens a pseudo-terminal pair with the kernel's /dev/ptmx.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx (a pseudo-terminal is needed to test terminal input): %v", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("unlockpt: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatalf("ptsname: %v", e)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// echoOn reports whether the terminal echoes input (TCGETS on the master
// reads the terminal's settings).
func echoOn(t *testing.T, master *os.File) bool {
	var tio syscall.Termios
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&tio))); e != 0 {
		t.Fatalf("TCGETS: %v", e)
	}
	return tio.Lflag&syscall.ECHO != 0
}

// onTerminal runs the real binary with stdin and stderr on a
// pseudo-terminal, types input once the screen shows prompt (if not ""), and
// returns stdout and what the terminal showed.
func onTerminal(t *testing.T, c *clientEnv, prompt, input string, args ...string) (stdout, screen string) {
	t.Helper()
	master, slave := openPTY(t)
	cmd, out, _ := c.command(ferrytest.Binary(t), c.s.PublicURL, args...)
	cmd.Stdin, cmd.Stderr = slave, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var scr bytes.Buffer
	shown := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		once := false
		for {
			n, err := master.Read(buf)
			scr.Write(buf[:n])
			if !once && prompt != "" && strings.Contains(scr.String(), prompt) {
				once = true
				close(shown)
			}
			if err != nil {
				return
			}
		}
	}()
	if prompt != "" {
		select {
		case <-shown:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			t.Fatalf("no prompt %q", prompt)
		}
		// Type only once echo is off, as ferry's prompt comes just before.
		for deadline := time.Now().Add(time.Minute); echoOn(t, master) && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		io.WriteString(master, input)
	}
	err := cmd.Wait()
	<-done // the read ends with EIO once the last holder of the slave exits
	if err != nil {
		t.Fatalf("ferry %v: %v\nterminal: %q", args, err, scr.String())
	}
	return out.String(), scr.String()
}

// TestTerminal checks what a person at a terminal sees: the login prompt on
// stderr without echo, and progress bars.
func TestTerminal(t *testing.T) {
	c := newClientEnv(t)
	out, screen := onTerminal(t, c, "token: ", c.alice+"\r", "login", "--server", c.s.PublicURL, "--ca", c.s.CA())
	if !strings.HasPrefix(out, "logged in to ") {
		t.Errorf("login stdout %q", out)
	}
	if strings.Contains(screen, c.alice) || strings.Contains(screen, "ferry_") {
		t.Errorf("the token was echoed: %q", screen)
	}

	dir := t.TempDir()
	writeRandom(t, filepath.Join(dir, "a.bin"), 3<<20)
	writeRandom(t, filepath.Join(dir, "b.bin"), 1<<20)
	out, screen = onTerminal(t, c, "", "", "put", "--json", "--chunk-size", "256KiB", filepath.Join(dir, "a.bin"), filepath.Join(dir, "b.bin"), "/finance/t/")
	if n := len(records(t, out)); n != 2 {
		t.Errorf("--json on a terminal: %d records on stdout: %q", n, out)
	}
	for _, want := range []string{"/finance/t/a.bin", "100%  3.0 MiB / 3.0 MiB", "/finance/t/b.bin", "\x1b[K"} {
		if !strings.Contains(screen, want) {
			t.Errorf("terminal lacks %q:\n%q", want, screen)
		}
	}
}
