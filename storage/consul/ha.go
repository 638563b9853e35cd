package consul

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cofferhq/coffer/internal/backoff"
	"github.com/cofferhq/coffer/storage"
	"github.com/hashicorp/consul/api"
)

// lockName is the Consul key of the HA lock, under the backend's path. It
// starts with ".", which encodeKey always escapes at the start of a key: no
// storage key can encode to it, and List leaves it out.
const lockName = ".ha/lock"

// HA defaults, as in Vault's consul storage except the lock delay: Coffer's
// writes are fenced by the session itself (every transaction checks it), so
// a node that lost the lock cannot write after it, and the delay only has to
// outlast a request in flight.
const (
	DefaultSessionTTL    = 15 * time.Second
	DefaultLockDelay     = time.Second
	DefaultCheckInterval = time.Second
	minSessionTTL        = 10 * time.Second // Consul's own minimum
)

// ErrLockLost wraps a write refused because this node's session no longer
// holds the lock: another node may be active. Nothing was applied.
var ErrLockLost = errors.New("consul storage: this node's session no longer holds the HA lock")

// fence is the session a write must still hold the lock with.
type fence struct{ session string }

// holding returns the session writes are fenced with, or an error when the
// backend is in HA mode and holds nothing.
func (b *Backend) holding() (string, error) {
	if !b.ha {
		return "", nil
	}
	f := b.fence.Load()
	if f == nil {
		return "", fmt.Errorf("consul storage: %w: this node is a standby (it does not hold the cluster's HA lock); "+
			"writes go to the active node", storage.ErrNotActive)
	}
	return f.session, nil
}

// HAEnabled reports whether writes need the HA lock.
func (b *Backend) HAEnabled() bool { return b.ha }

// LockKey is the Consul key of the HA lock.
func (b *Backend) LockKey() string { return b.path + lockName }

// Leader is what the lock's holder wrote in it: its identity and addresses.
type Leader struct {
	Value   []byte // the holder's value ("" when nobody holds the lock)
	Session string
	// Index is the lock key's modify index when it was acquired: it only
	// grows from one holder to the next (a term).
	Index uint64
}

// CurrentLeader reads the lock; a zero Leader when nobody holds it.
// waitIndex > 0 makes it a blocking query: it returns when the key changes
// past waitIndex or after wait, with the index to wait on next.
func (b *Backend) CurrentLeader(ctx context.Context, waitIndex uint64, wait time.Duration) (Leader, uint64, error) {
	q := b.query(ctx)
	q.WaitIndex, q.WaitTime = waitIndex, wait
	pair, meta, err := b.kv.Get(b.LockKey(), q)
	if err != nil {
		return Leader{}, waitIndex, b.wrap(ctx, "read the HA lock", err, false)
	}
	next := meta.LastIndex
	if pair == nil || pair.Session == "" {
		return Leader{}, next, nil
	}
	return Leader{Value: append([]byte(nil), pair.Value...), Session: pair.Session, Index: pair.ModifyIndex}, next, nil
}

// LockOptions tunes an Elector.
type LockOptions struct {
	// Node names this node in the session and its health check.
	Node string
	// Value is stored in the lock while this node holds it (its addresses).
	Value []byte
	// SessionTTL: a node whose session is not renewed within it loses the lock
	// (Consul may take up to twice as long to notice). At least 10 s.
	SessionTTL time.Duration
	// LockDelay: after a session holding the lock is invalidated, no one may
	// take the lock for this long.
	LockDelay time.Duration
	// CheckHTTP, when set, is an URL Consul's agent polls every
	// CheckInterval: two failures in a row invalidate the session at once,
	// so a dead or frozen active node loses the lock in a few seconds rather
	// than a session TTL.
	CheckHTTP     string
	CheckInterval time.Duration
}

// Held is one tenure of the lock.
type Held struct {
	// Index is the term: the lock key's modify index after this acquisition,
	// greater than every earlier holder's.
	Index uint64
	// Lost is closed when the lock is lost or released; Err then says why.
	Lost <-chan struct{}

	b       *Backend
	f       *fence
	session string
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
	mu      sync.Mutex
	err     error
	lost    chan struct{}
}

