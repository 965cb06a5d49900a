package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// transferRecord is what --json prints for each transferred file, one JSON
// object per line on stdout.
type transferRecord struct {
	Op          string  `json:"op"` // "put" or "get"
	Local       string  `json:"local"`
	Remote      string  `json:"remote"`
	Size        int64   `json:"size"`
	SHA256      string  `json:"sha256"`
	Sent        int64   `json:"sent"`         // content bytes transferred in this run
	ResumedFrom int64   `json:"resumed_from"` // bytes that an earlier run had transferred
	Seconds     float64 `json:"seconds"`
}

// isTerminal reports whether w is a terminal, and its width.
func isTerminal(w io.Writer) (bool, int) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false, 0
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil || width < 40 {
		width = 80
	}
	return true, width
}

// progress shows transfers on stderr: on a terminal, a redrawn bar for the
// file in flight (plus one for the total when there are several files) and a
// final bar per finished file; otherwise one quiet line per finished file.
// With --json, finished files go to stdout as transferRecords instead of
// the quiet lines.
type progress struct {
	stderr, stdout io.Writer
	tty            bool
	width          int
	json           bool
	multi          bool
	total          int64 // bytes in all files, if known
	now            func() time.Time

	cur       atomic.Int64 // bytes of the current file done
	startDone atomic.Int64 // the first value set for the current file (resumed bytes), -1 before

	mu       sync.Mutex
	began    time.Time // of the whole transfer
	finished int64     // bytes of finished files
	name     string
	size     int64
	start    time.Time
	active   bool
	drawn    bool
	stop     chan struct{}
	wg       sync.WaitGroup
}

// newProgress returns a progress display for files totalling total bytes.
func newProgress(env Env, jsonOut bool, files int, total int64) *progress {
	tty, width := isTerminal(env.Stderr)
	p := &progress{stderr: env.Stderr, stdout: env.Stdout, tty: tty, width: width, json: jsonOut,
		multi: files > 1, total: total, now: time.Now}
	p.began = p.now()
	if tty {
		p.stop = make(chan struct{})
		p.wg.Add(1)
		go p.loop()
	}
	return p
}

// loop redraws about ten times a second.
func (p *progress) loop() {
	defer p.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.draw()
			p.mu.Unlock()
		}
	}
}

// begin starts showing a file of size bytes.
func (p *progress) begin(name string, size int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.name, p.size, p.start, p.active = name, size, p.now(), true
	p.cur.Store(0)
	p.startDone.Store(-1)
}

// set records that done bytes of the current file are transferred. The
// first call gives the starting point (what an earlier run did), which the
// rate leaves out. It is called from the transferring goroutine and only
// touches atomics.
func (p *progress) set(done int64) {
	p.startDone.CompareAndSwap(-1, done)
	p.cur.Store(done)
}

// done reports a finished file.
func (p *progress) done(rec transferRecord) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	p.active = false
	p.finished += rec.Size
	switch {
	case p.json:
		b, _ := json.Marshal(rec)
		p.stdout.Write(append(b, '\n'))
		if p.tty {
			fmt.Fprintln(p.stderr, barLine(p.width, displayName(rec), rec.Size, rec.Size, rateOf(rec), 0))
		}
	case p.tty:
		fmt.Fprintln(p.stderr, barLine(p.width, displayName(rec), rec.Size, rec.Size, rateOf(rec), 0))
	default:
		fmt.Fprintln(p.stderr, quietLine(rec))
	}
	p.draw()
}

// fail stops showing the current file.
func (p *progress) fail() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	p.active = false
}

// close stops the display.
func (p *progress) close() {
	if p.stop != nil {
		close(p.stop)
		p.wg.Wait()
		p.stop = nil
	}
	p.mu.Lock()
	p.clear()
	p.mu.Unlock()
}

func displayName(rec transferRecord) string {
	if rec.Op == "get" {
		return rec.Local
	}
	return rec.Remote
}

func rateOf(rec transferRecord) float64 {
	if rec.Seconds <= 0 {
		return 0
	}
	return float64(rec.Sent) / rec.Seconds
}

// clear erases what draw drew (p.mu held).
func (p *progress) clear() {
	if !p.tty || !p.drawn {
		return
	}
	io.WriteString(p.stderr, "\r\x1b[K")
	if p.multi {
		io.WriteString(p.stderr, "\n\x1b[K\x1b[1A")
	}
	p.drawn = false
}

