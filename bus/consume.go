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

// MaxInFlight is how many messages a consumer holds unacknowledged
// (MaxAckPending) and the most one handler call receives: a secondary that
// is behind reads and applies up to this many batches at a time.
const MaxInFlight = 64

// maxGroupBytes bounds the data of one group (a message alone may exceed
// it): what a handler holds at once stays small however large the
// messages.
const maxGroupBytes = 8 << 20

// Msg is one message delivered by Consume. The handler acks each message it
// applied; the first message of a group it does not ack (it Naks it or
// leaves it unsettled) and every message after it are delivered again, in
// order, starting with that one.
type Msg struct {
	Data      []byte
	Headers   map[string]string // first value of each header
	StreamSeq uint64            // the message's stream sequence
	// Ack acknowledges the message without waiting for the server's
	// confirmation. A lost ack, or an error, brings the message again:
	// handlers must be idempotent.
	Ack func() error
	// Nak asks for the message, and the ones after it, to be delivered
	// again after NakDelay.
	Nak func() error

	acked, naked atomic.Bool
	prep         *prepared // ConsumePrepared's
}

// Acked reports whether Ack succeeded on m.
func (m *Msg) Acked() bool { return m.acked.Load() }

// Consume delivers the stream's messages to handle in stream order, from
// one goroutine it owns (ConsumePrepared adds the prefetch's, while behind), through the durable pull consumer named durable
// (explicit ack, AckWait 5 s, MaxAckPending MaxInFlight). Each call of
// handle gets the messages that were waiting, in order: one when the
// consumer keeps up, up to MaxInFlight when it is behind.
//
// Order holds across redeliveries: when the handler does not ack a message,
// Consume drops the rest of the group, deletes the durable and creates it
// again at that message's sequence after NakDelay, so nothing after it is
// delivered before it (JetStream redelivers a nak'ed message after the ones
// delivered since, when several are in flight).
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
func (b *Bus) Consume(ctx context.Context, stream, durable string, startSeq uint64, handle func(ctx context.Context, msgs []*Msg)) (stop func(), err error) {
	return b.ConsumeSubject(ctx, stream, "", durable, startSeq, handle)
}

// ConsumeSubject is Consume of the stream's messages on subject alone (""
// = every message): the durable filters on it. A durable that exists with
// another filter is created anew just after its ack floor, with this one.
func (b *Bus) ConsumeSubject(ctx context.Context, stream, subject, durable string, startSeq uint64, handle func(ctx context.Context, msgs []*Msg)) (stop func(), err error) {
	return b.consume(ctx, stream, subject, durable, startSeq, nil, handle)
}

func (b *Bus) consume(ctx context.Context, stream, subject, durable string, startSeq uint64, prepare Prepare, handle func(ctx context.Context, msgs []*Msg)) (stop func(), err error) {
	if stream == "" || durable == "" || handle == nil {
		return nil, errors.New("consume: stream, durable and handler are required")
	}
	c := &consumer{
		b: b, stream: stream, subject: subject, durable: durable, startSeq: startSeq, prepare: prepare, handle: handle,
		log: b.log.With().Str("stream", stream).Str("durable", durable).Logger(),
	}
	if b.nc.IsConnected() {
		cons, err := b.ensureConsumer(ctx, stream, subject, durable, startSeq)
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
func (b *Bus) ensureConsumer(ctx context.Context, stream, subject, durable string, startSeq uint64) (jetstream.Consumer, error) {
	cons, err := b.js.Consumer(ctx, stream, durable)
	if err == nil {
		info := cons.CachedInfo()
		if info.NumAckPending == 0 && info.Config.MaxAckPending == MaxInFlight && info.Config.FilterSubject == subject {
			return cons, nil
		}
		// Messages delivered and never acked (a process stopped or killed
		// with a group in hand) would come back after AckWait behind newer
		// ones; a durable of an older version holds one message at a time;
		// a durable of another filter reads other messages. Either way:
		// create it anew just after its ack floor, so delivery resumes in
		// order (what was acked past the floor is a replay).
		if err := b.DeleteConsumer(ctx, stream, durable); err != nil {
			return nil, err
		}
		startSeq = info.AckFloor.Stream + 1
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, b.streamErr("look up consumer "+durable, stream, err)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       AckWait,
		MaxAckPending: MaxInFlight,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: subject,
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
	subject  string // "" = every message of the stream
	durable  string
	startSeq uint64
	prepare  Prepare // nil: none
	handle   func(context.Context, []*Msg)
	log      zerolog.Logger

	cons jetstream.Consumer // nil until looked up or created
	// prepCancel ends the Prepares of a fetch's prefetch (nil: none).
	prepCancel context.CancelFunc
	lastAcked  atomic.Uint64 // stream sequence of the last message acked
	restartAt  uint64        // >0: create the durable anew at this sequence
	// holeAt is the last sequence a hole was repaired at (see drain).
	holeAt uint64
}

// run pulls up to MaxInFlight messages at a time (a Fetch expiring after
// pollWait) rather than holding a long-lived pull subscription: a fetch is
// always allowed to finish, so stopping never strands a delivered message in
// a client buffer, where JetStream would hold it back for AckWait.
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
			cons, err := c.b.ensureConsumer(ctx, c.stream, c.subject, c.durable, c.start())
			if err != nil {
				if ctx.Err() != nil || !pause(err, "cannot look up or create the consumer: check NATS and the stream") {
					return
				}
				continue
			}
			c.cons, c.restartAt = cons, 0
		}
		batch, err := c.cons.Fetch(MaxInFlight, jetstream.FetchMaxWait(pollWait))
		if err != nil {
			c.cons = nil
			if !pause(err, "cannot pull messages: check NATS and the consumer") {
				return
			}
			continue
		}
		seq, delay, n, rest := c.drain(ctx, batch.Messages())
		if seq > 0 {
			c.stopPrepare() // what is still being prepared is delivered again
			c.restart(ctx, seq, delay, rest)
			continue
		}
		c.stopPrepare()
		if err := batch.Error(); err != nil {
			// The consumer may have been deleted or its stream recreated:
			// look it up again.
			c.cons = nil
			if !pause(err, "message delivery interrupted") {
				return
			}
			continue
		}
		if n == 0 {
			if seq := c.stranded(ctx); seq > 0 {
				c.restart(ctx, seq, 0, nil)
				continue
			}
		}
		if warned {
			c.log.Info().Msg("message delivery resumed")
		}
		bo.Reset()
		warned = false
	}
}

