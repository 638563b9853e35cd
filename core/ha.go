package core

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cofferhq/coffer/barrier"
	"github.com/cofferhq/coffer/internal/clock"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
)

// HA is the node's place among the nodes of its cluster (nodes sharing one
// storage, one of them active), as core sees it. The ha package implements it
// and drives Activate and Deactivate; core never takes a lock itself.
type HA interface {
	// Status reports who is active.
	Status() HAStatus
	// StepDown makes the active node give the lock up (sys/step-down).
	StepDown()
}

// HAStatus is what sys/leader and sys/health show of the HA state.
type HAStatus struct {
	// Active: this node holds the lock.
	Active bool
	// LeaderAPIAddr and LeaderClusterAddr are the active node's (this node's
	// when Active), "" when no node is active.
	LeaderAPIAddr, LeaderClusterAddr string
	// ActiveSince is when the active node took the lock, when known.
	ActiveSince time.Time
	// Term is this node's term as the active node (the lock's index when it
	// took it); 0 when it is not active.
	Term uint64
}

// ErrStandby refuses a request on a standby node that only the active node
// can serve (a write, or a read that would write); httpapi forwards it.
var ErrStandby = errors.New("this node is a standby: the request is served by the active node")

// follow is a standby's view of the log the active node writes: how far its
// caches (mount tables, policies, audit devices, keyring) have followed it.
type follow struct {
	mu   sync.Mutex
	seen uint64
}

// SetHA tells core it is one node of an HA cluster (nil: a single node).
func (c *Core) SetHA(h HA) {
	c.replMu.Lock()
	defer c.replMu.Unlock()
	c.ha = h
}

func (c *Core) haState() (HA, bool) {
	c.replMu.RLock()
	defer c.replMu.RUnlock()
	return c.ha, c.ha != nil
}

// HATerm is this node's term as its cluster's active node; 0 without HA
// or while not active.
func (c *Core) HATerm() uint64 {
	h, ok := c.haState()
	if !ok {
		return 0
	}
	return h.Status().Term
}

// Standby reports whether this node is a standby: it writes nothing and
// serves reads from the shared storage.
func (c *Core) Standby() bool { return c.standby.Load() }

// Activate makes a standby the active node once it holds the lock: the log
// continues from what the previous active node stored, the keyring and the
// logical layer are reloaded from storage, and the token expiration, the
// merkle index (recovered from its pages and the stored log) and replication
// start, as after an unseal.
func (c *Core) Activate(ctx context.Context) error {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if !c.standby.Load() {
		return nil
	}
	if err := c.wal.BecomeWriter(ctx); err != nil {
		return fmt.Errorf("activate: read the log the previous active node left: %w", err)
	}
	c.standby.Store(false)
	if c.barrier.Sealed() || c.replacing {
		c.logger.Info().Msg("active node (sealed)")
		return nil
	}
	if err := c.barrier.Reload(ctx); err != nil {
		c.standbyDownLocked()
		return fmt.Errorf("activate: reload the keyring: %w", mapBarrierErr(err))
	}
	if err := c.standbyUp(ctx); err != nil {
		c.standbyDownLocked()
		return fmt.Errorf("activate: %w", err)
	}
	if err := c.activeUp(ctx); err != nil {
		c.standbyDownLocked()
		return fmt.Errorf("activate: %w", err)
	}
	c.activeTime = clock.Now().UTC()
	c.logger.Info().Uint64("last_wal", c.wal.LastIndex()).Msg("active node")
	return nil
}

// Deactivate makes the active node a standby (the lock is lost or given up):
// replication, token expiration, the merkle index and the WAL collector stop;
// the barrier stays open and reads go on.
func (c *Core) Deactivate() {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if c.standby.Load() {
		return
	}
	c.standbyDownLocked()
	c.logger.Info().Msg("standby node")
}

// standbyDownLocked takes down what only the active node runs. Caller holds stateMu.
func (c *Core) standbyDownLocked() {
	c.standby.Store(true)
	c.wal.StopWriting()
	c.replication().Stop()
	c.tokens.Stop()
	c.stopWALGC()
	c.merkle.mu.Lock()
	_ = c.stopMerkleLocked(context.Background(), false)
	c.merkle.mu.Unlock()
	c.follow.mu.Lock()
	c.follow.seen = c.wal.LastIndex()
	c.follow.mu.Unlock()
}