// Err says why the tenure ended (nil while it lasts or after Release).
func (h *Held) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

func (h *Held) end(err error) {
	h.once.Do(func() {
		// Unfence first: from here on this node writes nothing.
		h.b.fence.CompareAndSwap(h.f, nil)
		h.mu.Lock()
		h.err = err
		h.mu.Unlock()
		close(h.lost)
		h.cancel()
	})
}

// Release gives the lock up (step-down, seal, shutdown) and waits for the
// tenure's goroutines. The session is destroyed, which frees the lock for
// the others after the lock delay.
func (h *Held) Release() {
	h.end(nil)
	h.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, _ = h.b.kv.Release(&api.KVPair{Key: h.b.LockKey(), Session: h.session}, (&api.WriteOptions{}).WithContext(ctx))
	_, _ = h.b.session.Destroy(h.session, (&api.WriteOptions{}).WithContext(ctx))
}

func (o *LockOptions) withDefaults() LockOptions {
	r := *o
	if r.SessionTTL == 0 {
		r.SessionTTL = DefaultSessionTTL
	}
	if r.SessionTTL < minSessionTTL {
		r.SessionTTL = minSessionTTL
	}
	if r.LockDelay == 0 {
		r.LockDelay = DefaultLockDelay
	}
	if r.CheckInterval == 0 {
		r.CheckInterval = DefaultCheckInterval
	}
	return r
}

// checkID is the node's health check, registered on the agent.
func checkID(node string) string { return "coffer-ha-" + node }

// registerCheck makes the agent poll o.CheckHTTP; it starts passing.
func (b *Backend) registerCheck(ctx context.Context, o LockOptions) error {
	reg := &api.AgentCheckRegistration{
		ID: checkID(o.Node), Name: "Coffer node " + o.Node + " answers its API",
		AgentServiceCheck: api.AgentServiceCheck{
			HTTP: o.CheckHTTP, Interval: o.CheckInterval.String(), Timeout: o.CheckInterval.String(),
			TLSSkipVerify: true, Status: api.HealthPassing, FailuresBeforeCritical: 2,
		},
	}
	if err := b.agent.CheckRegisterOpts(reg, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return b.wrap(ctx, "register the HA health check", err, true)
	}
	return nil
}

