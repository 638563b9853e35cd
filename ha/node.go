package ha

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/core"
	"github.com/cofferhq/coffer/internal/backoff"
	"github.com/cofferhq/coffer/storage/consul"
	"github.com/rs/zerolog"
)

// Core is what the driver needs of the node's core.
type Core interface {
	Initialized(ctx context.Context) (bool, error)
	Sealed() bool
	Activate(ctx context.Context) error
	Deactivate()
	// Start unseals the core by itself when its seal can (static seal).
	Start(ctx context.Context) error
}

// DefaultStepDownPause is how long a node that stepped down leaves the lock
// to the others.
const DefaultStepDownPause = 10 * time.Second

// poll is how often the driver looks at the core's seal state.
const poll = 250 * time.Millisecond

// Options configures a Node.
type Options struct {
	// Storage is the shared Consul storage, HA enabled.
	Storage *consul.Backend
	// APIAddr and ClusterAddr are this node's advertised addresses (Vault's
	// api_addr and cluster_addr); standbys forward requests to APIAddr.
	APIAddr, ClusterAddr string
	// Node names the node; derived from APIAddr when empty.
	Node string
	// SessionTTL, LockDelay and CheckInterval tune the lock (consul.LockOptions).
	SessionTTL, LockDelay, CheckInterval time.Duration
	// NoHealthCheck leaves out the agent's health check of APIAddr: the lock
	// is then lost only by the session's TTL (tens of seconds).
	NoHealthCheck bool
	// StepDownPause: DefaultStepDownPause when zero.
	StepDownPause time.Duration
	// OnActive runs after each activation (resuming a replication
	// activation the previous active node left unfinished).
	OnActive func(ctx context.Context)
	Logger   zerolog.Logger
}

// Node drives one node's part in the election.
type Node struct {
	c      Core
	o      Options
	log    zerolog.Logger
	node   string
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	held     *consul.Held
	since    time.Time
	pausedTo time.Time

	leader      atomic.Pointer[leaderRecord] // the lock's holder as last read
	initialized atomic.Bool
	stepDown    chan struct{}
}

// NodeName derives a node's name from its API address: stable across
// restarts, so its health check is replaced rather than duplicated.
func NodeName(apiAddr string) string {
	sum := sha256.Sum256([]byte(apiAddr))
	return "node-" + hex.EncodeToString(sum[:4])
}

// New returns a stopped Node.
func New(c Core, o Options) *Node {
	if o.StepDownPause == 0 {
		o.StepDownPause = DefaultStepDownPause
	}
	n := &Node{c: c, o: o, node: o.Node, stepDown: make(chan struct{}, 1)}
	if n.node == "" {
		n.node = NodeName(o.APIAddr)
	}
	n.log = o.Logger.With().Str("component", "ha").Str("node", n.node).Logger()
	return n
}

// Start runs the election and the watch of the leader until Stop.
func (n *Node) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Add(2)
	go func() { defer n.wg.Done(); n.run(ctx) }()
	go func() { defer n.wg.Done(); n.watch(ctx) }()
}

// Stop deactivates the core, gives the lock up and waits for the goroutines.
func (n *Node) Stop() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.wg.Wait()
	if !n.o.NoHealthCheck {
		n.o.Storage.DeregisterCheck(n.node)
	}
}

// StepDown makes an active node give the lock up for StepDownPause.
func (n *Node) StepDown() {
	select {
	case n.stepDown <- struct{}{}:
	default:
	}
}

// active reports whether this node holds the lock now.
func (n *Node) active() (bool, time.Time, uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.held == nil {
		return false, time.Time{}, 0
	}
	select {
	case <-n.held.Lost:
		return false, time.Time{}, 0
	default:
		return true, n.since, n.held.Index
	}
}

// Status is core.HA's view: who is active and how to reach it.
func (n *Node) Status() core.HAStatus {
	if ok, since, term := n.active(); ok {
		return core.HAStatus{Active: true, LeaderAPIAddr: n.o.APIAddr, LeaderClusterAddr: n.o.ClusterAddr, ActiveSince: since, Term: term}
	}
	l := n.leader.Load()
	if l == nil || l.Node == n.node {
		// Unknown, or stale (this node held the lock when last read): ask
		// Consul once rather than answer "no active node".
		l = n.readLeader()
	}
	if l == nil || l.Node == n.node {
		return core.HAStatus{}
	}
	return core.HAStatus{LeaderAPIAddr: l.APIAddr, LeaderClusterAddr: l.ClusterAddr, ActiveSince: l.Since}
}

// ForwardTo tells httpapi where a standby sends what it does not serve:
// the active node's API address ("" while none is known), and whether this
// node is a standby at all.
func (n *Node) ForwardTo() (string, bool) {
	st := n.Status()
	return st.LeaderAPIAddr, !st.Active
}

func (n *Node) view(ctx context.Context, holding bool) (view, error) {
	// Once initialized, storage stays so: read it until then only.
	init, err := n.initialized.Load(), error(nil)
	if !init {
		init, err = n.c.Initialized(ctx)
		n.initialized.Store(init)
	}
	n.mu.Lock()
	paused := n.pausedTo
	n.mu.Unlock()
	return view{Initialized: init, Sealed: n.c.Sealed(), Holding: holding, SteppedDownUntil: paused, Now: time.Now()}, err
}

