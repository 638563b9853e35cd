package core

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/cofferhq/coffer/barrier"
	"github.com/cofferhq/coffer/forwarder"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
	"github.com/rs/zerolog"
)

// Replication is the replication-modes layer as core sees it: package
// replmode implements it and is attached with SetReplication. Core asks it
// which mode the cluster is in, hands it the sys/replication/* requests, and
// gets from it the forwarding client on a secondary; it never sees NATS.
type Replication interface {
	// Start restarts the role stored in this cluster's storage; core calls
	// it once the barrier is open (unseal). It is a no-op while a transition
	// that replaces the data (activation) is running.
	Start(ctx context.Context) error
	// Stop stops the role's goroutines (seal, shutdown).
	Stop()
	// Mode is the performance replication mode: "disabled", "primary" or "secondary".
	Mode() string
	// DRMode is the DR replication mode: "disabled", "primary" or
	// "secondary". A DR secondary serves no client request but
	// sys/replication/*, the DR operation token endpoints and the status
	// endpoints httpapi serves itself.
	DRMode() string
	// HandleRequest serves sys/replication/<path> (path without "sys/").
	HandleRequest(ctx context.Context, req *logical.Request, path string) (*logical.Response, error)
	// Forwarder is the forwarding client of a secondary, nil otherwise.
	Forwarder() *forwarder.Client
	// Position returns, on a secondary, the replication set's id (for
	// X-Vault-Index: it may name the set's generation) and the primary's WAL
	// index applied here; on a primary its own set id and WAL index; ok is
	// false elsewhere.
	Position() (setID string, replicated uint64, ok bool)
	// PrimaryAPIAddr is the primary's API address a secondary knows ("" when unknown).
	PrimaryAPIAddr() string
	// ShippedIndex is, on a primary, the WAL index its shipper has published
	// (the WAL collector keeps what is not yet shipped); ok is false elsewhere.
	ShippedIndex() (index uint64, ok bool)
	// Status renders sys/replication/performance/status (for sys/health's mode too).
	Status() map[string]any
	// WriteRefusal is nil while this cluster may take writes; on a primary
	// fenced by a newer generation of its replication set it is the error
	// (503) that names the holder and what to do. sys/replication/* stays
	// open, so the operator can demote.
	WriteRefusal() error
	// ActivationPending reports an activation that has not completed (running,
	// interrupted by a restart, or failed): this cluster's data belongs to
	// it, so sys/init is refused.
	ActivationPending() bool
	// HandleSealed serves sys/replication/<path> while the barrier is sealed
	// or the data is being replaced: the unauthenticated status and, for a
	// pending activation, its retry. req carries no authenticated caller.
	HandleSealed(ctx context.Context, req *logical.Request, path string) (*logical.Response, error)
}

// Replication modes as Replication.Mode reports them.
const (
	ModeDisabled  = "disabled"
	ModePrimary   = "primary"
	ModeSecondary = "secondary"
)

// noReplication is the Replication of a core nobody attached one to.
type noReplication struct{}

func (noReplication) Start(context.Context) error { return nil }
func (noReplication) Stop()                       {}
func (noReplication) Mode() string                { return ModeDisabled }
func (noReplication) DRMode() string              { return ModeDisabled }
func (noReplication) HandleRequest(context.Context, *logical.Request, string) (*logical.Response, error) {
	return nil, logical.InvalidRequest("replication is not available on this server: it was started without a NATS bus; add bus { embedded = true } or bus { url = \"nats://...\" } to the configuration (dev servers embed one)")
}
func (noReplication) Forwarder() *forwarder.Client     { return nil }
func (noReplication) Position() (string, uint64, bool) { return "", 0, false }
func (noReplication) PrimaryAPIAddr() string           { return "" }
func (noReplication) ShippedIndex() (uint64, bool)     { return 0, false }
func (noReplication) Status() map[string]any           { return map[string]any{"mode": ModeDisabled} }
func (noReplication) ActivationPending() bool          { return false }
func (noReplication) WriteRefusal() error              { return nil }
func (noReplication) HandleSealed(context.Context, *logical.Request, string) (*logical.Response, error) {
	return nil, ErrSealed
}

// SetReplication attaches the replication layer. Call it once, before Start
// or the first unseal.
func (c *Core) SetReplication(r Replication) {
	c.replMu.Lock()
	c.repl = r
	c.replMu.Unlock()
}

func (c *Core) replication() Replication {
	c.replMu.RLock()
	defer c.replMu.RUnlock()
	if c.repl == nil {
		return noReplication{}
	}
	return c.repl
}

func (c *Core) replMode() string { return c.replication().Mode() }

// What the replication layer needs from core (replmode.Host).

// Physical is the raw storage, below the barrier.
func (c *Core) Physical() storage.Transactional { return c.phys }

// Classify gives each storage key its replication class.
func (c *Core) Classify(key string) wal.Class { return c.classify(key) }

// MountOfKey is the route path of the mount whose data the storage key
// is ("secret/", "auth/userpass/"): what a paths filter decides on. ok is
// false for a key outside every mount's data (configuration, or the data of
// a mount no longer mounted).
func (c *Core) MountOfKey(key string) (path string, ok bool) { return c.router.mountOfKey(key) }

// ClusterID is this cluster's id ("" before the first unseal).
func (c *Core) ClusterID() string {
	if id := c.clusterIDv.Load(); id != nil {
		return *id
	}
	return ""
}

// APIAddr is this server's advertised API address.
func (c *Core) APIAddr() string { return c.cfg.APIAddr }

