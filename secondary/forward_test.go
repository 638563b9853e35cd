package secondary_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer/replication"
)

// A forwarded request retried with the same id (its reply was lost) is
// answered with the first reply, not applied twice.
func TestForwardRetryIsNotAppliedTwice(t *testing.T) {
	b := embeddedBus(t)
	var applied atomic.Int64
	c := newCluster(t)
	clk := &clock{}
	cfg := primaryConfig(t, c, b, "dc1", clk)
	cfg.Forward = func(ctx context.Context, sid string, req *replication.ForwardRequest) *replication.ForwardReply {
		n := applied.Add(1)
		body, _ := json.Marshal(map[string]any{"data": map[string]any{"applied": n, "by": sid}})
		return &replication.ForwardReply{Status: http.StatusOK, Body: body, WALIndex: uint64(n)}
	}
	ps := startPrimaryWith(t, c, cfg, clk)
	ss := newSecondarySide(t, "dc2")
	ss.activate(t, ps.token(t, "dc2"))

	req := &replication.ForwardRequest{ID: "req-1", Operation: "update", Path: "secret/data/x", Data: json.RawMessage(`{"data":{"v":1}}`)}
	first, err := ss.s.Forward(context.Background(), req)
	if err != nil {
		t.Fatalf("forward: %v", err)
	}
	again, err := ss.s.Forward(context.Background(), req)
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
	other.ID = "req-2"
	if _, err := ss.s.Forward(context.Background(), &other); err != nil || applied.Load() != 2 {
		t.Fatalf("a new request id must be applied: %v, applied %d", err, applied.Load())
	}
}
