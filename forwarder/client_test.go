package forwarder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/logical"
)

// countingApplier stands in for core on the primary: it records each call.
type countingApplier struct {
	applied atomic.Int64
	fail    error
}

func (a *countingApplier) ApplyForwarded(ctx context.Context, c *Call) (*logical.Response, uint64, error) {
	n := a.applied.Add(1)
	if a.fail != nil {
		return nil, uint64(n), a.fail
	}
	return &logical.Response{Data: map[string]any{"n": n, "by": c.SecondaryID, "v": c.Data["v"]}}, uint64(100 + n), nil
}

// memWindows keeps the primary's windows in memory (a restart of the
// primary keeps the store, as storage does).
type memWindows struct{ m map[string][]byte }

func (w *memWindows) Load(_ context.Context, id string) (*Window, error) {
	b, ok := w.m[id]
	if !ok {
		return nil, nil
	}
	var win Window
	return &win, json.Unmarshal(b, &win)
}

func (w *memWindows) Save(_ context.Context, id string, win *Window) error {
	if w.m == nil {
		w.m = map[string][]byte{}
	}
	b, err := json.Marshal(win)
	w.m[id] = b
	return err
}

func newServer(a Applier, w *memWindows) *Server {
	return NewServer(ServerConfig{Applier: a, Windows: w})
}

func newClient(t Transport, wait time.Duration) *Client {
	return NewClient(t, NewSequencer(&memSeq{}), wait)
}

// loopback carries payloads straight into a Server, as the sealed RPC does.
type loopback struct {
	s       *Server
	applied uint64
	down    bool
	silent  bool
}

func (l *loopback) RoundTrip(ctx context.Context, p []byte) ([]byte, error) {
	if l.down {
		return nil, fmt.Errorf("no responders: %w", ErrUnreachable)
	}
	if l.silent {
		return nil, fmt.Errorf("no reply in time: %w", ErrNoAnswer)
	}
	return l.s.Handle(ctx, "dc2", p)
}

func (l *loopback) WaitApplied(ctx context.Context, idx uint64) error {
	if idx <= l.applied {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func TestForwardRetryAppliedOnce(t *testing.T) {
	a := &countingApplier{}
	lb := &loopback{s: newServer(a, &memWindows{}), applied: 1 << 40}
	c := newClient(lb, time.Second)
	req := &Request{ID: "req-1", Seq: 1, Operation: "update", Path: "secret/data/x", Data: []byte(`{"v":1}`)}
	first, err := c.RoundTrip(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.RoundTrip(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if a.applied.Load() != 1 || string(first.Body) != string(again.Body) || first.WALIndex != again.WALIndex {
		t.Fatalf("applied %d times; %s / %s", a.applied.Load(), first.Body, again.Body)
	}
	other := *req
	other.ID, other.Seq = "req-2", 2
	if _, err := c.RoundTrip(context.Background(), &other); err != nil || a.applied.Load() != 2 {
		t.Fatalf("a new id must be applied: %v %d", err, a.applied.Load())
	}
}

func TestForwardResponseAndWait(t *testing.T) {
	a := &countingApplier{}
	lb := &loopback{s: newServer(a, &memWindows{}), applied: 1 << 40}
	c := newClient(lb, 50*time.Millisecond)
	lreq := &logical.Request{Operation: logical.UpdateOperation, Data: map[string]any{"v": "x"}}
	resp, idx, err := c.Forward(context.Background(), "secret/data/x", lreq, &Caller{DisplayName: "root"})
	if err != nil || idx != 101 || resp.Data["by"] != "dc2" || resp.Data["v"] != "x" || len(resp.Warnings) != 0 {
		t.Fatalf("forward: %+v %d %v", resp, idx, err)
	}
	lb.applied = 0 // this cluster never catches up: the answer carries a warning
	resp, _, err = c.Forward(context.Background(), "secret/data/x", lreq, nil)
	if err != nil || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "had not replicated it") {
		t.Fatalf("want a warning: %+v %v", resp, err)
	}
}

func TestForwardErrors(t *testing.T) {
	a := &countingApplier{fail: logical.Errorf(http.StatusNotFound, "no handler")}
	lb := &loopback{s: newServer(a, &memWindows{}), applied: 1 << 40}
	c := newClient(lb, time.Second)
	lreq := &logical.Request{Operation: logical.UpdateOperation}
	_, _, err := c.Forward(context.Background(), "nope/x", lreq, nil)
	if logical.StatusCode(err) != http.StatusNotFound || !strings.Contains(err.Error(), "no handler") {
		t.Fatalf("primary's error: %v", err)
	}
	// The allow-list is checked on the primary: nothing is applied.
	before := a.applied.Load()
	_, _, err = c.Forward(context.Background(), "sys/seal", lreq, nil)
	if logical.StatusCode(err) != http.StatusForbidden || a.applied.Load() != before {
		t.Fatalf("sys/seal forwarded: %v", err)
	}
	lb.down = true
	_, _, err = c.Forward(context.Background(), "secret/x", lreq, nil)
	if logical.StatusCode(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "could not be reached") {
		t.Fatalf("unreachable: %v", err)
	}
	// Sent but unanswered: the client is told the outcome is unknown, not
	// that the write failed.
	lb.down, lb.silent = false, true
	_, _, err = c.Forward(context.Background(), "secret/x", lreq, nil)
	if logical.StatusCode(err) != http.StatusGatewayTimeout || !strings.Contains(err.Error(), "outcome is unknown") {
		t.Fatalf("no answer: %v", err)
	}
	if _, err := lb.s.Handle(context.Background(), "dc2", []byte("junk")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("junk payload: %v", err)
	}
}

// A request captured on the bus and replayed after the primary restarted
// (its retry cache forgotten) is refused by its sequence number, even under
// a fresh request id; nothing is applied twice.
func TestForwardReplayAfterRestartRefused(t *testing.T) {
	a := &countingApplier{}
	windows := &memWindows{}
	s1 := newServer(a, windows)
	req := &Request{ID: "req-1", Seq: 41, Operation: "update", Path: "secret/data/x"}
	payload, err := EncodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Handle(context.Background(), "dc2", payload); err != nil || a.applied.Load() != 1 {
		t.Fatalf("first: %v %d", err, a.applied.Load())
	}
	s2 := newServer(a, windows) // the primary restarted: same storage, empty cache
	for _, id := range []string{"req-1", "req-forged"} {
		replay := *req
		replay.ID = id
		p, _ := EncodeRequest(&replay)
		out, err := s2.Handle(context.Background(), "dc2", p)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := DecodeReply(out)
		if err != nil || rep.Status != http.StatusConflict || a.applied.Load() != 1 {
			t.Fatalf("replay %s: %+v %v, applied %d", id, rep, err, a.applied.Load())
		}
	}
	// Another secondary's numbers are its own.
	if out, err := s2.Handle(context.Background(), "dc3", payload); err != nil || a.applied.Load() != 2 {
		t.Fatalf("dc3: %s %v", out, err)
	}
}
