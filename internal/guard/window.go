package guard

// buckets is the number of per-minute buckets a tracker keeps: the longest
// window a policy may set, in minutes.
const buckets = 60

// maxSeen bounds the distinct-file set of one tracker. Past it (only
// possible in monitor mode or for an organisation's tracker), files are no
// longer de-duplicated, so the count can only err upwards.
const maxSeen = 50000

// tracker counts the distinct files and the bytes one key (a principal, an
// address, an organisation) read over a sliding window of whole minutes: a
// ring of per-minute buckets, plus the minute each file was last counted in.
// Adding a read and reading the totals cost O(window), at most 60 steps,
// whatever the number of reads.
type tracker struct {
	stamp   [buckets]int64 // the minute each bucket holds
	files   [buckets]int32
	bytes   [buckets]int64
	seen    map[string]int64 // file id → minute it is counted in
	purgeAt int              // purge seen when it grows past this
	last    int64            // minute of the last read
	alerted int64            // minute of the last alert raised for it (monitor mode, organisation)
}

func newTracker() *tracker {
	return &tracker{seen: make(map[string]int64), purgeAt: 1024, alerted: -1 << 62}
}

// bucket returns the index of minute's bucket, emptying it if it held an
// older minute.
func (t *tracker) bucket(minute int64) int {
	i := int(minute % buckets)
	if t.stamp[i] != minute {
		t.stamp[i], t.files[i], t.bytes[i] = minute, 0, 0
	}
	return i
}

// add records a read of n bytes of file at minute and returns the distinct
// files and bytes read in the window of win minutes ending at minute.
func (t *tracker) add(minute, win int64, file string, n int64) (files int, bytes int64) {
	i := t.bucket(minute)
	t.last = minute
	t.bytes[i] += n
	if prev, ok := t.seen[file]; ok && prev > minute-win && prev <= minute {
		if prev != minute {
			// Counted in an earlier minute of the window: move it here so
			// that it stays counted as long as it is read.
			if j := int(prev % buckets); t.stamp[j] == prev && t.files[j] > 0 {
				t.files[j]--
			}
			t.files[i]++
			t.seen[file] = minute
		}
	} else {
		t.files[i]++
		if ok || len(t.seen) < maxSeen {
			t.seen[file] = minute
		}
		if len(t.seen) > t.purgeAt {
			t.purge(minute, win)
		}
	}
	return t.totals(minute, win)
}

// totals sums the buckets of the window of win minutes ending at minute.
func (t *tracker) totals(minute, win int64) (files int, bytes int64) {
	for m := minute - win + 1; m <= minute; m++ {
		j := int(((m % buckets) + buckets) % buckets)
		if t.stamp[j] == m {
			files += int(t.files[j])
			bytes += t.bytes[j]
		}
	}
	return files, bytes
}

// purge forgets files counted before the window; it runs when the set has
// doubled since the last purge, so its cost is amortised over the reads.
func (t *tracker) purge(minute, win int64) {
	for f, m := range t.seen {
		if m <= minute-win {
			delete(t.seen, f)
		}
	}
	t.purgeAt = max(1024, 2*len(t.seen))
}

// reset forgets everything counted.
func (t *tracker) reset() {
	*t = *newTracker()
}
