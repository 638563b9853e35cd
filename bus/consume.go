package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/internal/backoff"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

const (
	// AckWait is how long JetStream waits for an Ack before redelivering.
	// Short, because with one message in flight an ack lost in a NATS outage
	// holds the whole stream back for this long; a handler that runs longer
	// (a resync) only causes one redelivery, which the caller skips as a replay.
	AckWait = 5 * time.Second
	// NakDelay is how long JetStream holds a Nak'ed message before
	// redelivering it, so a handler failing on every try does not spin.
	NakDelay = 250 * time.Millisecond
	// retryMin and retryMax bound the pause between attempts while NATS or
	// the consumer is unavailable.
	retryMin = 250 * time.Millisecond
	retryMax = 2 * time.Second
	// pollWait is how long one pull waits for a message; it bounds how long
	// stop waits for the delivery goroutine.
	pollWait = 500 * time.Millisecond
)

// Msg is one message delivered by Consume. The handler calls Ack or Nak
// before it returns; a message it returns without settling is Nak'ed.
// Nothing else is delivered on the consumer until the message is
// acknowledged.
type Msg struct {
	Data      []byte
	Headers   map[string]string // first value of each header
	StreamSeq uint64            // the message's stream sequence
	// Ack acknowledges the message without waiting for the server's
	// confirmation (the next pull follows it on the same connection). A
	// lost ack, or an error, brings the message again: handlers must be
	// idempotent.
	Ack func() error
	// Nak asks for redelivery after NakDelay.
	Nak func() error
}

// Consume delivers the stream's messages to handle, one at a time and in
// stream order, from one goroutine it owns, through the durable pull consumer
// named durable (explicit ack, AckWait 5 s, MaxAckPending 1).
//
// A new durable starts at startSeq (0 = the first message in the stream); an
// existing durable keeps its position and startSeq is ignored. Should the
// durable vanish while consuming (deleted, stream recreated), it is created
// again just after the last message this call acknowledged, or at the
// stream's first message when that position is past the stream's end (the
// stream was re-created and numbers its messages anew).
//
// When connected, Consume looks up or creates the consumer before it
// returns, bounded by ctx, and reports a missing stream at once
// (ErrNotFound). Otherwise, and whenever NATS is unavailable later, the
// delivery goroutine keeps retrying and logs at warn. It runs until stop or
// Close, not until ctx ends. handle gets a context cancelled by stop. stop is
// idempotent and returns once handle has returned and the pull in flight has
// ended (at most about half a second).
func (b *Bus) Consume(ctx context.Context, stream, durable string, startSeq uint64, handle func(ctx context.Context, m *Msg)) (stop func(), err error) {
	if stream == "" || durable == "" || handle == nil {
		return nil, errors.New("consume: stream, durable and handler are required")
	}
	c := &consumer{
		b: b, stream: stream, durable: durable, startSeq: startSeq, handle: handle,
		log: b.log.With().Str("stream", stream).Str("durable", durable).Logger(),
	}
	if b.nc.IsConnected() {
		cons, err := b.ensureConsumer(ctx, stream, durable, startSeq)
		switch {
		case err == nil:
			c.cons = cons
		case errors.Is(err, ErrNotFound), errors.Is(err, jetstream.ErrInvalidConsumerName), errors.Is(err, jetstream.ErrInvalidStreamName):
			return nil, err
		default:
			c.log.Warn().Err(err).Msg("consumer not ready yet; retrying in the background")
		}
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var (
		wg   sync.WaitGroup
		once sync.Once
		w    = &worker{}
	)
	w.stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			b.unregister(w)
		})
	}
	wg.Add(1) // before register: Close may call w.stop at once
	if err := b.register(w); err != nil {
		wg.Done()
		cancel()
		return nil, fmt.Errorf("consume %s/%s: %w", stream, durable, err)
	}
	go func() {
		defer wg.Done()
		c.run(runCtx)
	}()
	return w.stop, nil
}

// ensureConsumer returns the durable, creating it when it does not exist.
func (b *Bus) ensureConsumer(ctx context.Context, stream, durable string, startSeq uint64) (jetstream.Consumer, error) {
	cons, err := b.js.Consumer(ctx, stream, durable)
	if err == nil {
		return cons, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, b.streamErr("look up consumer "+durable, stream, err)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       AckWait,
		MaxAckPending: 1,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if startSeq > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = startSeq
		// A start past the stream's end means the stream was re-created (on
		// an untrusted bus, by anyone) and numbers its messages anew: start
		// at its first message rather than wait for a sequence that may
		// never come. The reader skips what it applied and detects the gap.
		if st, err := b.js.Stream(ctx, stream); err == nil && startSeq > st.CachedInfo().State.LastSeq+1 {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverAllPolicy, 0
			b.log.Warn().Str("stream", stream).Uint64("start_seq", startSeq).Uint64("stream_last_seq", st.CachedInfo().State.LastSeq).
				Msg("the WAL stream is behind this consumer's position (re-created?); reading it from its first message")
		}
	}
	cons, err = b.js.CreateConsumer(ctx, stream, cfg)
	if errors.Is(err, jetstream.ErrConsumerExists) {
		// Created by someone else since we looked: use theirs.
		cons, err = b.js.Consumer(ctx, stream, durable)
	}
	if err != nil {
		return nil, b.streamErr("create consumer "+durable, stream, err)
	}
	return cons, nil
}

