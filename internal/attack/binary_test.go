package attack_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"ferry.dev/ferry/internal/ferrytest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	ferrytest.RemoveBinary()
	os.Exit(code)
}

// startBinary runs the real ferry binary (`ferry serve`, not
// race-instrumented) on a fresh data directory, for the tests that watch the
// process itself (children, memory) or that the race detector only slows.
func startBinary(t testing.TB, args ...string) served {
	t.Helper()
	return served{ferrytest.Start(t, ferrytest.WithBinary(), ferrytest.WithArgs(args...))}
}

// children returns the pids of the processes whose parent is pid: from
// /proc/PID/task/*/children and, independently, every /proc/*/stat.
func children(t testing.TB, pid int) []int {
	t.Helper()
	var out []int
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	if len(tasks) == 0 {
		t.Fatalf("no /proc/%d/task/*/children: is /proc mounted (Linux)?", pid)
	}
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, f := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(f)
			out = append(out, n)
		}
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may contain spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fs := strings.Fields(s[i+1:])
		if len(fs) > 1 && fs[1] == strconv.Itoa(pid) {
			n, _ := strconv.Atoi(strings.Fields(s)[0])
			out = append(out, n)
		}
	}
	return out
}

// vmHWM returns the peak resident set size of a process, in KiB.
func vmHWM(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	t.Fatal("no VmHWM")
	return 0
}
