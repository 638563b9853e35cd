package primary

import (
	"context"
	"sync"
	"time"

	"github.com/cofferhq/coffer/replication"
)

// forwardTTL is how long the reply to a forwarded write is kept for retries.
// A secondary retries a lost reply within its RPC timeout; five minutes is
// far beyond that. Kept in memory: a primary restart forgets it (docs).
const (
	forwardTTL     = 5 * time.Minute
	forwardMaxKept = 100000
)

// forwardCache remembers replies by (secondary, request id) so a retried
// forward is answered, not applied twice. A request still running when its
// retry arrives makes the retry wait for the first answer.
type forwardCache struct {
	mu      sync.Mutex
	entries map[string]*forwardEntry
}

type forwardEntry struct {
	done    chan struct{}
	reply   []byte
	expires time.Time
}

func newForwardCache() *forwardCache {
	return &forwardCache{entries: map[string]*forwardEntry{}}
}

// do runs fn once per key within forwardTTL and returns its reply to every caller.
func (fc *forwardCache) do(ctx context.Context, key string, now time.Time, fn func() []byte) ([]byte, bool) {
	fc.mu.Lock()
	if e, ok := fc.entries[key]; ok && now.Before(e.expires) {
		fc.mu.Unlock()
		select {
		case <-e.done:
			return e.reply, true
		case <-ctx.Done():
			return nil, false
		}
	}
	if len(fc.entries) >= forwardMaxKept {
		for k, e := range fc.entries {
			if !now.Before(e.expires) {
				delete(fc.entries, k)
			}
		}
	}
	e := &forwardEntry{done: make(chan struct{}), expires: now.Add(forwardTTL)}
	fc.entries[key] = e
	fc.mu.Unlock()
	e.reply = fn()
	close(e.done)
	return e.reply, true
}

// handleForward applies a forwarded write through cfg.Forward, once per request id.
func (p *Primary) handleForward(ctx context.Context, id string, payload []byte) ([]byte, *replication.RPCError) {
	if p.cfg.Forward == nil {
		return nil, &replication.RPCError{Code: replication.CodeBadRequest, Msg: "this primary does not accept forwarded writes"}
	}
	var req replication.ForwardRequest
	if err := replication.DecodeMessage(payload, &req); err != nil {
		return nil, &replication.RPCError{Code: replication.CodeBadRequest, Msg: err.Error()}
	}
	var encErr error
	out, ok := p.fwd.do(ctx, id+"\x00"+req.ID, p.cfg.Now(), func() []byte {
		reply := p.cfg.Forward(ctx, id, &req)
		b, err := replication.EncodeMessage(reply)
		if err != nil {
			encErr = err
			return nil
		}
		return b
	})
	switch {
	case !ok:
		return nil, &replication.RPCError{Code: replication.CodeUnavailable, Msg: "the first attempt of this forwarded request is still running"}
	case encErr != nil:
		return nil, internalErr(encErr)
	case out == nil:
		return nil, internalErr(context.Canceled)
	}
	return out, nil
}
