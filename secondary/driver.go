package secondary

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/internal/backoff"
	"github.com/cofferhq/coffer/merkle"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
)

// run is the driver goroutine: it starts the machine, then waits for Stop or
// revocation and stops the consumer.
func (s *Secondary) run(ctx context.Context, ev Started) {
	s.exec(ctx, s.step(ev), &turn{})
	select {
	case <-ctx.Done():
	case <-s.revoked:
	}
	s.stopConsumer()
}

// stopConsumer stops the durable consumer, if one runs, and waits for it.
func (s *Secondary) stopConsumer() {
	s.consumeMu.Lock()
	stop := s.stopConsume
	s.stopConsume = nil
	s.consumeMu.Unlock()
	if stop != nil {
		stop()
	}
}

// turn is what one chain of actions works on: the messages being handled
// (none outside the consume handler), their verified batch (a run joined in
// one) and the local WAL index its apply wrote, and the running sync's local
// index and diff.
type turn struct {
	msgs  []*bus.Msg
	batch *replication.Batch
	local uint64
	index *merkle.Index
	diff  *merkle.DiffResult
}

// exec carries out actions in order. The actions an action leads to (the
// machine's answer to what it observed) run before the rest, as a call would,
// but in a loop: a sync retrying for hours does not grow the stack.
func (s *Secondary) exec(ctx context.Context, acts []Action, t *turn) {
	for len(acts) > 0 {
		next := s.do(ctx, acts[0], t)
		acts = append(next, acts[1:]...)
	}
}

// do carries out one action and returns the machine's answer to its outcome.
func (s *Secondary) do(ctx context.Context, a Action, t *turn) []Action {
	switch a := a.(type) {
	case StartSync:
		if !s.loopWait(ctx) {
			return nil
		}
		return s.attempt(t)
	case RetrySync:
		return s.retrySync(ctx, a, t)
	case RunDiff:
		return s.runDiff(ctx, t)
	case FetchDiff:
		return s.fetchDiff(ctx, t, a.Keys)
	case RunListing:
		return s.runListing(ctx, a, t)
	case StartStreaming:
		s.startStreaming(ctx)
	case DropConsumer:
		s.dropConsumer(ctx)
	case RunAside:
		s.execAside(s.runCtx, a.Acts)
	case StopStreaming:
		s.revokeOnce.Do(func() { close(s.revoked) })
		s.log.Error().Msg("the primary revoked this secondary: replication stopped; generate a new token on the primary and activate again")
	case ApplyBatch:
		ev := s.apply(ctx, t, a.After)
		acts := s.step(ev)
		s.loopApplied(ev, acts)
		return acts
	case CheckGuard:
		s.queueGuard(t.batch, t.local)
	case Ack:
		s.ack(t, a.Reason)
	case Nak:
		// The consumer delivers the first message again, and every one
		// after it: naking the first is enough.
		if len(t.msgs) > 0 {
			if err := t.msgs[0].Nak(); err != nil {
				s.log.Debug().Err(err).Msg("nak")
			}
		}
	}
	return nil
}

// ack acknowledges the messages being handled, if any.
func (s *Secondary) ack(t *turn, reason string) {
	if len(t.msgs) == 0 {
		return
	}
	switch reason {
	case ReasonReplay:
		s.log.Info().Uint64("first", t.batch.First).Uint64("last", t.batch.Last).Msg("skipped a replayed batch (already applied)")
	case ReasonGap:
		s.log.Info().Uint64("first", t.batch.First).Msg("batch after a gap covered by the sync")
	case ReasonStale:
		s.log.Warn().Uint64("generation", t.batch.Generation).Uint64("first", t.batch.First).Uint64("last", t.batch.Last).
			Msg("dropped a batch of an older generation than the newest seen (a superseded primary's): nothing applied")
	case ReasonNewGen:
		s.log.Warn().Uint64("generation", t.batch.Generation).Msg("a new generation of the set: resynced with its primary")
	}
	for _, m := range t.msgs {
		if err := m.Ack(); err != nil {
			s.log.Warn().Err(err).Msg("ack")
		}
	}
}

// startStreaming starts the durable consumer, retrying until it runs or ctx ends.
func (s *Secondary) startStreaming(ctx context.Context) {
	s.mu.Lock()
	stream, durable, start := s.sec.Stream, replication.ConsumerName(s.sec.SecondaryID), s.startSeq
	subject := s.subject()
	s.mu.Unlock()
	bo := backoff.Backoff{Min: retryMin, Max: retryMax}
	for {
		stop, err := s.bus.ConsumePrepared(ctx, stream, subject, durable, start, s.prepare, s.handle)
		if err == nil {
			s.consumeMu.Lock()
			if ctx.Err() != nil {
				// Stopped meanwhile (a resync on the heartbeats' goroutine
				// may start streaming): run has stopped what it found.
				s.consumeMu.Unlock()
				stop()
				return
			}
			s.stopConsume = stop
			s.consumeMu.Unlock()
			s.log.Info().Str("stream", stream).Str("subject", subject).Str("durable", durable).Msg("streaming WAL batches")
			return
		}
		s.setErr(err)
		s.log.Warn().Err(err).Msg("cannot start the WAL consumer; retrying")
		if !bo.Wait(ctx) {
			return
		}
	}
}