// followActive brings a standby's caches up to the log the active node has
// stored: one read of wal/meta, then the keys of the new entries invalidate
// what they touch (everything when the entries are gone). A request served
// after it sees every write the active node acknowledged before it started.
func (c *Core) followActive(ctx context.Context) error {
	c.follow.mu.Lock()
	defer c.follow.mu.Unlock()
	last, err := c.wal.Reload(ctx)
	if err != nil {
		return err
	}
	if last <= c.follow.seen {
		c.follow.seen = last
		return nil
	}
	var keys []string
	for after := c.follow.seen; after < last; {
		es, err := c.wal.Read(ctx, after, 512)
		if errors.Is(err, wal.ErrTruncated) {
			keys = []string{mountsPath, authPath, auditTablePath, policyPrefix, barrier.KeyringPath,
				batchTokenPublicKeyPath, batchTokenSigningKeyPath}
			break
		}
		if err != nil {
			return err
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			for _, op := range e.Ops {
				keys = append(keys, op.Key)
			}
			after = e.Index
		}
	}
	c.Invalidate(keys)
	c.follow.seen = last
	return nil
}

// standbyRequest serves a request on a standby: writes go to the active
// node, reads are served here once the caches follow the stored log, and a
// read that turns out to write (a use-limited token) goes to the active too.
func (c *Core) standbyRequest(ctx context.Context, req *Request) (*Response, error) {
	if isWrite(req.Operation) || c.cfg.DisablePerfStandby {
		return nil, ErrStandby
	}
	// Replication runs on the active node only: its state is there.
	if p, err := NormalizePath(req.Path, req.Operation); err != nil || strings.HasPrefix(p, "sys/replication/") {
		return nil, ErrStandby
	}
	if err := c.followActive(ctx); err != nil {
		c.logger.Warn().Err(err).Msg("standby cannot follow the stored log; the active node serves the request")
		return nil, ErrStandby
	}
	resp, err := c.handleRequest(ctx, req)
	if errors.Is(err, storage.ErrNotActive) {
		return nil, ErrStandby
	}
	return resp, err
}

// resealStandby seals a standby whose keyring no longer opens (ha's driver
// unseals it again when its seal can).
func (c *Core) resealStandby() {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if !c.standby.Load() || c.barrier.Sealed() {
		return
	}
	c.sealLockedKeepRepl()
	c.logger.Warn().Msg("standby sealed: the keyring in storage no longer opens with this node's root key (the active node replaced the data)")
}

// Leader reports the HA state: the active node's addresses, whether this
// node is it, and whether this node serves reads as a performance standby.
func (c *Core) Leader(ctx context.Context) (*LeaderStatus, error) {
	h, ha := c.haState()
	if c.barrier.Sealed() && !ha {
		return nil, ErrSealed
	}
	var st HAStatus
	if ha {
		// Without stateMu: sys/leader answers while the node activates.
		st = h.Status()
	} else {
		c.stateMu.RLock()
		st = HAStatus{Active: true, LeaderAPIAddr: c.cfg.APIAddr, ActiveSince: c.activeTime}
		c.stateMu.RUnlock()
	}
	// active_time is a timestamp in vault/api: an unset time renders as Go's
	// zero time, as Vault does.
	active := time.Time{}.Format(time.RFC3339)
	if !st.ActiveSince.IsZero() {
		active = st.ActiveSince.UTC().Format(time.RFC3339Nano)
	}
	return &LeaderStatus{
		HAEnabled:            ha,
		IsSelf:               st.Active,
		ActiveTime:           active,
		LeaderAddress:        st.LeaderAPIAddr,
		LeaderClusterAddress: st.LeaderClusterAddr,
		PerfStandby:          ha && !st.Active && !c.barrier.Sealed() && !c.cfg.DisablePerfStandby,
		LastWAL:              c.wal.LastIndex(),
	}, nil
}

// StepDown makes the active node give its lock up (sys/step-down, root).
func (c *Core) StepDown(ctx context.Context, token string) error {
	if err := c.requireRoot(ctx, token); err != nil {
		return err
	}
	h, ha := c.haState()
	if !ha {
		return Invalidf("this server runs without HA (a single node): there is nothing to step down from")
	}
	if c.standby.Load() {
		return ErrStandby
	}
	c.logger.Info().Msg("stepping down by request")
	h.StepDown()
	return nil
}
