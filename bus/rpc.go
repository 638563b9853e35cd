package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

const (
	// QueueGroup is the queue group of every Serve subscription: among the
	// nodes serving a subject, one answers each request.
	QueueGroup = "coffer"
	// ServeConcurrency is how many handlers of one Serve call run at once;
	// further requests wait in the subscription's buffer.
	ServeConcurrency = 16
	// HandlerTimeout bounds the context a Serve handler gets: later than
	// that, no requester is still waiting for the reply.
	HandlerTimeout = 30 * time.Second
	// DefaultRequestTimeout bounds Request when ctx has no deadline.
	DefaultRequestTimeout = 10 * time.Second
)

// flush makes sure the server has processed what was sent so far, when
// connected; a failure only means the server learns it later.
func (b *Bus) flush() {
	if b.nc.IsConnected() {
		_ = b.nc.FlushTimeout(time.Second)
	}
}

// Serve answers requests on subject with handle's bytes, in queue group
// QueueGroup, running at most ServeConcurrency handlers at once. A nil reply
// sends an empty message. Messages without a reply subject are dropped.
// When Serve returns, the server (this one; a NATS cluster propagates
// interest shortly after) routes requests to the new subscription.
// stop unsubscribes, cancels the handlers' context and waits for them to
// return; it is idempotent and Close calls it.
func (b *Bus) Serve(subject string, handle func(ctx context.Context, data []byte) []byte) (stop func(), err error) {
	if subject == "" || handle == nil {
		return nil, errors.New("serve: subject and handler are required")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, ServeConcurrency)
		log  = b.log.With().Str("subject", subject).Logger()
		once sync.Once
		// mu orders cb's wg.Add before stop's wg.Wait: nats.go may still be
		// inside cb when Unsubscribe returns.
		mu      sync.Mutex
		stopped bool
	)
	// cb runs on the subscription's delivery goroutine, which nats.go owns
	// and ends on Unsubscribe; it blocks while ServeConcurrency handlers run.
	cb := func(m *nats.Msg) {
		if m.Reply == "" {
			log.Debug().Msg("request without a reply subject dropped")
			return
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		mu.Lock()
		if stopped {
			mu.Unlock()
			<-sem
			return
		}
		wg.Add(1)
		mu.Unlock()
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			hctx, hcancel := context.WithTimeout(ctx, HandlerTimeout)
			defer hcancel()
			if err := m.Respond(handle(hctx, m.Data)); err != nil {
				log.Warn().Err(err).Msg("reply not sent: the requester will time out")
			}
		}()
	}
	sub, err := b.nc.QueueSubscribe(subject, QueueGroup, cb)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("serve %s: %w (%s)", subject, err, b.hint(err))
	}
	b.flush() // the server knows the subscription when Serve returns
	shutdown := func() {
		if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			log.Warn().Err(err).Msg("unsubscribe")
		}
		b.flush() // the server routes no new request here once stop returns
		mu.Lock()
		stopped = true
		mu.Unlock()
		cancel()
		wg.Wait()
	}
	w := &worker{}
	w.stop = func() {
		once.Do(func() {
			shutdown()
			b.unregister(w)
		})
	}
	if err := b.register(w); err != nil {
		shutdown()
		return nil, fmt.Errorf("serve %s: %w", subject, err)
	}
	return w.stop, nil
}

// Request sends data on subject and waits for one reply. ctx bounds the wait
// (DefaultRequestTimeout when it has no deadline). No responders and
// timeouts are ErrUnreachable.
func (b *Bus) Request(ctx context.Context, subject string, data []byte) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	if !b.nc.IsConnected() {
		// Fail fast rather than queue the request for a connection that
		// may come back only after the caller's deadline.
		return nil, fmt.Errorf("request %s: %w: this node is not connected to NATS at %s; check that NATS is running and reachable", subject, ErrUnreachable, b.url)
	}
	m, err := b.nc.RequestWithContext(ctx, subject, data)
	switch {
	case err == nil:
		return m.Data, nil
	case errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("request %s: %w: nothing serves this subject; check that the peer cluster is running, has replication enabled and uses the same NATS system", subject, ErrUnreachable)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		if !b.nc.IsConnected() {
			return nil, fmt.Errorf("request %s: %w: this node is not connected to NATS at %s; check that NATS is running and reachable: %w", subject, ErrUnreachable, b.url, err)
		}
		return nil, fmt.Errorf("request %s: %w: no reply in time; check the peer cluster's health and load: %w", subject, ErrUnreachable, err)
	default:
		return nil, fmt.Errorf("request %s: %w (%s)", subject, err, b.hint(err))
	}
}
