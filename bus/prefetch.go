package bus

import (
	"context"
	"runtime"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// Prepare is work on one message that does not depend on the messages
// before it (verifying a signature, decrypting): ConsumePrepared runs it as
// soon as the message arrives, on up to GOMAXPROCS goroutines, while the
// handler is still busy with the messages before it. Its result is the
// message's Prepared. It must honour ctx, change no state the handler
// relies on, and be safe to run again: a message delivered again is
// prepared again.
type Prepare func(ctx context.Context, m *Msg) any

// prepared is a Prepare running or done on one message.
type prepared struct {
	done chan struct{}
	v    any
}

// Prepared waits for what the consumer's Prepare made of m and returns it;
// nil when the consumer has none (Consume, ConsumeSubject).
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
// arrives, ahead of the handler (Prepare).
func (b *Bus) ConsumePrepared(ctx context.Context, stream, subject, durable string, startSeq uint64, prepare Prepare, handle func(ctx context.Context, msgs []*Msg)) (stop func(), err error) {
	return b.consume(ctx, stream, subject, durable, startSeq, prepare, handle)
}

// prefetch wraps each message of in as it arrives, starts its Prepare and
// passes it on, in order; the returned channel closes once in has and every
// Prepare it started has returned. It owns one goroutine and one per
// message being prepared, at most GOMAXPROCS at once; a message that arrives
// alone is prepared on the first.
func (c *consumer) prefetch(ctx context.Context, in <-chan jetstream.Msg) <-chan jetstream.Msg {
	out := make(chan jetstream.Msg, MaxInFlight)
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	go func() {
		var wg sync.WaitGroup
		defer close(out)
		defer wg.Wait()
		for jm := range in {
			meta, err := jm.Metadata()
			if err != nil {
				out <- &early{Msg: jm}
				continue
			}
			m := c.wrap(jm, meta.Sequence.Stream)
			p := &prepared{done: make(chan struct{})}
			m.prep = p
			if len(in) == 0 && len(sem) == 0 {
				// Nothing behind it and nothing being prepared (a secondary
				// keeping up): prepare it here, without a goroutine's
				// start and wake-up.
				p.v = c.prepare(ctx, m)
				close(p.done)
				out <- &early{Msg: jm, m: m}
				continue
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer close(p.done)
				defer func() { <-sem }()
				p.v = c.prepare(ctx, m)
			})
			out <- &early{Msg: jm, m: m}
		}
	}()
	return out
}
