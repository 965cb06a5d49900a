package guard

import (
	"context"
	"time"

	"ferry.dev/ferry/internal/ferry"
)

// FlushPeaks stores the peaks that rose (what Run does every minute).
func FlushPeaks(g *Guard, ctx context.Context) { g.flushPeaks(ctx) }

// WindowFiles returns the distinct files p read in the default window now.
func WindowFiles(g *Guard, p *ferry.Principal) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	t := g.trackers[Subject(p)]
	if t == nil {
		return 0
	}
	n, _ := t.totals(g.cfg.Now().Unix()/60, int64(DefaultWindow/time.Minute))
	return n
}
