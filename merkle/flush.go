package merkle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/telemetry"
)

// flushChunk is the most pages one storage transaction writes: the
// flusher's round (Options.FlushPages, 2048 by default), so that the last
// flush as a server stops, which writes every page still dirty, holds no
// more at once than a round while catching up. At 4096 that last flush took
// a secondary that had caught up with 1,000,000 entries from 233 MB of heap
// at a collection's start to 288 (docs/performance.md).
const flushChunk = 2048

// chunkOf is flushChunk, or fewer when store caps the operations of a
// transaction (storage.OpLimiter: Consul): a chunk's pages and its checkpoint
// fit in one transaction.
func chunkOf(store storage.Transactional) uint32 {
	if n := storage.MaxOps(store); n > 1 && n-1 < flushChunk {
		return uint32(n - 1)
	}
	return flushChunk
}

// FlushStats reports one flush.
type FlushStats struct {
	// Pages is the number of pages written or deleted.
	Pages int
	// Failed is the number of dirty pages that could not be written (their
	// keys could not be found: a stored page is corrupt) and stay dirty.
	Failed int
	// RedoPoint is the durable redo point after the flush.
	RedoPoint uint64
	// Dirty is the number of dirty pages left.
	Dirty int
	// Duration is the time the flush took.
	Duration time.Duration
	// Err is the flush's error, if any (the flusher goroutine reports it here).
	Err error
}

// snap is a dirty bucket taken for a flush.
type snap struct {
	b       uint32
	lsn     uint64
	recLSN  uint64
	items   []item
	pending []string
}

// Flush writes up to max dirty pages (max <= 0: every page dirty when it
// starts), oldest recLSN first, and the checkpoint, in transactions of at
// most flushChunk pages. Each transaction holds its pages and the checkpoint whose
// redo point accounts for every page still dirty, so a crash at any moment
// leaves a checkpoint and pages that Recover can use.
func (x *Index) Flush(ctx context.Context, max int) (FlushStats, error) {
	start := time.Now()
	defer func() { telemetry.MeasureSince(telemetry.NameFlushDirty, start) }()
	x.flushMu.Lock()
	defer x.flushMu.Unlock()
	if max <= 0 {
		x.mu.Lock()
		max = len(x.dirty)
		x.mu.Unlock()
	}
	var st FlushStats
	var errs []error
	for {
		n := min(max-st.Pages-st.Failed, int(chunkOf(x.store)))
		written, failed, err := x.flushChunkLocked(ctx, max0(n), false)
		st.Pages += written
		st.Failed += failed
		if err != nil {
			errs = append(errs, err)
			if written == 0 {
				break
			}
		}
		if written+failed == 0 || st.Pages+st.Failed >= max {
			break
		}
	}
	x.mu.Lock()
	st.Dirty = len(x.dirty)
	x.mu.Unlock()
	x.cpMu.Lock()
	st.RedoPoint = x.checkpoint
	x.cpMu.Unlock()
	st.Duration = time.Since(start)
	st.Err = errors.Join(errs...)
	telemetry.SetGauge(telemetry.NameFlushDirtyNumPages, float64(st.Pages))
	return st, st.Err
}

func max0(n int) int { return max(n, 0) }