// draw redraws the bars, leaving the cursor at the start of the first (p.mu
// held).
func (p *progress) draw() {
	if !p.tty {
		return
	}
	now := p.now()
	var b strings.Builder
	b.WriteString("\r\x1b[K")
	cur := p.cur.Load()
	if p.active {
		el := now.Sub(p.start).Seconds()
		rate := 0.0
		if from := p.startDone.Load(); el > 0.2 && from >= 0 {
			rate = float64(cur-from) / el
		}
		b.WriteString(barLine(p.width, p.name, cur, p.size, rate, eta(p.size-cur, rate)))
	}
	if p.multi {
		done := p.finished
		if p.active {
			done += cur
		}
		el := now.Sub(p.began).Seconds()
		rate := 0.0
		if el > 0.2 {
			rate = float64(done) / el
		}
		b.WriteString("\n\x1b[K")
		b.WriteString(barLine(p.width, "total", done, p.total, rate, eta(p.total-done, rate)))
		b.WriteString("\x1b[1A\r")
	} else {
		b.WriteString("\r")
	}
	io.WriteString(p.stderr, b.String())
	p.drawn = true
}

// eta is how long left bytes take at rate bytes/s (0 if unknown).
func eta(left int64, rate float64) time.Duration {
	if rate <= 0 || left <= 0 {
		return 0
	}
	return time.Duration(float64(left) / rate * float64(time.Second))
}

// barLine formats one progress line of at most width columns:
// "NAME [=====>    ]  45%  1.2 GiB / 2.5 GiB  85.0 MiB/s  ETA 0:16". On a
// narrow terminal it drops the byte counts, then shortens and drops the bar.
func barLine(width int, name string, done, size int64, rate float64, left time.Duration) string {
	pct := 100.0
	if size > 0 {
		pct = 100 * float64(done) / float64(size)
	}
	tail := "  " + formatRate(rate)
	if done < size {
		tail += "  ETA " + formatETA(left)
	}
	long := fmt.Sprintf(" %3.0f%%  %s / %s", pct, formatBytes(done), formatBytes(size)) + tail
	short := fmt.Sprintf(" %3.0f%%", pct) + tail
	const minName = 8
	for _, f := range []struct {
		right string
		barW  int
	}{{long, 20}, {long, 10}, {short, 10}, {short, 0}} {
		nameW := width - len(f.right) - f.barW - 3
		if f.barW == 0 {
			nameW = width - len(f.right)
		}
		if nameW < minName {
			continue
		}
		if f.barW == 0 {
			return fitName(name, nameW) + f.right
		}
		return fitName(name, nameW) + " " + bar(f.barW, done, size) + f.right
	}
	return fitName(name, minName) + short
}

// fitName pads or shortens name to w columns, keeping its end.
func fitName(name string, w int) string {
	r := []rune(name)
	if len(r) > w {
		return "…" + string(r[len(r)-w+1:])
	}
	return name + strings.Repeat(" ", w-len(r))
}

// bar draws [=====>    ] with w cells inside the brackets.
func bar(w int, done, size int64) string {
	fill := w
	if size > 0 {
		fill = int(float64(w) * float64(min(done, size)) / float64(size))
	}
	s := strings.Repeat("=", fill)
	if fill < w {
		s += ">" + strings.Repeat(" ", w-fill-1)
	}
	return "[" + s + "]"
}

// formatBytes formats n bytes with binary units: "512 B", "1.5 KiB", "1.0 GiB".
func formatBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		f /= 1024
		if f < 1024 || u == "PiB" {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return ""
}

// formatRate formats bytes per second.
func formatRate(r float64) string {
	if r <= 0 {
		return "-- B/s"
	}
	return formatBytes(int64(r)) + "/s"
}

// formatETA formats a duration as M:SS or H:MM:SS ("-:--" if unknown).
func formatETA(d time.Duration) string {
	if d <= 0 {
		return "-:--"
	}
	s := int64(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// quietLine is the one line per finished file when stderr is no terminal.
func quietLine(rec transferRecord) string {
	arrow := rec.Local + " -> " + rec.Remote
	if rec.Op == "get" {
		arrow = rec.Remote + " -> " + rec.Local
	}
	s := fmt.Sprintf("%s %s (%s in %.1fs", rec.Op, arrow, formatBytes(rec.Size), rec.Seconds)
	if rec.ResumedFrom > 0 {
		s += ", resumed at " + formatBytes(rec.ResumedFrom)
	}
	return s + ")"
}
