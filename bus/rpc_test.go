package bus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// stranger is a plain nats.go client on the bus: it knows nothing secret but
// may subscribe to anything, in any queue group, and answer anything.
func stranger(t *testing.T, b *bus.Bus) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(b.ClientURL(), nats.Name("stranger"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// realOnly is the requester's check: only the real server's answers pass.
func realOnly(reply []byte) error {
	if !bytes.HasPrefix(reply, []byte("real:")) {
		return fmt.Errorf("not the server's answer: %q", reply)
	}
	return nil
}

// TestRequestVerifiedIgnoresFirstGarbage: a stranger answers every request
// first; the requester passes its answer to the check, refuses it, and
// returns the real server's answer, which came second.
func TestRequestVerifiedIgnoresFirstGarbage(t *testing.T) {
	a := bustest.Start(t)
	answered := make(chan struct{}, 1)
	nc := stranger(t, a)
	sub, err := nc.Subscribe("coffer.c1.rpc.x", func(m *nats.Msg) {
		_ = m.Respond([]byte("garbage"))
		_ = nc.Flush() // the server has routed the garbage before the real answer
		answered <- struct{}{}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	stop, err := a.Serve("coffer.c1.rpc.x", func(ctx context.Context, data []byte) []byte {
		select {
		case <-answered:
		case <-ctx.Done():
		}
		return append([]byte("real:"), data...)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	var mu sync.Mutex
	var seen []string
	reply, err := a.RequestVerified(testCtx(t), "coffer.c1.rpc.x", []byte("hi"), func(r []byte) error {
		mu.Lock()
		seen = append(seen, string(r))
		mu.Unlock()
		return realOnly(r)
	})
	if err != nil || string(reply) != "real:hi" {
		t.Fatalf("reply %q, %v; want the real server's", reply, err)
	}
	if len(seen) != 2 || seen[0] != "garbage" {
		t.Fatalf("the check saw %q; want the garbage first, then the real answer", seen)
	}
}

// TestRequestVerifiedTimesOutWithReason: when only garbage arrives, the
// request waits for its deadline and says why the replies were refused,
// without wrapping the refusal (a refused reply must not be acted on).
func TestRequestVerifiedTimesOutWithReason(t *testing.T) {
	a := bustest.Start(t)
	nc := stranger(t, a)
	sub, err := nc.Subscribe("coffer.c1.rpc.x", func(m *nats.Msg) {
		_ = m.Respond([]byte("forged"))
		_ = m.Respond([]byte("forged again"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	refusal := errors.New("a refusal the caller must not see as an error value")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var checked atomic.Int32
	_, err = a.RequestVerified(ctx, "coffer.c1.rpc.x", []byte("hi"), func(r []byte) error {
		checked.Add(1)
		return fmt.Errorf("reply %q: %w", r, refusal)
	})
	if !errors.Is(err, bus.ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("only garbage: %v, want ErrUnreachable after the deadline", err)
	}
	if !strings.Contains(err.Error(), "2 replies refused") || !strings.Contains(err.Error(), `forged again`) || errors.Is(err, refusal) {
		t.Fatalf("error %q: want the count and the last reason as text only", err)
	}
	if checked.Load() != 2 {
		t.Fatalf("%d replies checked, want 2", checked.Load())
	}

	// Nobody serves the subject: the "no responders" status (which anyone
	// could forge) does not end the wait either; it is the reason given.
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	_, err = a.RequestVerified(ctx2, "coffer.c1.rpc.x", nil, realOnly)
	if !errors.Is(err, bus.ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no responders") {
		t.Fatalf("no responders: %v", err)
	}
	if _, err := a.RequestVerified(ctx2, "x", nil, nil); err == nil {
		t.Fatal("no check accepted")
	}
}

// TestServeJoinsNoQueueGroup: a stranger in any queue group, the one the
// servers used to share included, takes no request away from the server.
func TestServeJoinsNoQueueGroup(t *testing.T) {
	a := bustest.Start(t)
	var served atomic.Int32
	stop, err := a.Serve("coffer.c1.rpc.x", func(_ context.Context, data []byte) []byte {
		served.Add(1)
		return append([]byte("real:"), data...)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	nc := stranger(t, a)
	var stolen atomic.Int32
	for _, group := range []string{"coffer", "coffer.c1", "_INBOX", "q"} {
		if _, err := nc.QueueSubscribe("coffer.c1.rpc.x", group, func(*nats.Msg) { stolen.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		reply, err := a.RequestVerified(ctx, "coffer.c1.rpc.x", fmt.Appendf(nil, "%d", i), realOnly)
		cancel()
		if err != nil || string(reply) != fmt.Sprintf("real:%d", i) {
			t.Fatalf("request %d: %q, %v (the stranger's queue groups took it?)", i, reply, err)
		}
	}
	if served.Load() != n {
		t.Fatalf("the server answered %d of %d requests", served.Load(), n)
	}

}

// A request whose wait is cut by its own connection closing was sent: the
// error says so (ErrInterrupted), and is not "unreachable", which callers
// take for "not sent".
func TestRequestVerifiedInterruptedIsNotUnreachable(t *testing.T) {
	srv := bustest.Start(t)
	cfg := bus.Config{URL: srv.ClientURL()}
	b, err := bus.Open(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	sub, err := srv.Conn().Subscribe("interrupted.subject", func(m *nats.Msg) { got <- m.Data })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := srv.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := b.RequestVerified(context.Background(), "interrupted.subject", []byte("x"), func([]byte) error { return nil })
		errc <- err
	}()
	<-got // the request is out; nobody answers
	_ = b.Close()
	err = <-errc
	if !errors.Is(err, bus.ErrInterrupted) || errors.Is(err, bus.ErrUnreachable) {
		t.Fatalf("a request cut off by its connection closing: %v; want ErrInterrupted, not ErrUnreachable", err)
	}
}