type consumer struct {
	b        *Bus
	stream   string
	durable  string
	startSeq uint64
	handle   func(context.Context, *Msg)
	log      zerolog.Logger

	cons      jetstream.Consumer // nil until looked up or created
	lastAcked atomic.Uint64      // stream sequence of the last confirmed Ack
}

// run pulls one message at a time (Fetch(1) expiring after pollWait) rather
// than holding a long-lived pull subscription: a fetch is always allowed to
// finish, so stopping never strands a delivered message in a client buffer,
// where JetStream would hold it back for AckWait before redelivering.
func (c *consumer) run(ctx context.Context) {
	bo := backoff.Backoff{Min: retryMin, Max: retryMax}
	warned := false // warn once per outage, then debug until delivery resumes
	pause := func(err error, what string) bool {
		ev := c.log.Debug()
		if !warned {
			ev, warned = c.log.Warn(), true
		}
		wait := bo.Next()
		ev.Err(err).Dur("retry_in", wait).Msg(what)
		return backoff.Sleep(ctx, wait)
	}
	for ctx.Err() == nil {
		if !c.b.nc.IsConnected() {
			if !pause(errors.New("not connected"), "NATS unavailable: delivery paused until the connection is back") {
				return
			}
			continue
		}
		if c.cons == nil {
			start := c.startSeq
			if last := c.lastAcked.Load(); last > 0 {
				start = last + 1
			}
			cons, err := c.b.ensureConsumer(ctx, c.stream, c.durable, start)
			if err != nil {
				if ctx.Err() != nil || !pause(err, "cannot look up or create the consumer: check NATS and the stream") {
					return
				}
				continue
			}
			c.cons = cons
		}
		batch, err := c.cons.Fetch(1, jetstream.FetchMaxWait(pollWait))
		if err != nil {
			c.cons = nil
			if !pause(err, "cannot pull messages: check NATS and the consumer") {
				return
			}
			continue
		}
		for jm := range batch.Messages() {
			c.deliver(ctx, jm)
		}
		if err := batch.Error(); err != nil {
			// The consumer may have been deleted or its stream recreated:
			// look it up again.
			c.cons = nil
			if !pause(err, "message delivery interrupted") {
				return
			}
			continue
		}
		if warned {
			c.log.Info().Msg("message delivery resumed")
		}
		bo.Reset()
		warned = false
	}
}

// deliver hands one message to the handler, then Naks it if the handler
// neither acked nor naked it.
func (c *consumer) deliver(ctx context.Context, jm jetstream.Msg) {
	meta, err := jm.Metadata()
	if err != nil {
		c.log.Warn().Err(err).Msg("message without JetStream metadata: terminated")
		_ = jm.Term()
		return
	}
	if ctx.Err() != nil {
		// Stopping: hand it back at once for the next consumer instance.
		_ = jm.Nak()
		return
	}
	seq := meta.Sequence.Stream
	var settled atomic.Bool
	m := &Msg{
		Data:      jm.Data(),
		StreamSeq: seq,
		Ack: func() error {
			// Not waited for: the next pull follows the ack on the same
			// connection, so the server has taken the ack when it serves
			// the pull (MaxAckPending 1 holds). An ack that gets lost
			// brings the message again, which the handler skips as a
			// replay. Waiting for each ack's confirmation cost a round
			// trip a message and bounded how fast a backlog is read.
			if err := jm.Ack(); err != nil {
				return fmt.Errorf("ack %s/%s seq %d: %w (it will be redelivered)", c.stream, c.durable, seq, err)
			}
			settled.Store(true)
			for {
				last := c.lastAcked.Load()
				if seq <= last || c.lastAcked.CompareAndSwap(last, seq) {
					return nil
				}
			}
		},
		Nak: func() error {
			settled.Store(true)
			if err := jm.NakWithDelay(NakDelay); err != nil {
				return fmt.Errorf("nak %s/%s seq %d: %w (it will be redelivered after %s)", c.stream, c.durable, seq, err, AckWait)
			}
			return nil
		},
	}
	if h := jm.Headers(); len(h) > 0 {
		m.Headers = make(map[string]string, len(h))
		for k, v := range h {
			if len(v) > 0 {
				m.Headers[k] = v[0]
			}
		}
	}
	c.handle(ctx, m)
	if settled.Load() {
		return
	}
	if ctx.Err() != nil {
		_ = jm.Nak()
	} else {
		_ = jm.NakWithDelay(NakDelay)
	}
}

// DeleteConsumer deletes the durable. Deleting one that does not exist is
// not an error.
func (b *Bus) DeleteConsumer(ctx context.Context, stream, durable string) error {
	err := b.js.DeleteConsumer(ctx, stream, durable)
	if err == nil || errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	return fmt.Errorf("delete consumer %s/%s: %w (%s)", stream, durable, err, b.hint(err))
}

// ConsumerInfo reports the durable's position: the stream sequence of the
// last delivered message, the ack floor (every message up to it is
// acknowledged) and how many messages are still to be delivered. A missing
// stream or consumer is ErrNotFound.
func (b *Bus) ConsumerInfo(ctx context.Context, stream, durable string) (delivered, ackFloor, pending uint64, err error) {
	cons, err := b.js.Consumer(ctx, stream, durable)
	if err != nil {
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return 0, 0, 0, fmt.Errorf("consumer info: %s/%s: %w", stream, durable, ErrNotFound)
		}
		return 0, 0, 0, b.streamErr("consumer info "+durable, stream, err)
	}
	info := cons.CachedInfo()
	return info.Delivered.Stream, info.AckFloor.Stream, info.NumPending, nil
}