// Acquire blocks until this node holds the lock or ctx ends. On success the
// backend's writes are fenced by the new session: each transaction first
// checks, inside Consul, that the session still holds the lock.
func (b *Backend) Acquire(ctx context.Context, opts LockOptions) (*Held, error) {
	if !b.ha {
		return nil, errors.New("consul storage: HA is disabled (ha_enabled = \"false\"): there is no lock to take")
	}
	o := opts.withDefaults()
	checks := []string{"serfHealth"}
	if o.CheckHTTP != "" {
		if err := b.registerCheck(ctx, o); err != nil {
			return nil, err
		}
		checks = append(checks, checkID(o.Node))
	}
	sid, _, err := b.session.Create(&api.SessionEntry{
		Name: "coffer-ha " + o.Node, TTL: o.SessionTTL.String(), LockDelay: o.LockDelay,
		Behavior: api.SessionBehaviorRelease, NodeChecks: checks,
	}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return nil, b.wrap(ctx, "create the HA session", err, true)
	}
	// Keep the session alive while waiting: a session left to expire would
	// make the next attempt fail and start over with a new one.
	wctx, stopWait := context.WithCancel(ctx)
	waiting := make(chan struct{})
	go func() {
		defer close(waiting)
		for backoff.Sleep(wctx, o.SessionTTL/3) {
			rctx, cancel := context.WithTimeout(wctx, o.SessionTTL/3)
			_, _, _ = b.session.Renew(sid, (&api.WriteOptions{}).WithContext(rctx))
			cancel()
		}
	}()
	destroy := func() {
		stopWait()
		<-waiting
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = b.session.Destroy(sid, (&api.WriteOptions{}).WithContext(dctx))
	}
	var waitIndex uint64
	for {
		ok, _, err := b.kv.Acquire(&api.KVPair{Key: b.LockKey(), Value: o.Value, Session: sid}, (&api.WriteOptions{}).WithContext(ctx))
		if err == nil && ok {
			break
		}
		if ctx.Err() != nil {
			destroy()
			return nil, ctx.Err()
		}
		if err != nil && strings.Contains(err.Error(), "invalid session") {
			destroy()
			return nil, fmt.Errorf("consul storage: the HA session was invalidated while waiting for the lock (this node's health check "+
				"failed, or Consul lost the session): %w", err)
		}
		// Held by another, or within the lock delay: wait for a change,
		// at most the lock delay.
		l, next, rerr := b.CurrentLeader(ctx, waitIndex, o.LockDelay)
		if rerr == nil && l.Session != "" && next != waitIndex {
			waitIndex = next
			continue
		}
		waitIndex = next
		if rerr != nil || l.Session == "" {
			select {
			case <-ctx.Done():
			case <-time.After(o.LockDelay / 4):
			}
		}
	}
	stopWait()
	<-waiting
	pair, _, err := b.kv.Get(b.LockKey(), b.query(ctx))
	if err != nil || pair == nil || pair.Session != sid {
		destroy()
		if err == nil {
			err = errors.New("the lock changed hands at once")
		}
		return nil, fmt.Errorf("consul storage: read the HA lock back: %w", err)
	}
	hctx, cancel := context.WithCancel(context.Background())
	h := &Held{Index: pair.ModifyIndex, b: b, f: &fence{session: sid}, session: sid, cancel: cancel, lost: make(chan struct{})}
	h.Lost = h.lost
	b.fence.Store(h.f)
	h.wg.Add(2)
	go func() { defer h.wg.Done(); h.renew(hctx, o.SessionTTL) }()
	go func() { defer h.wg.Done(); h.monitor(hctx, pair.ModifyIndex, o.SessionTTL) }()
	return h, nil
}

// renew keeps the session alive; a session Consul no longer knows, or no
// successful renewal within a TTL, ends the tenure.
func (h *Held) renew(ctx context.Context, ttl time.Duration) {
	last := time.Now()
	wait := ttl / 3
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		rctx, cancel := context.WithTimeout(ctx, ttl/3)
		entry, _, err := h.b.session.Renew(h.session, (&api.WriteOptions{}).WithContext(rctx))
		cancel()
		switch {
		case err == nil && entry == nil:
			h.end(fmt.Errorf("%w: Consul invalidated the session (TTL or health check)", ErrLockLost))
			return
		case err == nil:
			last, wait = time.Now(), ttl/3
		case time.Since(last) >= ttl-ttl/10:
			h.end(fmt.Errorf("%w: the session could not be renewed for %s: %v", ErrLockLost, time.Since(last).Round(time.Millisecond), err))
			return
		default:
			wait = ttl / 20
		}
	}
}

// monitor watches the lock key: a holder other than this session ends the
// tenure; so do errors for as long as a session TTL.
func (h *Held) monitor(ctx context.Context, index uint64, ttl time.Duration) {
	last := time.Now()
	for ctx.Err() == nil {
		l, next, err := h.b.CurrentLeader(ctx, index, ttl)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if time.Since(last) >= ttl-ttl/10 {
				h.end(fmt.Errorf("%w: the lock could not be read for %s: %v", ErrLockLost, time.Since(last).Round(time.Millisecond), err))
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(ttl / 20):
			}
			continue
		}
		last = time.Now()
		if l.Session != h.session {
			h.end(fmt.Errorf("%w: the lock is now held by session %q", ErrLockLost, l.Session))
			return
		}
		if next < index {
			next = 0 // Consul's index went backwards (a restore): start over
		}
		index = next
	}
}

// DeregisterCheck removes this node's health check from the agent (shutdown).
func (b *Backend) DeregisterCheck(node string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = b.agent.CheckDeregisterOpts(checkID(node), (&api.QueryOptions{}).WithContext(ctx))
}