// run is the election loop.
func (n *Node) run(ctx context.Context) {
	bo := &backoff.Backoff{Min: 200 * time.Millisecond, Max: 5 * time.Second}
	for ctx.Err() == nil {
		v, err := n.view(ctx, false)
		if err != nil {
			n.log.Warn().Err(err).Msg("cannot read the seal state from storage; retrying")
			backoff.Sleep(ctx, bo.Next())
			continue
		}
		if decide(v) != contend {
			if v.Initialized && v.Sealed {
				// Another node initialized the storage: an auto-unseal
				// seal opens this one too (shamir waits for sys/unseal).
				if err := n.c.Start(ctx); err != nil {
					n.log.Warn().Err(err).Msg("auto-unseal")
					backoff.Sleep(ctx, bo.Next())
					continue
				}
			}
			backoff.Sleep(ctx, poll)
			continue
		}
		held, err := n.acquire(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
				n.log.Warn().Err(err).Msg("cannot take the HA lock; retrying")
				backoff.Sleep(ctx, bo.Next())
			}
			continue
		}
		bo.Reset()
		n.tenure(ctx, held)
	}
}

// acquire contends for the lock until it is held, ctx ends, or the node no
// longer wants it (it sealed meanwhile).
func (n *Node) acquire(ctx context.Context) (*consul.Held, error) {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for actx.Err() == nil {
			backoff.Sleep(actx, poll)
			if v, err := n.view(actx, false); err == nil && decide(v) != contend {
				cancel()
			}
		}
	}()
	since := time.Now().UTC()
	check := ""
	if !n.o.NoHealthCheck {
		check = strings.TrimRight(n.o.APIAddr, "/") +
			"/v1/sys/health?standbyok=true&perfstandbyok=true&sealedcode=200&uninitcode=200&drsecondarycode=200"
	}
	return n.o.Storage.Acquire(actx, consul.LockOptions{
		Node: n.node, SessionTTL: n.o.SessionTTL, LockDelay: n.o.LockDelay, CheckInterval: n.o.CheckInterval, CheckHTTP: check,
		Value: encodeLeader(leaderRecord{Node: n.node, APIAddr: n.o.APIAddr, ClusterAddr: n.o.ClusterAddr, Since: since}),
	})
}

// tenure is one term as the active node: activate, then wait for the end.
func (n *Node) tenure(ctx context.Context, held *consul.Held) {
	n.mu.Lock()
	n.held, n.since = held, time.Now().UTC()
	n.mu.Unlock()
	n.log.Info().Uint64("term", held.Index).Msg("took the HA lock: activating")
	end := func(why string, pause bool) {
		n.c.Deactivate()
		held.Release()
		n.mu.Lock()
		n.held = nil
		if pause {
			n.pausedTo = time.Now().Add(n.o.StepDownPause)
		}
		n.mu.Unlock()
		n.log.Info().Str("why", why).Msg("standby")
	}
	if err := n.c.Activate(ctx); err != nil {
		n.log.Error().Err(err).Msg("activation failed; giving the lock up")
		end("activation failed", true)
		return
	}
	if n.o.OnActive != nil {
		n.o.OnActive(ctx)
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case <-held.Lost:
			n.log.Warn().Err(held.Err()).Msg("lost the HA lock: this node stops writing")
			end("lock lost", false)
			return
		case <-n.stepDown:
			end("stepped down", true)
			return
		case <-ctx.Done():
			end("shutting down", false)
			return
		case <-tick.C:
			if v, err := n.view(ctx, true); err == nil && decide(v) == release {
				end("sealed", false)
				return
			}
		}
	}
}

// readLeader reads the lock once (a second at most) and caches what it holds.
func (n *Node) readLeader() *leaderRecord {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l, _, err := n.o.Storage.CurrentLeader(ctx, 0, 0)
	if err != nil || l.Session == "" {
		return nil
	}
	r, err := decodeLeader(l.Value)
	if err != nil {
		return nil
	}
	n.leader.Store(&r)
	return &r
}

// watch keeps the leader record current with blocking reads of the lock.
func (n *Node) watch(ctx context.Context) {
	var index uint64
	bo := &backoff.Backoff{Min: 200 * time.Millisecond, Max: 5 * time.Second}
	for ctx.Err() == nil {
		l, next, err := n.o.Storage.CurrentLeader(ctx, index, 30*time.Second)
		if err != nil {
			if ctx.Err() == nil {
				backoff.Sleep(ctx, bo.Next())
			}
			continue
		}
		bo.Reset()
		if next < index {
			next = 0
		}
		index = next
		if l.Session == "" {
			n.leader.Store(nil)
			continue
		}
		r, err := decodeLeader(l.Value)
		if err != nil {
			n.log.Warn().Err(err).Msg("the HA lock holds a record this node cannot read")
			n.leader.Store(nil)
			continue
		}
		n.leader.Store(&r)
	}
}
