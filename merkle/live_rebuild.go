package merkle

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrRebuildSuperseded: the index in service was stopped, started or rebuilt
// by someone else while a Rebuild was building; the Rebuild put nothing in
// service.
var ErrRebuildSuperseded = errors.New("merkle: the index was stopped or rebuilt while the reindex was building; nothing was swapped in: run the reindex again")

// Rebuild is sys/replication/reindex: it rebuilds the index from a scan of
// the replicated keys while the index in service keeps serving (root,
// guards, merkle sync), then swaps the new one in. Only the commit holds the
// Live (Index waits meanwhile): the old index's Follower stops, both are
// brought to the WAL's last index, compared when opts.Diff, the old one
// stops, the new one's pages are written (or left to its flusher with
// opts.SkipFlush) and it goes in service with its own flusher and Follower.
//
// While it builds, the WAL behind its starting point is kept (Live's
// SafeTruncateIndex). On error, or when ctx ends, the index in service stays
// (it is put back when the commit failed after stopping it). The caller owns
// the goroutine that runs it and must end it (ctx) before Close.
func (l *Live) Rebuild(ctx context.Context, opts RebuildOptions) (*RebuildResult, error) {
	start := time.Now()
	p := opts.Progress
	if p == nil {
		p = &Progress{}
	}
	l.mu.Lock()
	gen := l.gen
	l.mu.Unlock()
	// Hold the WAL from here: entries past l0 are the build's redo.
	l.hold.Store(l.log.LastIndex() + 1)
	defer l.hold.Store(0)
	l0 := l.log.LastIndex()
	x, err := buildTracked(ctx, l, l0, p)
	if err != nil {
		return nil, fmt.Errorf("reindex: %w", err)
	}
	p.set(StageCommit, 0, 0)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gen != gen {
		return nil, ErrRebuildSuperseded
	}
	old := l.x
	if l.follower != nil {
		l.follower.Stop()
	}
	res, err := l.commitLocked(ctx, x, old, opts)
	if err != nil {
		l.x, l.follower = nil, nil
		if old != nil {
			l.installLocked(old) // its flusher again, and a Follower from where it stopped
		}
		return nil, fmt.Errorf("reindex: commit: %w", err)
	}
	l.gen++
	l.installLocked(x)
	res.Took, res.At = time.Since(start), time.Now().UTC()
	if err := writeReindexed(ctx, l.store, res.At); err != nil {
		l.logger.Warn().Err(err).Msg("cannot record the reindex time; last_reindex_epoch shows it until a restart")
	}
	l.reindexedMu.Lock()
	l.reindexed, l.reindexedRead = res.At, true
	l.reindexedMu.Unlock()
	l.logger.Info().Str("root", res.Root).Int("keys", res.Keys).Int("pages", res.Pages).Bool("skip_flush", opts.SkipFlush).
		Dur("took", res.Took).Msg("merkle index rebuilt by sys/replication/reindex")
	return res, nil
}

// commitLocked brings x (and old, for a diff) to the WAL's last index, stops
// old's flusher and writes x's pages or leaves them to its flusher. Caller
// holds mu and has stopped old's Follower.
func (l *Live) commitLocked(ctx context.Context, x, old *Index, opts RebuildOptions) (*RebuildResult, error) {
	last := l.log.LastIndex()
	if err := x.redo(ctx, l.log, last, nil, nil); err != nil {
		return nil, fmt.Errorf("wal replay: %w", err)
	}
	res := &RebuildResult{}
	if opts.Diff && old != nil {
		if err := old.redo(ctx, l.log, last, nil, nil); err != nil {
			return nil, fmt.Errorf("bring the index in service to WAL index %d for the diff: %w", last, err)
		}
		res.Diff = diffIndexes(old, x)
	}
	if old != nil {
		old.Stop() // its pages are about to be rewritten: no flush
	}
	var err error
	if opts.SkipFlush {
		res.Pages, err = x.leaveToFlusher(ctx, l.store)
	} else {
		res.Pages, _, err = x.writeAllPages(ctx, l.store)
	}
	if err != nil {
		return nil, err
	}
	root, applied := x.State()
	res.Root, res.Applied = fmt.Sprintf("%x", root), applied
	res.Keys = x.Stats().Keys
	return res, nil
}

// SafeTruncateIndex is the highest WAL index the index in service and a
// running Rebuild no longer need (0 while stopped): the WAL collector's
// merkle floor.
func (l *Live) SafeTruncateIndex() uint64 {
	x := l.Index()
	if x == nil {
		return 0
	}
	s := x.SafeTruncateIndex()
	if h := l.hold.Load(); h > 0 {
		s = min(s, h-1)
	}
	return s
}

// LastReindex is when a Rebuild last completed (zero when none was
// recorded), read from storage once.
func (l *Live) LastReindex(ctx context.Context) time.Time {
	l.reindexedMu.Lock()
	defer l.reindexedMu.Unlock()
	if !l.reindexedRead {
		l.reindexed, l.reindexedRead = readReindexed(ctx, l.store), true
	}
	return l.reindexed
}
