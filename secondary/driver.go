package secondary

import (
	"bytes"
	"context"
	"errors"
	"strings"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/internal/backoff"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
)

// run is the driver goroutine: it starts the machine, then waits for Stop or
// revocation and stops the consumer.
func (s *Secondary) run(ctx context.Context, ev Started) {
	s.exec(ctx, s.step(ev), nil)
	select {
	case <-ctx.Done():
	case <-s.revoked:
	}
	if s.stopConsume != nil {
		s.stopConsume()
	}
}

// delivery is the message being handled, for Ack, Nak and ApplyBatch.
type delivery struct {
	msg   *bus.Msg
	batch *replication.Batch
}

// exec carries out actions in order; d is nil outside the consume handler.
func (s *Secondary) exec(ctx context.Context, acts []Action, d *delivery) {
	for _, a := range acts {
		switch a := a.(type) {
		case StartSync:
			s.exec(ctx, s.syncUntilDone(ctx, a.Floor), d)
		case StartStreaming:
			s.startStreaming(ctx)
		case StopStreaming:
			s.revokeOnce.Do(func() { close(s.revoked) })
			s.log.Error().Msg("the primary revoked this secondary: replication stopped; generate a new token on the primary and activate again")
		case ApplyBatch:
			ev, local := s.apply(ctx, d.batch, a.After)
			s.exec(ctx, s.step(ev), d)
			if _, ok := ev.(BatchApplied); ok && s.guardMismatch(ctx, d.batch, local) {
				s.exec(ctx, s.step(GuardMismatch{Last: d.batch.Last}), nil)
			}
		case Ack:
			if d == nil {
				continue
			}
			switch a.Reason {
			case ReasonReplay:
				s.log.Info().Uint64("first", d.batch.First).Uint64("last", d.batch.Last).Msg("skipped a replayed batch (already applied)")
			case ReasonGap:
				s.log.Info().Uint64("first", d.batch.First).Msg("batch after a gap covered by the sync")
			}
			if err := d.msg.Ack(); err != nil {
				s.log.Warn().Err(err).Msg("ack")
			}
		case Nak:
			if d == nil {
				continue
			}
			if err := d.msg.Nak(); err != nil {
				s.log.Debug().Err(err).Msg("nak")
			}
		}
	}
}

// startStreaming starts the durable consumer, retrying until it runs or ctx ends.
func (s *Secondary) startStreaming(ctx context.Context) {
	s.mu.Lock()
	stream, durable, start := s.sec.Stream, replication.ConsumerName(s.sec.SecondaryID), s.startSeq
	s.mu.Unlock()
	bo := backoff.Backoff{Min: retryMin, Max: retryMax}
	for {
		stop, err := s.bus.Consume(ctx, stream, durable, start, s.handle)
		if err == nil {
			s.stopConsume = stop
			s.log.Info().Str("stream", stream).Str("durable", durable).Msg("streaming WAL batches")
			return
		}
		s.setErr(err)
		s.log.Warn().Err(err).Msg("cannot start the WAL consumer; retrying")
		if !bo.Wait(ctx) {
			return
		}
	}
}

