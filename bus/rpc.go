package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

const (
	// ServeConcurrency is how many handlers of one Serve call run at once;
	// further requests wait in the subscription's buffer.
	ServeConcurrency = 16
	// HandlerTimeout bounds the context a Serve handler gets: later than
	// that, no requester is still waiting for the reply.
	HandlerTimeout = 30 * time.Second
	// DefaultRequestTimeout bounds Request and RequestVerified when ctx has
	// no deadline.
	DefaultRequestTimeout = 10 * time.Second
	// replyPendingMsgs and replyPendingBytes bound what RequestVerified
	// buffers of replies it has not checked yet: a stranger flooding the
	// inbox costs at most that much memory (beyond it NATS drops replies,
	// the flood's as much as the real one's, which shows as a timeout).
	replyPendingMsgs  = 1024
	replyPendingBytes = 64 << 20
	// maxReasonLen bounds the refused reply's reason quoted in a timeout
	// error: a stranger chooses that text.
	maxReasonLen = 300
)

// flush makes sure the server has processed what was sent so far, when
// connected; a failure only means the server learns it later.
func (b *Bus) flush() {
	if b.nc.IsConnected() {
		_ = b.nc.FlushTimeout(time.Second)
	}
}

// Serve answers requests on subject with handle's bytes, running at most
// ServeConcurrency handlers at once. A nil reply sends an empty message.
// Messages without a reply subject are dropped.
//
// The subscription is a plain one, in no queue group: on an untrusted bus
// anyone may join a queue group, and a member of the group takes requests
// that the other members then never see. With a plain subscription every
// server of the subject receives every request, and a stranger who
// subscribes too only receives a copy (docs/replication.md, "Names on the
// bus"). So exactly one node may serve a subject: the active node of the
// primary cluster. A handler that returns nil sends no reply at all: another
// server of the subject may be the one to answer.
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
			reply := handle(hctx, m.Data)
			if reply == nil {
				return // the handler chose not to answer (not the holder)
			}
			if err := m.Respond(reply); err != nil {
				log.Warn().Err(err).Msg("reply not sent: the requester will time out")
			}
		}()
	}
	sub, err := b.nc.Subscribe(subject, cb)
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

// startRequest bounds ctx (DefaultRequestTimeout when it has no deadline)
// and fails fast when this node is not connected, rather than queue the
// request for a connection that may come back only after the deadline.
func (b *Bus) startRequest(ctx context.Context, subject string) (context.Context, context.CancelFunc, error) {
	if !b.nc.IsConnected() {
		return ctx, func() {}, fmt.Errorf("request %s: %w: this node is not connected to NATS at %s; check that NATS is running and reachable", subject, ErrUnreachable, b.url)
	}
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultRequestTimeout)
	return ctx, cancel, nil
}

// Request sends data on subject and returns the first reply. ctx bounds the
// wait (DefaultRequestTimeout when it has no deadline). No responders and
// timeouts are ErrUnreachable. On an untrusted bus the first reply may be a
// stranger's: requests whose replies are authenticated use RequestVerified.
func (b *Bus) Request(ctx context.Context, subject string, data []byte) ([]byte, error) {
	ctx, cancel, err := b.startRequest(ctx, subject)
	if err != nil {
		return nil, err
	}
	defer cancel()
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

// RequestVerified sends data on subject with a reply subject of its own (a
// fresh inbox) and passes every reply, in arrival order, to check until check
// accepts one (returns nil); it returns that reply. A reply check refuses is
// dropped and the wait goes on: on an untrusted bus anyone may answer first,
// with garbage, a replay or a forged error, and only the peer's
// authenticated answer may end the wait.
//
// ctx bounds the wait (DefaultRequestTimeout when it has no deadline). When
// it ends, the error wraps ErrUnreachable and says how many replies were
// refused and why the last one was, as text only: a refused reply must never
// be acted on. A "no responders" status ends nothing either: anyone can
// forge one, so it is counted as a refused reply and the wait goes on until
// ctx ends (an absent peer costs the requester its whole deadline).
func (b *Bus) RequestVerified(ctx context.Context, subject string, data []byte, check func(reply []byte) error) ([]byte, error) {
	if check == nil {
		return nil, errors.New("request: a reply check is required")
	}
	ctx, cancel, err := b.startRequest(ctx, subject)
	if err != nil {
		return nil, err
	}
	defer cancel()
	inbox := b.nc.NewInbox()
	sub, err := b.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w (%s)", subject, err, b.hint(err))
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := sub.SetPendingLimits(replyPendingMsgs, replyPendingBytes); err != nil {
		return nil, fmt.Errorf("request %s: %w", subject, err)
	}
	if err := b.nc.PublishRequest(subject, inbox, data); err != nil {
		if errors.Is(err, nats.ErrMaxPayload) {
			return nil, fmt.Errorf("request %s: %w: %d bytes, max_payload %d", subject, ErrTooLarge, len(data), b.nc.MaxPayload())
		}
		return nil, fmt.Errorf("request %s: %w (%s)", subject, err, b.hint(err))
	}
	start := time.Now()
	refused, last := 0, ""
	for {
		m, err := sub.NextMsgWithContext(ctx)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return nil, b.noAnswer(subject, time.Since(start), refused, last, ctx.Err())
		case errors.Is(err, nats.ErrSlowConsumer):
			refused, last = refused+1, "replies dropped: more arrived than the inbox holds (a flood?)"
			continue
		case errors.Is(err, nats.ErrNoResponders):
			refused, last = refused+1, noResponders
			continue
		default:
			return nil, fmt.Errorf("request %s: %w: %w (%s)", subject, ErrInterrupted, err, b.hint(err))
		}
		if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
			refused, last = refused+1, noResponders
			continue
		}
		if err := check(m.Data); err != nil {
			refused, last = refused+1, err.Error()
			continue
		}
		return m.Data, nil
	}
}

const noResponders = "no responders: nothing served the subject when the request arrived (or someone forged that status); check that the peer cluster is running, has replication enabled and uses the same NATS system"

// noAnswer is RequestVerified's error when ctx ends: ErrUnreachable with the
// cause and the last refused reply's reason.
func (b *Bus) noAnswer(subject string, waited time.Duration, refused int, last string, cause error) error {
	if !b.nc.IsConnected() {
		return fmt.Errorf("request %s: %w: this node is not connected to NATS at %s; check that NATS is running and reachable: %w", subject, ErrUnreachable, b.url, cause)
	}
	if refused == 0 {
		return fmt.Errorf("request %s: %w: no reply in %s; check the peer cluster's health and load: %w", subject, ErrUnreachable, waited.Round(time.Millisecond), cause)
	}
	if len(last) > maxReasonLen {
		last = strings.ToValidUTF8(last[:maxReasonLen], "") + "..."
	}
	return fmt.Errorf("request %s: %w: no authenticated reply in %s; %d replies refused, the last because: %q: %w",
		subject, ErrUnreachable, waited.Round(time.Millisecond), refused, last, cause)
}