// Logger is core's logger, for the layers attached to it.
func (c *Core) Logger() zerolog.Logger { return c.logger }

// CreateRootToken creates a root token with the given id (the dev root token
// an activation bundle carries).
func (c *Core) CreateRootToken(ctx context.Context, id string) error {
	_, err := c.tokens.CreateRoot(ctx, id)
	return err
}

// Invalidate reloads what depends on keys that replication (a batch or a
// sync) changed underneath the logical layer.
func (c *Core) Invalidate(keys []string) {
	ctx := context.Background()
	var mounts, audit, policies, keyring bool
	for _, k := range keys {
		switch {
		case k == mountsPath || k == authPath:
			mounts = true
		case k == auditTablePath:
			audit = true
		case strings.HasPrefix(k, policyPrefix):
			policies = true
		case k == barrier.KeyringPath:
			keyring = true
		case k == batchTokenPublicKeyPath, k == batchTokenSigningKeyPath:
			c.tokens.InvalidateBatchKeys()
		}
	}
	if c.barrier.Sealed() {
		return
	}
	if keyring {
		if err := c.barrier.Reload(ctx); err != nil {
			c.logger.Error().Err(err).Msg("reload the replicated keyring")
			if c.standby.Load() {
				// The active node replaced the keyring under another root
				// key (an activation): this standby seals, and unseals again
				// with what the storage holds now (an auto-unseal seal does
				// it by itself; shamir needs sys/unseal).
				c.resealStandby()
				return
			}
		}
	}
	if policies {
		c.policies.invalidate()
	}
	if mounts {
		c.mountMu.Lock()
		if err := c.loadMounts(ctx); err != nil {
			c.logger.Error().Err(err).Msg("reload replicated mount tables")
		}
		c.mountMu.Unlock()
	}
	if audit {
		if err := c.loadAudit(ctx); err != nil {
			c.logger.Error().Err(err).Msg("reload replicated audit devices")
		}
	}
}

// Replacement is what ReplaceData runs while the logical layer is down.
type Replacement struct {
	// Wipe deletes what the transition replaces (below the barrier).
	Wipe func(ctx context.Context) error
	// Fill brings the new data in (the secondary's first sync). It may open
	// the barrier itself as soon as the new keyring has arrived.
	Fill func(ctx context.Context) error
	// ClusterID is the cluster's id after the replacement: the current one
	// (an activation resumed at boot, after the wipe took the stored
	// identity), or the primary's (a DR secondary is a copy of it); "" keeps
	// the current one.
	ClusterID string
}

// ReplaceData replaces this cluster's data under a running replication
// role: it takes the logical layer down, runs r.Wipe, resets the merkle index,
// runs r.Fill, then opens the barrier with root (the new keyring), rewrites
// this cluster's identity under it and brings the logical layer up again.
// A failure leaves the cluster sealed; the error says what to do. Meanwhile
// init, unseal and seal answer ErrReplacing.
func (c *Core) ReplaceData(ctx context.Context, root []byte, r Replacement) error {
	c.stateMu.Lock()
	if c.replacing {
		c.stateMu.Unlock()
		return ErrReplacing
	}
	c.replacing = true
	c.replacingNow.Store(true)
	if id := r.ClusterID; id != "" {
		c.clusterIDv.Store(&id)
	}
	c.sealLockedKeepRepl()
	c.stateMu.Unlock()
	err := c.replaceData(ctx, r)
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	c.replacing = false
	defer c.replacingNow.Store(false)
	if err != nil {
		return err
	}
	// This cluster keeps its identity, re-encrypted with the new keyring.
	if c.barrier.Sealed() {
		if err := c.barrier.Unseal(ctx, root); err != nil {
			return fmt.Errorf("open the primary's keyring: %w", err)
		}
	}
	if err := putJSON(ctx, c.barrier, clusterInfoPath, clusterInfo{Name: c.clusterName, ID: c.ClusterID()}); err != nil {
		return fmt.Errorf("store cluster identity: %w", err)
	}
	// The wipe took the token salt: a fresh store, or tokens would be keyed
	// by a salt that no longer exists.
	c.tokens = c.newTokenStore()
	if err := c.unsealLocked(ctx, root); err != nil {
		return fmt.Errorf("unseal with the primary's keyring: %w", err)
	}
	return nil
}

// replaceData runs a replacement's steps, without stateMu: a sync can take
// minutes, and status readers must not wait for it.
func (c *Core) replaceData(ctx context.Context, r Replacement) error {
	c.merkle.live.Stop()
	if err := r.Wipe(ctx); err != nil {
		return err
	}
	// A fresh, empty index: the fill below feeds it through the WAL.
	if err := c.ReindexMerkle(ctx); err != nil {
		return fmt.Errorf("reset the merkle index: %w", err)
	}
	return r.Fill(ctx)
}

// refuseOnSecondary returns the error a replicated write gets on a
// performance secondary, or nil.
func (c *Core) refuseOnSecondary(local bool) error {
	r := c.replication()
	if local || r.Mode() != ModeSecondary {
		return nil
	}
	addr := "its primary"
	if a := r.PrimaryAPIAddr(); a != "" {
		addr = "the primary at " + a
	}
	return logical.Errorf(http.StatusBadRequest, "cannot write to a replicated path on a performance secondary: send the write to %s (local mounts, tokens and logins work here)", addr)
}

// ReplicationStatus renders sys/replication/performance/status.
func (c *Core) ReplicationStatus() map[string]any { return c.replication().Status() }