// handle is the consume handler: it verifies the batch, then lets the
// machine decide.
func (s *Secondary) handle(ctx context.Context, msg *bus.Msg) {
	d := &delivery{msg: msg}
	ev, batch := s.verify(ctx, msg)
	if ev != nil {
		s.exec(ctx, s.step(ev), d)
		return
	}
	d.batch = batch
	s.exec(ctx, s.step(BatchArrived{First: batch.First, Last: batch.Last}), d)
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
	if err != nil {
		var re *replication.RPCError
		switch {
		case replication.IsRevoked(err):
			return Revoked{}, nil
		case errors.As(err, &re) && re.Permanent():
			s.log.Warn().Err(err).Uint32("epoch", epoch).Uint64("first", first).Uint64("last", last).
				Msg("rejected a batch of an epoch the primary does not know; nothing applied")
			return BatchRejected{First: first, Last: last, Err: err}, nil
		}
		s.setErr(err)
		s.log.Warn().Err(err).Uint32("epoch", epoch).Msg("cannot fetch the replication key; the batch will be redelivered")
		return ApplyFailed{Err: err}, nil
	}
	s.mu.Lock()
	cid, pub := s.sec.PrimaryClusterID, s.sec.pub()
	s.mu.Unlock()
	b, err := replication.OpenBatch(msg.Data, cid, key, pub)
	if err != nil {
		s.log.Warn().Err(err).Uint64("seq", msg.StreamSeq).Uint64("first", first).Uint64("last", last).
			Msg("rejected a batch that failed verification (forged, tampered or another primary's); nothing applied")
		return BatchRejected{First: first, Last: last, Err: err}, nil
	}
	return nil, b
}

// accept reports whether the secondary writes a key the primary sent: never
// its own log's space nor an Ignored key (its replication state).
func (s *Secondary) accept(key string) bool {
	return !strings.HasPrefix(key, "wal/") && s.cfg.Classify(key) != wal.Ignored
}

// apply writes the entries of b after `after` and the new last_remote_wal in
// one WAL write (one storage transaction). It returns the event and the local
// WAL index of that write (0 when it logged nothing).
func (s *Secondary) apply(ctx context.Context, b *replication.Batch, after uint64) (Event, uint64) {
	var ops []*storage.TxnOp
	var keys []string
	for _, e := range b.Entries {
		if e.Index <= after {
			continue
		}
		for i := range e.Ops {
			op := &e.Ops[i]
			if !s.accept(op.Key) {
				s.log.Warn().Str("key", op.Key).Uint64("index", e.Index).Msg("ignored an op on a key this secondary does not replicate")
				continue
			}
			ops = append(ops, &storage.TxnOp{Operation: op.Kind, Entry: &storage.Entry{Key: op.Key, Value: op.Value}})
			keys = append(keys, op.Key)
		}
	}
	ops = append(ops, positionOp(s.cfg.StateKey, b.Last))
	local, err := s.cfg.WAL.Write(ctx, ops)
	if err != nil {
		s.setErr(err)
		s.log.Warn().Err(err).Uint64("first", b.First).Uint64("last", b.Last).Msg("cannot apply a batch; it will be redelivered")
		return ApplyFailed{Err: err}, 0
	}
	if len(keys) > 0 {
		s.cfg.OnApplied(keys)
	}
	return BatchApplied{Last: b.Last}, local
}

// guardMismatch compares the local merkle root with b's guard once the local
// index has applied the batch's local WAL write (local; 0 when that write
// logged nothing: then everything written so far). Having applied the
// primary's WAL up to b.Last, this cluster's replicated keys equal the
// primary's at b.Last, hence the roots. It reports false when there is no
// guard or no index, or the index did not catch up within guardWait.
func (s *Secondary) guardMismatch(ctx context.Context, b *replication.Batch, local uint64) bool {
	if len(b.Guard) == 0 {
		return false
	}
	x := s.index()
	if x == nil {
		return false
	}
	if local == 0 {
		local = s.cfg.WAL.LastIndex()
	}
	wctx, cancel := context.WithTimeout(ctx, guardWait)
	err := x.WaitApplied(wctx, local)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn().Uint64("last", b.Last).Uint64("local_index", local).Uint64("merkle_applied", x.Applied()).
				Msg("the local merkle index did not reach the applied batch in time; its guard is not compared")
		}
		return false
	}
	root := x.Root()
	if bytes.Equal(root, b.Guard) {
		return false
	}
	s.log.Warn().Uint64("last", b.Last).Hex("guard", b.Guard).Hex("local_root", root).
		Msg("merkle guard mismatch: this cluster's replicated keys differ from the primary's at the batch's last index; running a merkle sync")
	return true
}
