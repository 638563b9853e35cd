package secondary

import (
	"context"
	"slices"

	"github.com/cofferhq/coffer/internal/backoff"
	"github.com/cofferhq/coffer/merkle"
)

// The loop detector's effects: the driver feeds the pure Loop (loop.go) and
// carries out its decisions (log, back off).

// loopWait counts a resync starting and takes the back-off the detector
// decides; false when ctx ended while waiting.
func (s *Secondary) loopWait(ctx context.Context) bool {
	s.mu.Lock()
	d := s.loop.SyncStarted(s.cfg.Now())
	st := s.loop.Status()
	s.mu.Unlock()
	if d.Report {
		s.log.Warn().Int("resyncs", st.Consecutive).Time("since", st.Since).Strs("keys_that_kept_differing", st.KeysThatKeptDiffering).
			Msg("merkle sync loop: this secondary resyncs again and again and streaming never settles (a guard never matches after a sync): " +
				"the primary's merkle index most likely disagrees with its data. On the primary run sys/replication/merkle-check, then " +
				"sys/replication/reindex (diff=true names the keys); then sys/replication/recover here. Until then this secondary backs off between resyncs")
	}
	if d.Wait <= 0 {
		return true
	}
	s.log.Warn().Dur("backoff", d.Wait).Time("until", st.BackoffUntil).Int("resyncs", st.Consecutive).
		Msg("merkle sync loop: backing off before the next resync (sys/replication/recover retries at once)")
	return backoff.Sleep(ctx, d.Wait)
}

// loopDiffered records the keys a diff found.
func (s *Secondary) loopDiffered(res *merkle.DiffResult) {
	keys := slices.Concat(res.Added, res.Changed, res.Deleted)
	s.mu.Lock()
	s.loop.Differed(keys)
	s.mu.Unlock()
}

// loopApplied ends a run of resyncs when an applied batch shows streaming
// works (settles); a guarded batch the machine has checked settles when its
// guard matches (guardMatched).
func (s *Secondary) loopApplied(ev Event, acts []Action) {
	ba, ok := ev.(BatchApplied)
	if !ok {
		return
	}
	checked := slices.ContainsFunc(acts, func(a Action) bool { _, ok := a.(CheckGuard); return ok })
	s.mu.Lock()
	gf := s.m.GuardFrom()
	s.mu.Unlock()
	if settles(ba, checked, s.cfg.Merkle != nil, gf) {
		s.settle()
	}
}

// settle ends a run of resyncs, logging the end of a loop.
func (s *Secondary) settle() {
	s.mu.Lock()
	n := s.loop.Settled()
	s.mu.Unlock()
	if n > 0 {
		s.log.Info().Int("resyncs", n).Msg("merkle sync loop over: streaming settled")
	}
}

// SyncLoop is the merkle-sync loop detector's view for status.
func (s *Secondary) SyncLoop() LoopStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loop.Status()
}
