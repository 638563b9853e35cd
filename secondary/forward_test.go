package secondary_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer/forwarder"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/replication"
)

// applierFunc applies forwarded calls on the primary side of this test.
type applierFunc func(ctx context.Context, c *forwarder.Call) (*logical.Response, uint64, error)

func (f applierFunc) ApplyForwarded(ctx context.Context, c *forwarder.Call) (*logical.Response, uint64, error) {
	return f(ctx, c)
}

// memWindows keeps the primary's forwarding windows in memory.
type memWindows struct {
	mu sync.Mutex
	m  map[string]forwarder.Window
}

func (w *memWindows) Load(_ context.Context, id string) (*forwarder.Window, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	win, ok := w.m[id]
	if !ok {
		return nil, nil
	}
	win.Seen = slices.Clone(win.Seen)
	return &win, nil
}

func (w *memWindows) Save(_ context.Context, id string, win *forwarder.Window) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[string]forwarder.Window{}
	}
	w.m[id] = *win
	return nil
}

// A forwarded request retried with the same id (its reply was lost) is
// answered with the first reply, not applied twice. The request crosses the
// real sealed RPC as opaque bytes; forwarder encodes it and de-duplicates it.
func TestForwardRetryIsNotAppliedTwice(t *testing.T) {
	b := embeddedBus(t)
	var applied atomic.Int64
	c := newCluster(t)
	clk := &clock{}
	cfg := primaryConfig(t, c, b, "dc1", clk)
	srv := forwarder.NewServer(forwarder.ServerConfig{Windows: &memWindows{}, Applier: applierFunc(func(ctx context.Context, call *forwarder.Call) (*logical.Response, uint64, error) {
		n := applied.Add(1)
		return &logical.Response{Data: map[string]any{"applied": n, "by": call.SecondaryID}}, uint64(n), nil
	})})
	cfg.Forward = func(ctx context.Context, sid string, payload []byte) ([]byte, *replication.RPCError) {
		out, err := srv.Handle(ctx, sid, payload)
		if err != nil {
			return nil, &replication.RPCError{Code: replication.CodeBadRequest, Msg: err.Error()}
		}
		return out, nil
	}
	ps := startPrimaryWith(t, c, cfg, clk)
	ss := newSecondarySide(t, "dc2")
	ss.activate(t, ps.token(t, "dc2"))

	forward := func(req *forwarder.Request) (*forwarder.Reply, error) {
		payload, err := forwarder.EncodeRequest(req)
		if err != nil {
			return nil, err
		}
		out, err := ss.s.Forward(context.Background(), payload)
		if err != nil {
			return nil, err
		}
		return forwarder.DecodeReply(out)
	}
	req := &forwarder.Request{ID: "req-1", Seq: 1, Operation: "update", Path: "secret/data/x", Data: json.RawMessage(`{"data":{"v":1}}`)}
	first, err := forward(req)
	if err != nil {
		t.Fatalf("forward: %v", err)
	}
	again, err := forward(req)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if applied.Load() != 1 {
		t.Fatalf("the primary applied the request %d times, want once", applied.Load())
	}
	if string(first.Body) != string(again.Body) || first.WALIndex != again.WALIndex {
		t.Fatalf("the retry got another answer: %s / %s", first.Body, again.Body)
	}
	other := *req
	other.ID, other.Seq = "req-2", 2
	if _, err := forward(&other); err != nil || applied.Load() != 2 {
		t.Fatalf("a new request id must be applied: %v, applied %d", err, applied.Load())
	}
}
