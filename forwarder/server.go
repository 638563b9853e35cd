package forwarder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/cofferhq/coffer/logical"
)

// Call is a decoded forwarded request as core applies it.
type Call struct {
	SecondaryID string
	Operation   logical.Operation
	Path        string
	Data        map[string]any
	RemoteAddr  string
	Caller      Caller
}

// Applier is core on the primary: it runs a forwarded call on its router
// without a token check (the secondary did it; the RPC is authenticated as
// that secondary) and returns the backend's response and the primary's WAL
// index after it. The index is returned on failure too: the secondary waits
// for nothing then, but a client may still learn how far the primary is.
type Applier interface {
	ApplyForwarded(ctx context.Context, call *Call) (*logical.Response, uint64, error)
}

// ServerConfig configures a Server.
type ServerConfig struct {
	Applier Applier
	// StatusOf maps an error of Applier to the HTTP status the client gets.
	StatusOf func(error) int
	// Windows persists, per secondary, the sequence numbers admitted
	// (replay protection across restarts). Required.
	Windows WindowStore
	// Now is the clock of the retry cache (time.Now when nil).
	Now func() time.Time
}

// Server is the primary's side of forwarding. Handle is safe for concurrent use.
type Server struct {
	cfg   ServerConfig
	cache *replyCache
	guard *guard
}

// NewServer returns a server for cfg.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StatusOf == nil {
		cfg.StatusOf = logical.StatusCode
	}
	return &Server{cfg: cfg, cache: newReplyCache(), guard: &guard{store: cfg.Windows}}
}

// ErrStillRunning: a retry arrived while the first attempt of the same
// request is still being applied, and the retry's context ended first.
var ErrStillRunning = errors.New("the first attempt of this forwarded request is still running")

// Handle applies one encoded Request from secondaryID and returns the
// encoded Reply. A request id seen from the same secondary within the retry
// window is answered with the first reply, never applied twice. An error
// means the payload was not a request (the caller answers "bad request") or
// that a retry gave up waiting for its first attempt.
func (s *Server) Handle(ctx context.Context, secondaryID string, payload []byte) ([]byte, error) {
	req, err := DecodeRequest(payload)
	if err != nil {
		return nil, err
	}
	var encErr error
	out, ok := s.cache.do(ctx, secondaryID+"\x00"+req.ID, s.cfg.Now(), func() []byte {
		b, err := EncodeReply(s.apply(ctx, secondaryID, req))
		encErr = err
		return b
	})
	switch {
	case !ok:
		return nil, ErrStillRunning
	case encErr != nil:
		return nil, encErr
	case out == nil:
		return nil, context.Canceled
	}
	return out, nil
}

// apply runs one request through the allow-list and the Applier.
func (s *Server) apply(ctx context.Context, secondaryID string, req *Request) *Reply {
	var lastWAL uint64
	fail := func(err error) *Reply {
		return &Reply{Status: s.cfg.StatusOf(err), Errors: []string{err.Error()}, WALIndex: lastWAL}
	}
	if err := Allowed(req.Operation, req.Path); err != nil {
		return fail(logical.Errorf(http.StatusForbidden, "the primary refuses this forwarded request: %v", err))
	}
	// Admitted (and stored) before it is applied: a crash in between loses
	// the write rather than letting a replay apply it again.
	if err := s.guard.admit(ctx, secondaryID, req.Seq); err != nil {
		if errors.Is(err, ErrReplay) {
			return fail(logical.Errorf(http.StatusConflict, "%v", err))
		}
		return fail(logical.Errorf(http.StatusServiceUnavailable, "the primary could not record this forwarded request, it was not applied: %v", err))
	}
	data := map[string]any{}
	if len(req.Data) > 0 {
		dec := json.NewDecoder(bytes.NewReader(req.Data))
		dec.UseNumber()
		if err := dec.Decode(&data); err != nil {
			return fail(logical.InvalidRequest("forwarded body: %v", err))
		}
	}
	call := &Call{
		SecondaryID: secondaryID, Operation: logical.Operation(req.Operation), Path: req.Path,
		Data: data, RemoteAddr: req.RemoteAddr,
		Caller: Caller{DisplayName: req.CallerDisplayName, Policies: req.CallerPolicies},
	}
	resp, idx, err := s.cfg.Applier.ApplyForwarded(ctx, call)
	lastWAL = idx
	if err != nil {
		return fail(err)
	}
	reply := &Reply{Status: http.StatusOK, WALIndex: idx}
	if resp != nil {
		b, err := json.Marshal(body{Data: resp.Data, Auth: resp.Auth, Warnings: resp.Warnings, StatusCode: resp.StatusCode})
		if err != nil {
			return fail(fmt.Errorf("encode the forwarded response: %w", err))
		}
		reply.Body = b
	}
	return reply
}

// The retry window: how long the reply to a forwarded write is kept. A
// secondary retries a lost reply within its RPC timeout; five minutes is far
// beyond that. Kept in memory: a primary restart forgets it (docs/replication.md).
const (
	replyTTL     = 5 * time.Minute
	replyMaxKept = 100000
)

// replyCache remembers replies by (secondary, request id) so a retried
// forward is answered, not applied twice. A request still running when its
// retry arrives makes the retry wait for the first answer.
type replyCache struct {
	mu      sync.Mutex
	entries map[string]*replyEntry
}

type replyEntry struct {
	done    chan struct{}
	reply   []byte
	expires time.Time
}

func newReplyCache() *replyCache {
	return &replyCache{entries: map[string]*replyEntry{}}
}

// do runs fn once per key within replyTTL and returns its reply to every caller.
func (rc *replyCache) do(ctx context.Context, key string, now time.Time, fn func() []byte) ([]byte, bool) {
	rc.mu.Lock()
	if e, ok := rc.entries[key]; ok && now.Before(e.expires) {
		rc.mu.Unlock()
		select {
		case <-e.done:
			return e.reply, true
		case <-ctx.Done():
			return nil, false
		}
	}
	if len(rc.entries) >= replyMaxKept {
		for k, e := range rc.entries {
			if !now.Before(e.expires) {
				delete(rc.entries, k)
			}
		}
	}
	e := &replyEntry{done: make(chan struct{}), expires: now.Add(replyTTL)}
	rc.entries[key] = e
	rc.mu.Unlock()
	e.reply = fn()
	close(e.done)
	return e.reply, true
}
