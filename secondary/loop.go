package secondary

import (
	"slices"
	"time"

	"github.com/cofferhq/coffer/internal/backoff"
)

// The merkle-sync loop detector's defaults (LoopConfig).
const (
	// DefaultLoopThreshold is how many resyncs in a row, without streaming
	// settling in between, make a loop.
	DefaultLoopThreshold = 3
	// DefaultLoopBackoffMin and DefaultLoopBackoffMax bound the pause before
	// each resync past the threshold: 30 s, doubling, at most 10 minutes.
	DefaultLoopBackoffMin = 30 * time.Second
	DefaultLoopBackoffMax = 10 * time.Minute
	// LoopSampleKeys bounds the keys a loop's status names.
	LoopSampleKeys = 10
	// loopTrackKeys bounds the keys of one diff the detector remembers to
	// find those that differ again in the next.
	loopTrackKeys = 1024
)

// LoopConfig configures the merkle-sync loop detector (Config.Loop); zero
// fields take the defaults.
type LoopConfig struct {
	Threshold              int
	BackoffMin, BackoffMax time.Duration
}

func (c *LoopConfig) fill() {
	if c.Threshold <= 0 {
		c.Threshold = DefaultLoopThreshold
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = DefaultLoopBackoffMin
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = max(DefaultLoopBackoffMax, c.BackoffMin)
	}
}

// Loop counts the resyncs a secondary starts before streaming has settled
// since the previous one (a guard matched, or a batch applied that no guard
// is compared for), and decides when to report a loop and how long to back
// off before the next resync. It does no I/O and reads no clock: the driver
// passes the time. Not safe for concurrent use (the driver holds its lock).
//
// Rules:
//   - Every resync counts (SyncStarted); Settled ends the run.
//   - The resync that makes the run reach the threshold reports the loop,
//     once per run.
//   - Each resync past the threshold waits first: BackoffMin, doubling per
//     resync, at most BackoffMax.
//   - The keys that kept differing are those a diff found that the previous
//     diff of the run found too (at most LoopSampleKeys, sorted).
type Loop struct {
	cfg         LoopConfig
	consecutive int
	since       time.Time
	prev        map[string]struct{} // the last diff's keys (at most loopTrackKeys)
	kept        []string
	until       time.Time
	reported    bool
}

// NewLoop returns a detector with cfg (defaults filled).
func NewLoop(cfg LoopConfig) *Loop {
	cfg.fill()
	return &Loop{cfg: cfg}
}

// LoopDecision is what the driver does before a resync's first attempt.
type LoopDecision struct {
	// Wait is the back-off to take first (0: none).
	Wait time.Duration
	// Report: the run just reached the threshold: log it, once.
	Report bool
}

// SyncStarted counts a resync starting at now and decides.
func (l *Loop) SyncStarted(now time.Time) LoopDecision {
	l.consecutive++
	if l.consecutive == 1 {
		l.since = now
	}
	var d LoopDecision
	if l.consecutive >= l.cfg.Threshold && !l.reported {
		l.reported, d.Report = true, true
	}
	if over := l.consecutive - l.cfg.Threshold; over > 0 {
		b := backoff.Backoff{Min: l.cfg.BackoffMin, Max: l.cfg.BackoffMax}
		d.Wait = b.Delay(over)
		l.until = now.Add(d.Wait)
	}
	return d
}

// Differed records the keys a resync's diff found (added, changed and
// deleted).
func (l *Loop) Differed(keys []string) {
	var kept []string
	next := make(map[string]struct{}, min(len(keys), loopTrackKeys))
	for _, k := range keys {
		if _, ok := l.prev[k]; ok && len(kept) < LoopSampleKeys {
			kept = append(kept, k)
		}
		if len(next) < loopTrackKeys {
			next[k] = struct{}{}
		}
	}
	slices.Sort(kept)
	l.prev, l.kept = next, kept
}

// Settled ends the run: streaming works. It returns how many resyncs the
// run counted when it was a loop (reported), else 0.
func (l *Loop) Settled() int {
	n := 0
	if l.reported {
		n = l.consecutive
	}
	*l = Loop{cfg: l.cfg}
	return n
}

// LoopStatus is the detector's view for status (merkle_sync_loop).
type LoopStatus struct {
	// Consecutive counts the resyncs since streaming last settled.
	Consecutive int
	// Threshold is the configured threshold; Looping is Consecutive >= it.
	Threshold int
	Looping   bool
	// KeysThatKeptDiffering names keys two diffs in a row found (never values).
	KeysThatKeptDiffering []string
	// Since is when the run's first resync started.
	Since time.Time
	// BackoffUntil is when the last back-off ends (zero: none taken).
	BackoffUntil time.Time
}

// Status returns the detector's view.
func (l *Loop) Status() LoopStatus {
	return LoopStatus{
		Consecutive: l.consecutive, Threshold: l.cfg.Threshold, Looping: l.consecutive >= l.cfg.Threshold,
		KeysThatKeptDiffering: slices.Clone(l.kept), Since: l.since, BackoffUntil: l.until,
	}
}

// settles reports whether an applied batch shows streaming works, ending a
// run of resyncs. With a merkle index a batch whose guard is compared
// settles only when it matches (the driver reports that); one without a guard
// settles when it ends at or past the last sync's GuardFrom. Without an index
// (no guard is ever compared) any batch at or past GuardFrom does. A batch
// before GuardFrom proves nothing: its guard would predate what the sync
// wrote.
func settles(ev BatchApplied, checked, merkle bool, guardFrom uint64) bool {
	if checked || ev.Last < guardFrom {
		return false
	}
	return !merkle || !ev.Guard
}
