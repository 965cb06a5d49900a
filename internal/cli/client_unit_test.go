package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestFormatBytesRateETA(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB",
		16 << 20: "16.0 MiB", 1 << 30: "1.0 GiB", 5 << 40: "5.0 TiB",
	} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	if got := formatRate(0); got != "-- B/s" {
		t.Errorf("formatRate(0) = %q", got)
	}
	if got := formatRate(3 << 20); got != "3.0 MiB/s" {
		t.Errorf("formatRate = %q", got)
	}
	for d, want := range map[time.Duration]string{
		0: "-:--", 59 * time.Second: "0:59", 61*time.Second + 400*time.Millisecond: "1:01",
		2*time.Hour + 3*time.Minute + 4*time.Second: "2:03:04",
	} {
		if got := formatETA(d); got != want {
			t.Errorf("formatETA(%v) = %q, want %q", d, got, want)
		}
	}
	if got := eta(100<<20, 10<<20); got != 10*time.Second {
		t.Errorf("eta = %v", got)
	}
}

func TestBarLine(t *testing.T) {
	if got := bar(10, 5, 10); got != "[=====>    ]" {
		t.Errorf("bar half = %q", got)
	}
	if got := bar(10, 10, 10); got != "[==========]" {
		t.Errorf("bar full = %q", got)
	}
	if got := bar(4, 0, 0); got != "[====]" {
		t.Errorf("bar of an empty file = %q", got)
	}
	for _, width := range []int{40, 80, 200} {
		line := barLine(width, "/finance/2026/a-rather-long-file-name-for-the-bar.csv", 400<<20, 1<<30, 80<<20, 8*time.Second)
		if n := utf8.RuneCountInString(line); n > width {
			t.Errorf("width %d: line has %d columns: %q", width, n, line)
		}
		for _, part := range []string{" 39%", "400.0 MiB / 1.0 GiB", "80.0 MiB/s", "ETA 0:08"} {
			if width < 80 && strings.Contains(part, "/ 1.0") {
				continue // dropped on a narrow terminal
			}
			if !strings.Contains(line, part) {
				t.Errorf("width %d: %q lacks %q", width, line, part)
			}
		}
	}
	done := barLine(80, "x", 10, 10, 5, 0)
	if strings.Contains(done, "ETA") || !strings.Contains(done, "100%") {
		t.Errorf("finished line %q", done)
	}
	if got := fitName("abcdefghij", 5); got != "…ghij" {
		t.Errorf("fitName = %q", got)
	}
}