// stranded is asked after a pull that brought nothing, when this consumer
// holds no message unacked: messages the durable counts as delivered and
// unacked then never reached it, or its acks were lost (a process frozen,
// a connection cut). With MaxInFlight of them JetStream delivers nothing
// more until AckWait. It returns the sequence to deliver again from (its ack
// floor's next), or 0 when nothing is stranded.
func (c *consumer) stranded(ctx context.Context) uint64 {
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := c.cons.Info(ictx)
	if err != nil || info.NumAckPending == 0 {
		return 0
	}
	c.log.Debug().Int("ack_pending", info.NumAckPending).Uint64("ack_floor", info.AckFloor.Stream).
		Msg("messages delivered and never acked: delivering again after the ack floor")
	return info.AckFloor.Stream + 1
}

// start is where a durable created now begins: where a redelivery restarts,
// else just after the last message acked, else startSeq.
func (c *consumer) start() uint64 {
	if c.restartAt > 0 {
		return c.restartAt
	}
	if last := c.lastAcked.Load(); last > 0 {
		return last + 1
	}
	return c.startSeq
}

// drain hands a fetch's messages to the handler in groups: each group is
// the first message still to come plus every one already received behind
// it, up to maxGroupBytes. It returns how many messages it received, the sequence to deliver
// again from (0: none) and how long to wait first: after NakDelay when the handler left a message unacked, at
// once when a hole shows that messages were delivered but never reached
// this process (a fetch that had expired on the client, in a process
// frozen past it: JetStream redelivers them after AckWait, behind newer
// ones). A hole is repaired once per position: a stream whose messages at
// that position are gone (limits, deleted) goes on past them.
//
// With a Prepare, once a message shows more waiting behind it in the stream
// (this consumer is behind), it and the rest of the fetch come through
// prefetch, prepared while the handler works; a consumer keeping up gets
// each message straight from the fetch, without the extra goroutine on
// its way (forwarded writes wait for it), and its handler does the work.
// rest is where the fetch's remaining messages are (restart drains them).
func (c *consumer) drain(ctx context.Context, ch <-chan jetstream.Msg) (seq uint64, delay time.Duration, n int, rest <-chan jetstream.Msg) {
	prefetching := false
	for {
		jm, ok := <-ch
		if !ok {
			return 0, 0, n, ch
		}
		if c.prepare != nil && !prefetching && behind(jm) {
			pctx, cancel := context.WithCancel(ctx)
			c.prepCancel = cancel
			ch, prefetching = c.prefetch(pctx, jm, ch), true
			jm = <-ch // jm again, on its way to being prepared: prefetch passes it on first
		}
		group, size := []jetstream.Msg{jm}, len(jm.Data())
	more:
		for len(group) < MaxInFlight && size < maxGroupBytes {
			select {
			case jm, ok := <-ch:
				if !ok {
					break more
				}
				group, size = append(group, jm), size+len(jm.Data())
			default:
				break more
			}
		}
		if meta, err := group[0].Metadata(); err == nil && c.lastAcked.Load() > 0 {
			// Messages are acked in order, so the next one expected is the
			// one after the last acked.
			if next := c.lastAcked.Load() + 1; meta.Sequence.Stream > next && c.holeAt != next {
				c.log.Debug().Uint64("expected", next).Uint64("got", meta.Sequence.Stream).Msg("messages delivered but not received: delivering again from the first")
				c.holeAt = next
				return next, 0, n + len(group), ch
			}
		}
		n += len(group)
		if seq := c.deliver(ctx, group); seq > 0 {
			return seq, NakDelay, n, ch
		}
	}
}