// subject is the subject this secondary's batches are published on: its
// paths filter's, or the WAL subject. Caller holds mu.
func (s *Secondary) subject() string {
	if s.sec.FilterID != "" {
		return replication.FilterSubject(s.sec.PrimaryClusterID, s.sec.FilterID)
	}
	return replication.WALSubject(s.sec.PrimaryClusterID)
}

// dropConsumer stops the durable consumer and deletes it, so that the next
// StartStreaming creates it on the current subject.
func (s *Secondary) dropConsumer(ctx context.Context) {
	s.stopConsumer()
	s.mu.Lock()
	stream, durable := s.sec.Stream, replication.ConsumerName(s.sec.SecondaryID)
	s.mu.Unlock()
	if err := s.bus.DeleteConsumer(ctx, stream, durable); err != nil {
		s.log.Warn().Err(err).Msg("cannot delete the WAL consumer; it is created anew on the right subject when streaming starts")
	}
}

// handle is the consume handler: it verifies a group of messages, joins
// the batches that follow each other into runs, and lets the machine decide
// on each run as on one batch. It stops at the first run not acked: the
// consumer delivers it again with everything after it.
func (s *Secondary) handle(ctx context.Context, msgs []*bus.Msg) {
	items := s.verifyAll(ctx, msgs)
	for _, run := range runs(items) {
		t := &turn{msgs: make([]*bus.Msg, len(run))}
		for i, it := range run {
			t.msgs[i] = it.msg
		}
		ev := run[0].ev
		if ev == nil {
			t.batch = join(run)
			ev = BatchArrived{First: t.batch.First, Last: t.batch.Last, Gen: t.batch.Generation}
		}
		s.exec(ctx, s.step(ev), t)
		if !s.acked(t) {
			return
		}
	}
}

// acked reports whether a run's messages were acknowledged (the last one's
// ack is the last the machine gives).
func (s *Secondary) acked(t *turn) bool {
	return t.msgs[len(t.msgs)-1].Acked()
}

// prepare verifies a message as it arrives (bus.Prepare), while the
// messages before it are applied: verifying a signature costs more than
// applying a batch, and on a secondary catching up the apply leaves the
// other cores idle. What it verifies against (the primary's cluster id and
// public key) is fixed for the life of a Secondary, and an epoch's keys never
// change once fetched: a message verified early is verified as it would
// be at its turn.
func (s *Secondary) prepare(ctx context.Context, msg *bus.Msg) any {
	if ctx.Err() != nil {
		return nil // stopping: nobody handles it, and a key fetch would fail for that reason alone
	}
	ev, batch := s.verify(ctx, msg)
	return opened{msg: msg, batch: batch, ev: ev}
}

// verifyAll returns a group's messages verified: by prepare, as they
// arrived (while this secondary is behind), or here, the first alone and
// the rest on every core. The goroutines end before it returns.
func (s *Secondary) verifyAll(ctx context.Context, msgs []*bus.Msg) []opened {
	items := make([]opened, len(msgs))
	var todo []int
	for i, m := range msgs {
		if o, ok := m.Prepared().(opened); ok {
			items[i] = o
		} else {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return items
	}
	open := func(i int) {
		ev, batch := s.verify(ctx, msgs[i])
		items[i] = opened{msg: msgs[i], batch: batch, ev: ev}
	}
	open(todo[0])
	todo = todo[1:]
	workers := min(runtime.GOMAXPROCS(0), len(todo))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for j := w; j < len(todo); j += workers {
				open(todo[j])
			}
		})
	}
	wg.Wait()
	return items
}

// verify opens a message: (nil, batch) when authentic, else the event to
// report (BatchRejected, ApplyFailed for a transient key fetch failure, Revoked).
func (s *Secondary) verify(ctx context.Context, msg *bus.Msg) (Event, *replication.Batch) {
	epoch, first, last, err := replication.PeekBatch(msg.Data)
	if err != nil {
		s.log.Warn().Err(err).Uint64("seq", msg.StreamSeq).Msg("rejected a message on the WAL stream: not a batch; nothing applied")
		return BatchRejected{Err: err}, nil
	}
	key, err := s.epochKey(ctx, epoch)
	if err != nil && ctx.Err() != nil {
		return ApplyFailed{Err: err}, nil // stopping, or the message is dropped (prepared ahead): nothing to record
	}
	if err != nil {
		var re *replication.RPCError
		switch {
		case replication.IsRevoked(err):
			// Whichever of the consumer and the heartbeat learns it first
			// records why replication stopped.
			s.setErr(err)
			return Revoked{}, nil
		case errors.As(err, &re) && re.Authenticated && re.Permanent():
			s.log.Warn().Err(err).Uint32("epoch", epoch).Uint64("first", first).Uint64("last", last).
				Msg("rejected a batch of an epoch the primary does not know; nothing applied")
			return BatchRejected{First: first, Last: last, Err: err}, nil
		}
		s.setErr(err)
		s.log.Warn().Err(err).Uint32("epoch", epoch).Msg("cannot fetch the replication key; the batch will be redelivered")
		return ApplyFailed{Err: err}, nil
	}
	s.mu.Lock()
	cid, pub, drKey, tag := s.sec.PrimaryClusterID, s.sec.pub(), s.sec.drKey(epoch), s.tagKeyLocked()
	s.mu.Unlock()
	if !s.cfg.DR {
		drKey = nil
	} else if drKey == nil {
		drKey = []byte{} // OpenBatchTagged refuses it: as OpenBatchDR did
	}
	b, err := replication.OpenBatchTagged(msg.Data, cid, key, drKey, pub, tag)
	if err != nil {
		s.log.Warn().Err(err).Uint64("seq", msg.StreamSeq).Uint64("first", first).Uint64("last", last).
			Msg("rejected a batch that failed verification (forged, tampered or another primary's); nothing applied")
		return BatchRejected{First: first, Last: last, Err: err}, nil
	}
	return nil, b
}

