package primary

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/internal/backoff"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/telemetry"
	"github.com/cofferhq/coffer/wal"
)

// Shipper limits.
const (
	// maxBatchEntries is the most WAL entries in one batch.
	maxBatchEntries = 512
	// maxBatchBytes bounds the replicated ops (keys and values) of one batch,
	// and below it the server's max_payload less batchOverhead (batchBudget).
	maxBatchBytes = 1 << 20
	// batchOverhead is what a sealed message adds to its ops, with room to
	// spare: the header and guard, the nonce and GCM tags, the secondaries'
	// tags (at most replication.MaxTagBlock), the signature, the stored
	// DEFLATE blocks' headers; opOverhead and entryOverhead are each op's
	// and entry's encoding (kind, class, lengths; index, time).
	batchOverhead = 8<<10 + replication.MaxTagBlock
	opOverhead    = 16
	entryOverhead = 24
	// persistEvery and persistBatches bound how stale the stored shipped index
	// is; re-shipping after a crash is harmless (msg id dedup, idempotent apply).
	persistEvery   = time.Second
	persistBatches = 64
	// persistIdle is how long the log stays quiet after the shipper caught
	// up before it stores the shipped index.
	persistIdle = 100 * time.Millisecond
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
	select {
	case <-p.holding:
	case <-p.fenced:
		return
	case <-ctx.Done():
		return
	}
	// Read once holding: a handover between active nodes moves it forward.
	shipped := p.shipped.Load()
	persisted, persistedSeq := shipped, p.seq
	lastPersist := time.Now()
	batches := 0
	persist := func() {
		if shipped == persisted && p.seq == persistedSeq {
			return
		}
		if err := saveShipped(context.WithoutCancel(ctx), p.cfg.State, shipped, p.seq); err != nil {
			p.log.Warn().Err(err).Uint64("shipped", shipped).Msg("cannot store the shipped index; will retry (a restart re-ships, harmlessly)")
			return
		}
		persisted, persistedSeq, lastPersist, batches = shipped, p.seq, time.Now(), 0
	}
	defer persist()
	for {
		if p.gen.Load() == 0 {
			return // fenced
		}
		if shipped == p.cfg.WAL.LastIndex() && (shipped != persisted || p.seq != persistedSeq) {
			// Caught up: store the index once the log stays quiet for
			// persistIdle, not after every batch of a steady trickle (a
			// storage write, on bolt an fsync, per batch shipped).
			qctx, cancel := context.WithTimeout(ctx, persistIdle)
			err := p.cfg.WAL.WaitIndex(qctx, shipped+1)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				persist()
			}
		}
		if !p.waitWAL(ctx, shipped+1) {
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
		if !p.publish(ctx, b, nil) {
			return
		}
		for _, l := range p.lanesNow() {
			c := l.copyOf(b)
			c.Guard = p.laneGuard(ctx, l, b.Last)
			if !p.publish(ctx, c, l) {
				return
			}
		}
		shipped = b.Last
		countShipped(b)
		p.shipped.Store(shipped)
		batches++
		if batches >= persistBatches || time.Since(lastPersist) >= persistEvery {
			persist()
		}
	}
}

// waitWAL waits until the WAL holds index, checking the WAL stream every
// streamCheckEvery meanwhile, so that a stream deleted or changed while
// nothing is written is restored before the next write needs it. False when
// ctx ended or the WAL closed.
func (p *Primary) waitWAL(ctx context.Context, index uint64) bool {
	for {
		wctx, cancel := context.WithTimeout(ctx, streamCheckEvery)
		err := p.cfg.WAL.WaitIndex(wctx, index)
		cancel()
		switch {
		case err == nil:
			return true
		case errors.Is(err, wal.ErrClosed):
			p.log.Warn().Msg("the WAL closed under the shipper; shipping stops until the primary is reopened")
			return false
		case ctx.Err() != nil:
			return false
		}
		if err := p.guardStream(ctx, false); err != nil {
			p.log.Debug().Err(err).Msg("cannot check the WAL stream while idle; checking again before the next batch")
		}
	}
}

