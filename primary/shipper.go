package primary

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cofferhq/coffer/internal/backoff"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/wal"
)

// Shipper limits.
const (
	// maxBatchEntries is the most WAL entries in one batch.
	maxBatchEntries = 512
	// maxBatchBytes bounds the replicated ops (keys and values) of one batch.
	maxBatchBytes = 1 << 20
	// persistEvery and persistBatches bound how stale the stored shipped index
	// is; re-shipping after a crash is harmless (msg id dedup, idempotent apply).
	persistEvery   = time.Second
	persistBatches = 64
	// retryMin and retryMax bound the pause between publish attempts.
	retryMin = 50 * time.Millisecond
	retryMax = 2 * time.Second
	// publishTimeout bounds one publish attempt.
	publishTimeout = 5 * time.Second
	// guardWait bounds how long the shipper waits for the merkle index to
	// apply a batch's first entry before shipping the batch without a guard.
	guardWait = 2 * time.Second
)

// ship is the shipper goroutine: committed WAL entries after the shipped index
// -> batches -> JetStream, in order, one batch in flight. It never blocks a
// writer: entries wait in the WAL's storage while NATS is down.
func (p *Primary) ship(ctx context.Context) {
	shipped := p.shipped.Load()
	persisted := shipped
	lastPersist := time.Now()
	batches := 0
	persist := func() {
		if shipped == persisted {
			return
		}
		if err := saveShipped(context.WithoutCancel(ctx), p.cfg.State, shipped); err != nil {
			p.log.Warn().Err(err).Uint64("shipped", shipped).Msg("cannot store the shipped index; will retry (a restart re-ships, harmlessly)")
			return
		}
		persisted, lastPersist, batches = shipped, time.Now(), 0
	}
	defer persist()

	for {
		if shipped == p.cfg.WAL.LastIndex() {
			persist()
		}
		if err := p.cfg.WAL.WaitIndex(ctx, shipped+1); err != nil {
			if errors.Is(err, wal.ErrClosed) {
				p.log.Warn().Msg("the WAL closed under the shipper; shipping stops until the primary is reopened")
			}
			return
		}
		// Cut the batch where the merkle index stands, so that its root is the
		// batch's guard: the index follows the WAL closely, so (almost) every
		// batch carries one.
		at, root := p.indexPoint(ctx, shipped+1)
		limit := maxBatchEntries
		if root != nil && at-shipped < uint64(limit) {
			limit = int(at - shipped)
		}
		entries, err := p.cfg.WAL.Read(ctx, shipped, limit)
		if errors.Is(err, wal.ErrTruncated) {
			first := p.cfg.WAL.FirstIndex()
			p.log.Warn().Uint64("shipped", shipped).Uint64("first_stored", first).
				Msg("WAL entries were truncated before they were shipped; skipping them: secondaries will detect the gap and resync")
			shipped = first - 1
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.log.Error().Err(err).Uint64("after", shipped).Msg("read WAL for shipping; retrying")
			if !backoff.Sleep(ctx, retryMax) {
				return
			}
			continue
		}
		if len(entries) == 0 {
			continue
		}
		b := p.makeBatch(entries)
		if root != nil && b.Last == at {
			b.Guard = root
		}
		if !p.publish(ctx, b) {
			return
		}
		shipped = b.Last
		p.shipped.Store(shipped)
		batches++
		if batches >= persistBatches || time.Since(lastPersist) >= persistEvery {
			persist()
		}
	}
}

// makeBatch packs entries (consecutive, after the shipped index) into one
// batch, keeping only replicated ops and stopping at maxBatchBytes (one entry
// at least). An entry without a replicated op still advances the range.
func (p *Primary) makeBatch(entries []*wal.Entry) *replication.Batch {
	b := &replication.Batch{ClusterID: p.cfg.ClusterID, First: entries[0].Index}
	size := 0
	for _, e := range entries {
		var ops []wal.Op
		n := 0
		for _, op := range e.Ops {
			if op.Class == wal.Replicated {
				ops = append(ops, op)
				n += len(op.Key) + len(op.Value)
			}
		}
		if size > 0 && size+n > maxBatchBytes {
			break
		}
		size += n
		b.Last = e.Index
		if len(ops) > 0 {
			b.Entries = append(b.Entries, &wal.Entry{Index: e.Index, Time: e.Time, Ops: ops})
		}
	}
	return b
}

// indexPoint returns where the merkle index stands and its root there, once
// it has applied at least first; (0, nil) when there is no index or it did not
// reach first within guardWait. After one such timeout it does not wait again
// until the index moves, so a stalled index (its follower stopped) does not
// slow shipping down.
func (p *Primary) indexPoint(ctx context.Context, first uint64) (uint64, []byte) {
	if p.cfg.Merkle == nil {
		return 0, nil
	}
	x := p.cfg.Merkle()
	if x == nil {
		return 0, nil
	}
	if x != p.stalledIndex || x.Applied() != p.stalledAt {
		wctx, cancel := context.WithTimeout(ctx, guardWait)
		err := x.WaitApplied(wctx, first)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				p.stalledIndex, p.stalledAt = x, x.Applied()
				p.log.Warn().Uint64("first", first).Uint64("merkle_applied", p.stalledAt).
					Msg("the merkle index did not reach the batch's first WAL entry in time; shipping without a guard")
			}
			return 0, nil
		}
	}
	root, applied := x.State()
	if applied < first {
		return 0, nil
	}
	p.stalledIndex = nil
	return applied, root
}

// publish seals and publishes b until JetStream acknowledges it; false when ctx
// ended first. It seals again on every attempt: the epoch may have moved.
func (p *Primary) publish(ctx context.Context, b *replication.Batch) bool {
	msgID := fmt.Sprintf("%s-%d-%d", p.cfg.ClusterID, b.First, b.Last)
	bo := backoff.Backoff{Min: retryMin, Max: retryMax}
	var failedSince time.Time
	for {
		err := p.publishOnce(ctx, b, msgID)
		if err == nil {
			if !failedSince.IsZero() {
				p.log.Info().Dur("outage", time.Since(failedSince)).Uint64("first", b.First).Msg("WAL shipping resumed")
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if failedSince.IsZero() {
			failedSince = time.Now()
			p.log.Warn().Err(err).Uint64("first", b.First).Uint64("last", b.Last).
				Msg("cannot publish WAL batch; retrying with backoff, writes continue and wait in the WAL (check NATS)")
		}
		if !bo.Wait(ctx) {
			return false
		}
	}
}

func (p *Primary) publishOnce(ctx context.Context, b *replication.Batch, msgID string) error {
	epoch, key, signer := p.currentKey()
	b.Epoch = epoch
	msg, err := replication.SealBatch(b, key, signer)
	if err != nil {
		return fmt.Errorf("seal batch %d-%d: %w", b.First, b.Last, err)
	}
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	_, err = p.cfg.Bus.Publish(pctx, p.subj, msg, msgID, nil)
	return err
}