// tagKeyLocked is this secondary's batch tag key (replication/tag.go),
// derived once from its RPC key; nil without one (the signature serves).
// Caller holds mu.
func (s *Secondary) tagKeyLocked() *replication.TagKey {
	if s.tag != nil && bytes.Equal(s.tagRPC, s.sec.RPCKey) {
		return s.tag
	}
	k, err := replication.NewTagKey(s.sec.SecondaryID, s.sec.RPCKey)
	if err != nil {
		return nil
	}
	s.tag, s.tagRPC = &k, s.sec.RPCKey
	return s.tag
}

// generation is the newest generation of the set seen.
func (s *Secondary) generation() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.Generation()
}

// accept reports whether the secondary writes a key the primary sent: never
// its own log's space nor an Ignored key (its replication state); a local
// key only on a DR secondary.
func (s *Secondary) accept(key string) bool {
	if strings.HasPrefix(key, "wal/") {
		return false
	}
	switch s.cfg.Classify(key) {
	case wal.Ignored:
		return false
	case wal.Local:
		return s.cfg.DR
	}
	return true
}

// apply writes the entries of t.batch after `after` and the new
// last_remote_wal in one WAL write (one storage transaction), notes the local
// WAL index of that write in t.local (0 when it logged nothing) and returns
// the event to report. Under a storage cap on a transaction's operations
// (Consul) the batch goes in several writes cut at entry boundaries, each
// with the position of its last entry: a crash between them resumes after
// that entry (a primary's entry, one logical write, is never cut).
func (s *Secondary) apply(ctx context.Context, t *turn, after uint64) Event {
	b := t.batch
	limit := storage.MaxOps(s.cfg.WAL) // 0: none
	var ops []*storage.TxnOp
	var keys []string
	flush := func(position uint64) error {
		ops = append(ops, positionOp(s.cfg.StateKey, position, s.generation()))
		local, err := s.cfg.WAL.Write(ctx, ops)
		if err != nil {
			return err
		}
		t.local = local
		if len(keys) > 0 {
			s.cfg.OnApplied(keys)
		}
		ops, keys = nil, nil
		return nil
	}
	for _, e := range b.Entries {
		if e.Index <= after {
			continue
		}
		var eops []*storage.TxnOp
		var ekeys []string
		for i := range e.Ops {
			op := &e.Ops[i]
			if !s.accept(op.Key) {
				s.log.Warn().Str("key", op.Key).Uint64("index", e.Index).Msg("ignored an op on a key this secondary does not replicate")
				continue
			}
			eops = append(eops, &storage.TxnOp{Operation: op.Kind, Entry: &storage.Entry{Key: op.Key, Value: op.Value}})
			ekeys = append(ekeys, op.Key)
		}
		if limit > 0 && len(ops) > 0 && len(ops)+len(eops)+1 > limit {
			if err := flush(e.Index - 1); err != nil {
				return s.applyFailed(b, err)
			}
		}
		ops, keys = append(ops, eops...), append(keys, ekeys...)
	}
	if err := flush(b.Last); err != nil {
		return s.applyFailed(b, err)
	}
	s.noteApplied(b)
	countApplied(b)
	return BatchApplied{Last: b.Last, Guard: len(b.Guard) > 0}
}

func (s *Secondary) applyFailed(b *replication.Batch, err error) Event {
	s.setErr(err)
	s.log.Warn().Err(err).Uint64("first", b.First).Uint64("last", b.Last).Msg("cannot apply a batch; it will be redelivered")
	return ApplyFailed{Err: err}
}

// writeCut writes independent ops (a sync's keys) in WAL writes that fit
// the storage's cap on a transaction's operations (one write without one).
func (s *Secondary) writeCut(ctx context.Context, ops []*storage.TxnOp) error {
	limit := storage.MaxOps(s.cfg.WAL)
	for len(ops) > 0 {
		n := len(ops)
		if limit > 0 {
			n = min(n, limit)
		}
		if _, err := s.cfg.WAL.Write(ctx, ops[:n]); err != nil {
			return err
		}
		ops = ops[n:]
	}
	return nil
}