func TestQuietLine(t *testing.T) {
	got := quietLine(transferRecord{Op: "put", Local: "r.csv", Remote: "/f/r.csv", Size: 2048, Seconds: 1.25, ResumedFrom: 1024})
	if want := "put r.csv -> /f/r.csv (2.0 KiB in 1.2s, resumed at 1.0 KiB)"; got != want {
		t.Errorf("quietLine = %q, want %q", got, want)
	}
	got = quietLine(transferRecord{Op: "get", Local: "r.csv", Remote: "/f/r.csv", Size: 10, Seconds: 0.5})
	if want := "get /f/r.csv -> r.csv (10 B in 0.5s)"; got != want {
		t.Errorf("quietLine = %q, want %q", got, want)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1048576": 1 << 20, "16M": 16 << 20, "16MiB": 16 << 20, "16MB": 16 << 20, "512k": 512 << 10,
		"1G": 1 << 30, "2TiB": 2 << 40, "100B": 100,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "-1", "1.5M", "ten", "99999999999T"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func TestPlanPut(t *testing.T) {
	dir := t.TempDir()
	write := func(p string, n int) {
		t.Helper()
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.txt", 3)
	write("tree/b.txt", 5)
	write("tree/sub/c.txt", 7)
	if err := os.MkdirAll(filepath.Join(dir, "tree", "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("b.txt", filepath.Join(dir, "tree", "link")); err != nil {
		t.Fatal(err)
	}
	a, tree := filepath.Join(dir, "a.txt"), filepath.Join(dir, "tree")

	// One file to a new name.
	jobs, dirs, err := planPut([]string{a}, "/in/new.txt", false, nil)
	if err != nil || len(jobs) != 1 || jobs[0].remote != "/in/new.txt" || jobs[0].size != 3 || len(dirs) != 0 {
		t.Fatalf("one file: %+v %v %v", jobs, dirs, err)
	}
	// One file into a folder.
	jobs, dirs, err = planPut([]string{a}, "/in/", true, nil)
	if err != nil || len(jobs) != 1 || jobs[0].remote != "/in/a.txt" || !slices.Equal(dirs, []string{"/in"}) {
		t.Fatalf("into folder: %+v %v %v", jobs, dirs, err)
	}
	// A file and a directory, recursively; the symlink is skipped.
	var skipped []string
	jobs, dirs, err = planPut([]string{a, tree}, "in", true, func(p string) { skipped = append(skipped, p) })
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, j := range jobs {
		got = append(got, j.remote)
	}
	if want := []string{"/in/a.txt", "/in/tree/b.txt", "/in/tree/sub/c.txt"}; !slices.Equal(got, want) {
		t.Errorf("remotes %v, want %v", got, want)
	}
	if want := []string{"/in", "/in/tree", "/in/tree/empty", "/in/tree/sub"}; !slices.Equal(dirs, want) {
		t.Errorf("dirs %v, want %v", dirs, want)
	}
	if len(skipped) != 1 || filepath.Base(skipped[0]) != "link" {
		t.Errorf("skipped %v", skipped)
	}
	if _, _, err := planPut([]string{filepath.Join(dir, "missing")}, "/x", true, nil); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing local: %v", err)
	}
}

func TestCredentialsFile(t *testing.T) {
	home := t.TempDir()
	xdg := t.TempDir()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	p, err := credentialsPath(env(map[string]string{"HOME": home}))
	if err != nil || p != filepath.Join(home, ".config", "ferry", "credentials.json") {
		t.Errorf("HOME path %q, %v", p, err)
	}
	p, err = credentialsPath(env(map[string]string{"HOME": home, "XDG_CONFIG_HOME": xdg}))
	if err != nil || p != filepath.Join(xdg, "ferry", "credentials.json") {
		t.Errorf("XDG path %q, %v", p, err)
	}
	if _, err := credentialsPath(env(nil)); err == nil {
		t.Error("no HOME nor XDG_CONFIG_HOME accepted")
	}

	getenv := env(map[string]string{"XDG_CONFIG_HOME": xdg})
	c := credentials{Server: "https://h:1", Token: "ferry_x", CA: "/ca.pem"}
	if _, err := saveCredentials(getenv, c); err != nil {
		t.Fatal(err)
	}
	c.Token = "ferry_y" // overwrite
	if _, err := saveCredentials(getenv, c); err != nil {
		t.Fatal(err)
	}
	got, err := loadCredentials(getenv)
	if err != nil || got != c {
		t.Fatalf("load = %+v, %v", got, err)
	}
	fi, _ := os.Stat(filepath.Join(xdg, "ferry"))
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v", fi.Mode())
	}
	fi, _ = os.Stat(filepath.Join(xdg, "ferry", "credentials.json"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v", fi.Mode())
	}
	if ents, _ := os.ReadDir(filepath.Join(xdg, "ferry")); len(ents) != 1 {
		t.Errorf("temp files left: %v", ents)
	}
}

func TestResolveConnection(t *testing.T) {
	xdg := t.TempDir()
	vars := map[string]string{"XDG_CONFIG_HOME": xdg}
	e := Env{Getenv: func(k string) string { return vars[k] }}
	if _, err := (&remoteFlags{}).resolve(e); err == nil || !strings.Contains(err.Error(), "ferry login") {
		t.Errorf("nothing configured: %v", err)
	}
	if _, err := saveCredentials(e.Getenv, credentials{Server: "https://stored:1", Token: "ferry_stored", CA: "/stored.pem"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		rf   remoteFlags
		vars map[string]string
		want credentials
	}{
		{"stored", remoteFlags{}, nil, credentials{"https://stored:1", "ferry_stored", "/stored.pem"}},
		{"env token", remoteFlags{}, map[string]string{"FERRY_TOKEN": "ferry_env"}, credentials{"https://stored:1", "ferry_env", "/stored.pem"}},
		{"flag beats env", remoteFlags{token: "ferry_flag", ca: "/flag.pem"}, map[string]string{"FERRY_TOKEN": "ferry_env", "FERRY_CA": "/env.pem"},
			credentials{"https://stored:1", "ferry_flag", "/flag.pem"}},
		{"same server with a slash", remoteFlags{server: "https://stored:1/"}, nil, credentials{"https://stored:1/", "ferry_stored", "/stored.pem"}},
		// Another server never gets the stored token.
		{"other server", remoteFlags{server: "https://other:1", token: "ferry_t"}, nil, credentials{"https://other:1", "ferry_t", ""}},
		{"other server by env", remoteFlags{}, map[string]string{"FERRY_SERVER": "https://other:1", "FERRY_TOKEN": "ferry_e"}, credentials{"https://other:1", "ferry_e", ""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			vars = map[string]string{"XDG_CONFIG_HOME": xdg}
			for k, v := range c.vars {
				vars[k] = v
			}
			got, err := c.rf.resolve(e)
			if err != nil || got != c.want {
				t.Errorf("resolve = %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
	vars = map[string]string{"XDG_CONFIG_HOME": xdg, "FERRY_SERVER": "https://other:1"}
	if _, err := (&remoteFlags{}).resolve(e); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Errorf("other server without a token: %v", err)
	}
}

func TestProgressOnATerminal(t *testing.T) {
	var errb, out strings.Builder
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	p := &progress{stderr: &errb, stdout: &out, tty: true, width: 100, json: true, multi: true, total: 300 << 20,
		now: func() time.Time { return now }}
	p.began = now
	p.begin("/finance/a.bin", 100<<20)
	p.set(20 << 20) // resumed from 20 MiB: left out of the rate
	now = now.Add(2 * time.Second)
	p.set(60 << 20)
	p.draw()
	frame := errb.String()
	for _, want := range []string{"\r\x1b[K/finance/a.bin", " 60%", "60.0 MiB / 100.0 MiB", "20.0 MiB/s", "ETA 0:02",
		"\n\x1b[Ktotal", "60.0 MiB / 300.0 MiB", "30.0 MiB/s", "\x1b[1A\r"} {
		if !strings.Contains(frame, want) {
			t.Errorf("frame lacks %q: %q", want, frame)
		}
	}
	errb.Reset()
	p.done(transferRecord{Op: "put", Local: "a.bin", Remote: "/finance/a.bin", Size: 100 << 20, Sent: 80 << 20, ResumedFrom: 20 << 20, Seconds: 4})
	// The bars are erased, the final bar printed, the total redrawn.
	if s := errb.String(); !strings.HasPrefix(s, "\r\x1b[K\n\x1b[K\x1b[1A") || !strings.Contains(s, "100%  100.0 MiB / 100.0 MiB  20.0 MiB/s\n") ||
		!strings.Contains(s, "total") {
		t.Errorf("after done: %q", s)
	}
	// --json: one object on stdout and nothing else there.
	if got := out.String(); !strings.HasPrefix(got, `{"op":"put","local":"a.bin","remote":"/finance/a.bin","size":104857600,`) ||
		!strings.HasSuffix(got, "}\n") || strings.Count(got, "\n") != 1 {
		t.Errorf("stdout %q", got)
	}
	errb.Reset()
	p.close()
	if s := errb.String(); s != "\r\x1b[K\n\x1b[K\x1b[1A" {
		t.Errorf("close left %q", s)
	}
}