// flushChunkLocked writes up to n dirty pages and the checkpoint in one
// transaction. fresh means every item's key is pending (a reindex): stored
// pages are not read. Caller holds flushMu.
func (x *Index) flushChunkLocked(ctx context.Context, n int, fresh bool) (written, failed int, err error) {
	x.mu.Lock()
	ids, redo := x.oldestDirtyLocked(n)
	snaps := make([]snap, len(ids))
	for i, b := range ids {
		bk := &x.buckets[b]
		snaps[i] = snap{b: b, lsn: bk.pageLSN, recLSN: bk.recLSN, items: slices.Clone(bk.items), pending: bk.pending}
		bk.pending, bk.recLSN = nil, 0
		delete(x.dirty, b)
	}
	rebuilt := x.rebuildLSN
	x.mu.Unlock()

	x.cpMu.Lock()
	same := redo == x.checkpoint
	x.cpMu.Unlock()
	if len(snaps) == 0 && same {
		return 0, 0, nil
	}
	ops := make([]*storage.TxnOp, 0, len(snaps)+1)
	var bad []snap
	var errs []error
	for _, s := range snaps {
		op, err := x.pageOp(ctx, &s, fresh)
		if err != nil {
			bad = append(bad, s)
			redo = min(redo, s.recLSN)
			errs = append(errs, err)
			continue
		}
		ops = append(ops, op)
	}
	ops = append(ops, &storage.TxnOp{Operation: storage.PutOperation,
		Entry: &storage.Entry{Key: checkpointKey, Value: encodeCheckpoint(redo)}})
	// The last page a SkipFlush rebuild left dirty is written: its marker goes.
	unmark := rebuilt > 0 && redo > rebuilt
	if unmark {
		ops = append(ops, &storage.TxnOp{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: rebuildMarkerKey}})
	}
	if err := x.store.Transaction(ctx, ops); err != nil {
		x.restore(snaps)
		return 0, len(snaps), fmt.Errorf("merkle: flush %d pages: %w", len(snaps), err)
	}
	if unmark {
		x.mu.Lock()
		x.rebuildLSN = 0
		x.mu.Unlock()
	}
	if len(bad) > 0 {
		x.restore(bad)
		x.logger.Error().Err(errors.Join(errs...)).Int("pages", len(bad)).
			Msg("merkle pages cannot be flushed: their stored copy is damaged; run sys/replication/reindex")
	}
	x.cpMu.Lock()
	x.checkpoint = redo
	x.cpMu.Unlock()
	return len(snaps) - len(bad), len(bad), errors.Join(errs...)
}

// oldestDirtyLocked returns the n dirty buckets of oldest recLSN (all when
// they fit), in no order (one transaction writes them), and the redo point
// once they are written: the oldest recLSN of the dirty buckets left, else
// the index's next LSN. A catching-up secondary keeps tens of thousands
// dirty: sorting them all under mu, five times a second, was 2.5% of its
// CPU (BenchmarkOldestDirty). Caller holds mu.
func (x *Index) oldestDirtyLocked(n int) ([]uint32, uint64) {
	redo := x.applied + 1
	if len(x.dirty) <= n {
		ids := make([]uint32, 0, len(x.dirty))
		for b := range x.dirty {
			ids = append(ids, b)
		}
		return ids, redo
	}
	// The n oldest in a max-heap (the newest of them on top): each
	// bucket is compared with the top, and most are newer than it.
	h := make(dirtyHeap, 0, n)
	rest := redo
	for b := range x.dirty {
		d := dirtyBucket{x.buckets[b].recLSN, b}
		switch {
		case len(h) < n:
			h.push(d)
		case n > 0 && d.before(h[0]):
			rest = min(rest, h[0].recLSN)
			h[0] = d
			h.down(0)
		default:
			rest = min(rest, d.recLSN)
		}
	}
	ids := make([]uint32, len(h))
	for i, d := range h {
		ids[i] = d.b
	}
	return ids, rest
}

// dirtyBucket is a dirty bucket and its recLSN.
type dirtyBucket struct {
	recLSN uint64
	b      uint32
}

// before orders dirty buckets oldest first: recLSN, then bucket.
func (d dirtyBucket) before(e dirtyBucket) bool {
	return d.recLSN < e.recLSN || (d.recLSN == e.recLSN && d.b < e.b)
}

// dirtyHeap is a max-heap of dirty buckets: the newest on top.
type dirtyHeap []dirtyBucket

func (h *dirtyHeap) push(d dirtyBucket) {
	*h = append(*h, d)
	for i := len(*h) - 1; i > 0; {
		p := (i - 1) / 2
		if !(*h)[p].before((*h)[i]) {
			return
		}
		(*h)[p], (*h)[i] = (*h)[i], (*h)[p]
		i = p
	}
}