// makeBatch packs entries (consecutive, after the shipped index) into one
// batch, keeping only replicated ops and stopping at maxBatchBytes (one entry
// at least). An entry without a replicated op still advances the range.
func (p *Primary) makeBatch(entries []*wal.Entry) *replication.Batch {
	b := &replication.Batch{ClusterID: p.cfg.ClusterID, First: entries[0].Index, Generation: p.gen.Load()}
	dr := p.DREnabled()
	budget := p.batchBudget()
	size := 0
	for _, e := range entries {
		var ops, local []wal.Op
		n := entryOverhead
		for _, op := range e.Ops {
			switch {
			case op.Class == wal.Replicated:
				ops = append(ops, op)
				n += len(op.Key) + len(op.Value) + opOverhead
			case op.Class == wal.Local && dr:
				local = append(local, op)
				n += len(op.Key) + len(op.Value) + opOverhead
			}
		}
		if size > 0 && size+n > budget {
			break
		}
		size += n
		b.Last = e.Index
		if len(ops) > 0 {
			b.Entries = append(b.Entries, &wal.Entry{Index: e.Index, Time: e.Time, Ops: ops})
		}
		if len(local) > 0 {
			b.DREntries = append(b.DREntries, &wal.Entry{Index: e.Index, Time: e.Time, Ops: local})
		}
	}
	return b
}

// batchBudget is the most bytes of ops (and their encoding) one batch
// holds: maxBatchBytes, or less when the NATS server's max_payload is
// smaller (NATS' own default is 1 MiB): a batch JetStream refuses as too
// large would stop shipping for good. Found by the fault campaign, on a
// kv-v2 mount whose metadata records grew past it.
func (p *Primary) batchBudget() int {
	if room := p.payloadRoom(); room > 0 {
		return min(maxBatchBytes, room)
	}
	return maxBatchBytes
}

// checkEntry is the WAL's entry check while this primary runs (SetEntryCheck).
func (p *Primary) checkEntry(ops []wal.Op) error {
	return CheckEntry(p.cfg.Bus, p.DREnabled(), ops)
}

// CheckEntry refuses (ErrEntryTooLarge) a write whose entry would not fit,
// sealed, in one message within b's max_payload: a batch holds at least
// one whole entry (makeBatch), so such an entry would be committed and never
// shipped (the shipper retrying its batch for ever, every secondary stalled
// behind it). It counts as makeBatch does: the replicated ops, and the local
// ones when dr (a DR secondary receives them). Before the bus has connected
// it assumes NATS' default max_payload, 1 MiB; without a bus it refuses
// nothing. A primary installs it while it runs; replmode while a primary's
// start is retried.
func CheckEntry(b *bus.Bus, dr bool, ops []wal.Op) error {
	if b == nil {
		return nil
	}
	mp, assumed := int(b.MaxPayload()), ""
	if mp <= 0 {
		// Never connected yet: assume the smallest default.
		mp, assumed = natsDefaultMaxPayload, " (assumed: NATS not reached yet)"
	}
	room := roomOf(mp)
	n := entryOverhead
	for i := range ops {
		if ops[i].Class == wal.Replicated || ops[i].Class == wal.Local && dr {
			n += len(ops[i].Key) + len(ops[i].Value) + opOverhead
		}
	}
	if n > room {
		return fmt.Errorf("%w: this write logs %d bytes, and one replication message carries at most %d under the bus's max_payload of %d%s: write less at once (split the secret), or raise max_payload on the NATS servers",
			wal.ErrEntryTooLarge, n, room, mp, assumed)
	}
	return nil
}

// payloadRoom is what one message to or from the NATS server may hold
// besides batchOverhead: its max_payload less that (at least half of it);
// 0 when it is not known (not connected).
func (p *Primary) payloadRoom() int {
	if p.cfg.Bus == nil {
		return 0
	}
	return roomOf(int(p.cfg.Bus.MaxPayload()))
}

// natsDefaultMaxPayload is a NATS server's max_payload unless configured
// otherwise (1 MiB), the bound CheckEntry assumes before it has seen a
// server's.
const natsDefaultMaxPayload = 1 << 20

