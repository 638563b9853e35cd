package secondary

import (
	"bytes"
	"context"
	"time"

	"github.com/cofferhq/coffer/replication"
)

// guardCheck is one guard the checker compares: the primary's root after
// the batch ending at last, against the local index's root at the local
// WAL index of that batch's write (merkle.Index.RootAt).
type guardCheck struct {
	last  uint64
	gen   uint64 // the set's generation when the batch was applied
	guard []byte
	local uint64
	root  <-chan []byte
}

// queueGuard hands b's guard to the checker (the machine asked: CheckGuard)
// and returns at once: the applier goes on with the next batches while the
// local merkle index catches up with this one, and RootAt keeps the root
// of exactly this batch's write for the comparison. local is the local WAL
// index of b's write (0 when it logged nothing: then everything written so
// far). Without an index now, or with the queue full, the guard is not
// compared.
func (s *Secondary) queueGuard(b *replication.Batch, local uint64) {
	x := s.index()
	if x == nil {
		return
	}
	if local == 0 {
		local = s.cfg.WAL.LastIndex()
	}
	c := guardCheck{last: b.Last, gen: s.generation(), guard: b.Guard, local: local, root: x.RootAt(local)}
	select {
	case s.guards <- c:
	default:
		s.log.Debug().Uint64("last", b.Last).Msg("the guard checker is behind; this batch's guard is not compared")
	}
}

// checkGuards is the guard checker's goroutine: it compares each queued
// guard once the local index has applied its batch, at most guardWait
// after it comes to it. A root equal to the guard settles the merkle-sync
// loop detector; a different one is a GuardMismatch (the machine starts a
// sync unless one runs, or the batch predates the last sync).
func (s *Secondary) checkGuards(ctx context.Context) {
	t := time.NewTimer(guardWait)
	defer t.Stop()
	for {
		var c guardCheck
		select {
		case <-ctx.Done():
			return
		case c = <-s.guards:
		}
		t.Reset(guardWait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.log.Warn().Uint64("last", c.last).Uint64("local_index", c.local).
				Msg("the local merkle index did not reach the applied batch in time; its guard is not compared")
		case root, ok := <-c.root:
			switch {
			case s.generation() != c.gen:
				// A batch of a generation the set has left: its indexes
				// mean nothing to the machine now.
			case !ok:
				// The index passed it without stopping (a rebuild): nothing
				// to compare with.
			case bytes.Equal(root, c.guard):
				s.settle()
			default:
				s.log.Warn().Uint64("last", c.last).Hex("guard", c.guard).Hex("local_root", root).
					Msg("merkle guard mismatch: this cluster's replicated keys differ from the primary's at the batch's last index; running a merkle sync")
				s.execAside(ctx, s.step(GuardMismatch{Last: c.last}))
			}
		}
	}
}