// stopPrepare cancels the Prepares of the fetch just drained, if any: its
// messages were all handled, or are to be delivered again.
func (c *consumer) stopPrepare() {
	if c.prepCancel != nil {
		c.prepCancel()
		c.prepCancel = nil
	}
}

// behind reports whether messages wait in the stream after jm for this
// consumer.
func behind(jm jetstream.Msg) bool {
	meta, err := jm.Metadata()
	return err == nil && meta.NumPending > 0
}

// restart makes the durable deliver again from seq: it deletes it (its
// pending messages with it), lets the fetch in flight end, waits delay and
// has run create it anew at seq.
func (c *consumer) restart(ctx context.Context, seq uint64, delay time.Duration, rest <-chan jetstream.Msg) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := c.b.DeleteConsumer(dctx, c.stream, c.durable)
	cancel()
	if err != nil {
		// The durable stays: JetStream redelivers what was not acked
		// after AckWait, possibly out of order; the handler detects a gap.
		c.log.Warn().Err(err).Uint64("seq", seq).Msg("cannot reset the consumer for a redelivery: messages come back after the ack wait")
	}
	if rest != nil {
		for range rest { // ends with the deleted consumer's pull, or at pollWait
		}
	}
	c.cons, c.restartAt = nil, seq
	backoff.Sleep(ctx, delay)
}

// deliver hands one group to the handler and returns the sequence of the
// first message it did not ack (0: all acked, or stopping).
func (c *consumer) deliver(ctx context.Context, group []jetstream.Msg) uint64 {
	msgs := make([]*Msg, 0, len(group))
	for _, jm := range group {
		if e, ok := jm.(*early); ok && e.m != nil {
			msgs = append(msgs, e.m) // wrapped, and being prepared, since it arrived
			continue
		}
		meta, err := jm.Metadata()
		if err != nil {
			c.log.Warn().Err(err).Msg("message without JetStream metadata: terminated")
			_ = jm.Term()
			continue
		}
		msgs = append(msgs, c.wrap(jm, meta.Sequence.Stream))
	}
	if ctx.Err() == nil && len(msgs) > 0 {
		c.handle(ctx, msgs)
	}
	if ctx.Err() != nil {
		// Stopping: what was not acked stays pending; the next Consume
		// on this durable creates it anew after its ack floor.
		return 0
	}
	for _, m := range msgs {
		if !m.acked.Load() {
			return m.StreamSeq
		}
	}
	return 0
}

// wrap makes the Msg handed to the handler for jm.
func (c *consumer) wrap(jm jetstream.Msg, seq uint64) *Msg {
	m := &Msg{Data: jm.Data(), StreamSeq: seq}
	m.Ack = func() error {
		if m.naked.Load() {
			return fmt.Errorf("ack %s/%s seq %d: already nak'ed (it will be redelivered)", c.stream, c.durable, seq)
		}
		if err := jm.Ack(); err != nil {
			return fmt.Errorf("ack %s/%s seq %d: %w (it will be redelivered)", c.stream, c.durable, seq, err)
		}
		m.acked.Store(true)
		for {
			last := c.lastAcked.Load()
			if seq <= last || c.lastAcked.CompareAndSwap(last, seq) {
				return nil
			}
		}
	}
	m.Nak = func() error {
		if m.acked.Load() {
			return fmt.Errorf("nak %s/%s seq %d: already acked", c.stream, c.durable, seq)
		}
		m.naked.Store(true)
		return nil
	}
	if h := jm.Headers(); len(h) > 0 {
		m.Headers = make(map[string]string, len(h))
		for k, v := range h {
			if len(v) > 0 {
				m.Headers[k] = v[0]
			}
		}
	}
	return m
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