// roomOf is payloadRoom for a max_payload of mp (0: unknown).
func roomOf(mp int) int {
	if mp <= 0 {
		return 0
	}
	return max(mp-batchOverhead, mp/2)
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

// publish seals and publishes b until the WAL stream holds it; false when ctx
// ended first. It seals again on every attempt: the epoch may have moved.
// After a failed attempt it checks the stream (missing, changed, another
// stream on the subject) and restores it before retrying. With a lane, b is
// that paths filter's copy: sealed with its key, on its subject.
func (p *Primary) publish(ctx context.Context, b *replication.Batch, l *lane) bool {
	bo := backoff.Backoff{Min: retryMin, Max: retryMax}
	var failedSince time.Time
	var salt uint32 // bumped when the id turns out to be taken by a stranger
	for {
		if time.Since(p.checkedAt) >= streamCheckEvery {
			if err := p.guardStream(ctx, false); err != nil {
				p.log.Debug().Err(err).Msg("cannot check the WAL stream; publishing anyway")
			}
		}
		err := p.publishOnce(ctx, b, l, &salt)
		if err == nil {
			if !failedSince.IsZero() {
				p.setShipErr(nil)
				p.log.Info().Dur("outage", time.Since(failedSince)).Uint64("first", b.First).Msg("WAL shipping resumed")
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		p.setShipErr(err)
		if failedSince.IsZero() {
			failedSince = time.Now()
			p.log.Warn().Err(err).Uint64("first", b.First).Uint64("last", b.Last).
				Msg("cannot publish WAL batch; retrying with backoff, writes continue and wait in the WAL (check NATS)")
		}
		if gerr := p.guardStream(ctx, errors.Is(err, errOtherStream)); gerr != nil {
			p.log.Debug().Err(gerr).Msg("cannot check the WAL stream")
		}
		if !bo.Wait(ctx) {
			return false
		}
	}
}

// publishOnce makes one attempt: nil once the WAL stream holds b, as a new
// message or as a duplicate that reads back as b sealed by this primary. A
// duplicate that does not (somebody published under the id first) bumps
// *salt, so the next attempt goes under a fresh id.
func (p *Primary) publishOnce(ctx context.Context, b *replication.Batch, l *lane, salt *uint32) error {
	epoch, key, signer := p.currentKey()
	b.Epoch = epoch
	subj, idPrefix, idKey := p.subj, p.cfg.ClusterID, p.idKey(signer)
	if l != nil {
		// The copy's id is as unpredictable as the batch's, and not derived
		// from it: a key of its own.
		key, subj = replication.FilterKey(key, l.id), l.subj
		idPrefix, idKey = p.cfg.ClusterID+"-f"+l.id, replication.FilterKey(idKey, l.id)
	}
	var drKey []byte
	if len(b.DREntries) > 0 {
		p.mu.Lock()
		drKey = p.st.drKey(epoch)
		p.mu.Unlock()
		if drKey == nil {
			return fmt.Errorf("seal batch %d-%d: no DR key of epoch %d", b.First, b.Last, epoch)
		}
	}
	msg, err := replication.SealBatchTagged(b, key, drKey, signer, p.tagKeys())
	if err != nil {
		return fmt.Errorf("seal batch %d-%d: %w", b.First, b.Last, err)
	}
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	id := msgID(idPrefix, idKey, epoch, b.Generation, b.First, b.Last, *salt)
	ack, err := p.cfg.Bus.PublishAck(pctx, subj, msg, id, nil)
	if err != nil {
		return err
	}
	telemetry.IncrCounter(telemetry.NameBytesShipped, float64(len(msg)))
	if ack.Stream != p.stream {
		return fmt.Errorf("publish batch %d-%d: %w %q, not the WAL stream %s", b.First, b.Last, errOtherStream, ack.Stream, p.stream)
	}
	p.seq = max(p.seq, ack.Sequence)
	if !ack.Duplicate {
		return nil
	}
	why := p.checkDuplicate(pctx, ack.Sequence, b, l)
	if why == nil {
		return nil
	}
	*salt++
	p.smu.Lock()
	p.ss.foreignDups++
	p.smu.Unlock()
	p.log.Warn().Uint64("first", b.First).Uint64("last", b.Last).Uint64("stream_seq", ack.Sequence).Str("why", why.Error()).
		Msg("JetStream dropped a WAL batch as a duplicate of a message this primary did not publish; publishing it again under a fresh id")
	return fmt.Errorf("publish batch %d-%d: JetStream holds another message under its id (%v)", b.First, b.Last, why)
}