func (h dirtyHeap) down(i int) {
	for {
		l, big := 2*i+1, i
		if l < len(h) && h[big].before(h[l]) {
			big = l
		}
		if r := l + 1; r < len(h) && h[big].before(h[r]) {
			big = r
		}
		if big == i {
			return
		}
		h[i], h[big] = h[big], h[i]
		i = big
	}
}

// pageOp builds the storage op writing one snapshot's page: the keys come from
// the bucket's pending keys, the others from its stored page.
func (x *Index) pageOp(ctx context.Context, s *snap, fresh bool) (*storage.TxnOp, error) {
	key := pageKey(s.b)
	if len(s.items) == 0 {
		return &storage.TxnOp{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: key}}, nil
	}
	keys, err := x.bucketKeys(ctx, s.b, s.items, s.pending, fresh)
	if err != nil {
		return nil, err
	}
	return &storage.TxnOp{Operation: storage.PutOperation,
		Entry: &storage.Entry{Key: key, Value: encodePage(s.b, s.lsn, s.items, keys)}}, nil
}

// bucketKeys finds the key of every item: among pending, else on the stored
// page (unless fresh). Caller holds flushMu, so the stored page is the one the
// last flush wrote.
func (x *Index) bucketKeys(ctx context.Context, b uint32, items []item, pending []string, fresh bool) ([]string, error) {
	keys := make([]string, len(items))
	missing := len(items)
	fill := func(k string, fp uint64) {
		if i, ok := (&bucket{items: items}).find(fp); ok && keys[i] == "" {
			keys[i] = k
			missing--
		}
	}
	for _, k := range pending {
		_, fp := keyHash(k)
		fill(k, fp)
	}
	if missing > 0 && !fresh {
		e, err := x.store.Get(ctx, pageKey(b))
		if err != nil {
			return nil, fmt.Errorf("merkle: read page %04x: %w", b, err)
		}
		if e != nil {
			p, err := decodePage(e.Value, b, true)
			if err != nil {
				return nil, fmt.Errorf("merkle: read page %04x: %w", b, err)
			}
			for i, k := range p.keys {
				fill(k, p.items[i].fp)
			}
		}
	}
	if missing > 0 {
		return nil, fmt.Errorf("merkle: page %04x: %w: the keys of %d items are neither pending nor on the stored page", b, ErrReindexRequired, missing)
	}
	return keys, nil
}

// restore puts snapshots whose flush failed back into the dirty set.
func (x *Index) restore(snaps []snap) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, s := range snaps {
		bk := &x.buckets[s.b]
		for _, k := range s.pending {
			bk.addPending(k)
		}
		if bk.recLSN == 0 || s.recLSN < bk.recLSN {
			bk.recLSN = s.recLSN
		}
		x.dirty[s.b] = struct{}{}
	}
}

// Start starts the flusher goroutine: every FlushInterval it flushes at most
// FlushPages dirty pages. Idempotent; Stop stops it.
func (x *Index) Start() {
	x.runMu.Lock()
	defer x.runMu.Unlock()
	if x.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	x.cancel = cancel
	x.done = make(chan struct{})
	go x.runFlusher(ctx, x.done)
}

// Stop stops the flusher and waits for it. It does not flush: Close does.
func (x *Index) Stop() {
	x.runMu.Lock()
	defer x.runMu.Unlock()
	if x.cancel == nil {
		return
	}
	x.cancel()
	<-x.done
	x.cancel, x.done = nil, nil
}

// Close stops the flusher and flushes every dirty page, so the next Recover
// redoes nothing.
func (x *Index) Close(ctx context.Context) error {
	x.Stop()
	_, err := x.Flush(ctx, 0)
	return err
}

func (x *Index) runFlusher(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(x.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := x.Flush(ctx, x.opts.FlushPages)
		if err != nil && ctx.Err() == nil {
			x.logger.Warn().Err(err).Int("pages", st.Pages).Msg("merkle flush failed; the pages stay dirty and are retried")
		}
		if x.opts.OnFlush != nil {
			x.opts.OnFlush(st)
		}
	}
}
