package bus

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"
)

// Prepare is work on one message that does not depend on the messages
// before it (verifying a signature, decrypting). While the consumer is
// behind (more messages wait in the stream), ConsumePrepared runs it as soon
// as each message arrives, on up to GOMAXPROCS goroutines, while the handler
// is still busy with the messages before it; its result is the message's
// Prepared. A consumer keeping up hands each message to the handler as it
// comes, unprepared (Prepared is nil): the handler does the work, and the
// message is not held up by a goroutine's wake-up. Prepare must honour ctx,
// change no state the handler relies on, and be safe to run again: a
// message delivered again is prepared again.
type Prepare func(ctx context.Context, m *Msg) any

// prepared is a Prepare running or done on one message.
type prepared struct {
	done chan struct{}
	v    any
}

// Prepared waits for what the consumer's Prepare made of m and returns it;
// nil when m was not prepared ahead (the consumer kept up, or has no
// Prepare: Consume, ConsumeSubject).
func (m *Msg) Prepared() any {
	if m.prep == nil {
		return nil
	}
	<-m.prep.done
	return m.prep.v
}

// early is a message wrapped, and its Prepare started, as it arrived.
type early struct {
	jetstream.Msg
	m *Msg // nil: no JetStream metadata (deliver terminates it)
}

// ConsumePrepared is ConsumeSubject with prepare run on every message as it
// arrives while the consumer is behind, ahead of the handler (Prepare).
func (b *Bus) ConsumePrepared(ctx context.Context, stream, subject, durable string, startSeq uint64, prepare Prepare, handle func(ctx context.Context, msgs []*Msg)) (stop func(), err error) {
	return b.consume(ctx, stream, subject, durable, startSeq, prepare, handle)
}

// prefetch wraps first, then each message of in as it arrives, passes it on
// at once, in order, and has it prepared: by up to GOMAXPROCS workers, in
// arrival order, or, when it arrives alone (none behind it, none being
// prepared), right here before passing it on, without a worker's wake-up. The returned channel
// closes once in has and every Prepare started has returned. Passing
// messages on before they are prepared keeps the handler's groups as large
// as the messages received (one storage transaction each).
func (c *consumer) prefetch(ctx context.Context, first jetstream.Msg, in <-chan jetstream.Msg) <-chan jetstream.Msg {
	// A fetch brings at most MaxInFlight messages: neither channel fills.
	out := make(chan jetstream.Msg, MaxInFlight)
	work := make(chan *Msg, MaxInFlight)
	go func() {
		var wg sync.WaitGroup
		var pending atomic.Int32 // queued or being prepared by a worker
		workers := 0
		defer close(out)
		defer wg.Wait()
		defer close(work)
		for jm := first; jm != nil; jm = <-in {
			meta, err := jm.Metadata()
			if err != nil {
				out <- &early{Msg: jm}
				continue
			}
			m := c.wrap(jm, meta.Sequence.Stream)
			m.prep = &prepared{done: make(chan struct{})}
			if len(in) == 0 && pending.Load() == 0 {
				m.prep.v = c.prepare(ctx, m)
				close(m.prep.done)
				out <- &early{Msg: jm, m: m}
				continue
			}
			pending.Add(1)
			work <- m
			if workers < runtime.GOMAXPROCS(0) {
				workers++
				wg.Go(func() {
					for m := range work {
						m.prep.v = c.prepare(ctx, m)
						close(m.prep.done)
						pending.Add(-1)
					}
				})
			}
			out <- &early{Msg: jm, m: m}
		}
	}()
	return out
}
