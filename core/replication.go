package core

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/primary"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/secondary"
)

// Replication state in storage (class ignored: never shipped):
//
//	core/replication/mode          {"v":1, "mode": "primary"|"secondary", "secondary_id": ...}  (barrier)
//	core/replication/primary/      the primary package's state (barrier view)
//	core/replication/secondary/    the secondary package's state
const (
	replModePath         = "core/replication/mode"
	replPrimaryPrefix    = "core/replication/primary/"
	replSecondaryPrefix  = "core/replication/secondary/"
	replModeVersion      = 1
	modeDisabled         = "disabled"
	modePrimary          = "primary"
	modeSecondary        = "secondary"
	secondaryReadyWait   = 2 * time.Minute
	replicationStatusKey = "performance"
)

// ReplicationConfig carries what replication needs from the server.
type ReplicationConfig struct {
	// Bus is the NATS connection (embedded or external); nil means replication cannot be enabled.
	Bus *bus.Bus
	// WALStreamMaxAge, WALStreamMaxBytes and WALStreamMaxMsgs bound the WAL stream (0 = unlimited).
	WALStreamMaxAge   time.Duration
	WALStreamMaxBytes int64
	WALStreamMaxMsgs  int64
	WALStreamReplicas int
	// BusTemplate carries the credentials and CA a secondary uses to reach
	// its primary's NATS (the URL comes from the activation token).
	BusTemplate bus.Config
	// BestEffortWALWait bounds how long a secondary holds a forwarded write's
	// response waiting to apply it (default 2s).
	BestEffortWALWait time.Duration
	// HeartbeatInterval between secondary and primary (default 2s).
	HeartbeatInterval time.Duration
	// Dev marks a dev server: the dev root token follows activation.
	Dev bool
}

type replMode struct {
	V                  int    `json:"v"`
	Mode               string `json:"mode"`
	SecondaryID        string `json:"secondary_id,omitempty"`
	PrimaryClusterAddr string `json:"primary_cluster_addr,omitempty"`
	PrimaryAPIAddr     string `json:"primary_api_addr,omitempty"`
}

// replState is the live replication role of this cluster.
type replState struct {
	mode      string
	primary   *primary.Primary
	secondary *secondary.Secondary
	devRoot   string // the dev root token id, for activation bundles
	// clusterAddr is the NATS URL the primary advertises, or the one a
	// secondary follows; primaryAPI the primary's API address (secondary).
	clusterAddr, primaryAPI string
}

func (c *Core) replMode() string {
	c.replMu.RLock()
	defer c.replMu.RUnlock()
	if c.repl.mode == "" {
		return modeDisabled
	}
	return c.repl.mode
}

func (c *Core) primaryConfig() primary.Config {
	rc := c.cfg.Replication
	return primary.Config{
		ClusterID:         c.clusterID,
		APIAddr:           c.cfg.APIAddr,
		BusURL:            c.repl.clusterAddr,
		Bus:               rc.Bus,
		WAL:               c.wal,
		Raw:               c.wal,
		State:             logical.NewView(c.barrier, replPrimaryPrefix),
		Classify:          c.classify,
		RootKey:           c.barrier.RootKey,
		DevRootTokenID:    c.repl.devRoot,
		Stream:            bus.StreamConfig{MaxAge: rc.WALStreamMaxAge, MaxBytes: rc.WALStreamMaxBytes, MaxMsgs: rc.WALStreamMaxMsgs, Replicas: rc.WALStreamReplicas},
		HeartbeatInterval: rc.HeartbeatInterval,
		Forward:           c.HandleForwarded,
		Merkle:            c.Merkle,
		Logger:            c.logger.With().Str("component", "primary").Logger(),
	}
}

// secondaryConfig: the secondary opens its own connection to the primary's
// NATS (the URL in the activation token), not this cluster's bus.
func (c *Core) secondaryConfig() secondary.Config {
	rc := c.cfg.Replication
	return secondary.Config{
		BusConfig:         rc.BusTemplate,
		WAL:               c.wal,
		Raw:               c.phys,
		State:             logical.NewView(c.barrier, replSecondaryPrefix+"secrets/"),
		StateKey:          replSecondaryPrefix + "state",
		Classify:          c.classify,
		OnApplied:         c.onReplicated,
		Merkle:            c.Merkle,
		APIAddr:           c.cfg.APIAddr,
		ClusterID:         c.clusterID,
		HeartbeatInterval: rc.HeartbeatInterval,
		Logger:            c.logger.With().Str("component", "secondary").Logger(),
	}
}

// loadReplication restarts the role stored in storage; called on unseal.
func (c *Core) loadReplication(ctx context.Context) error {
	var m replMode
	ok, err := getJSON(ctx, c.barrier, replModePath, &m)
	if err != nil {
		return fmt.Errorf("load replication mode: %w", err)
	}
	if !ok || m.Mode == modeDisabled {
		return nil
	}
	if m.Mode == modePrimary && c.cfg.Replication.Bus == nil {
		c.logger.Error().Msg("this cluster is a replication primary but no NATS bus is configured: add a bus block to the configuration; replication stays stopped")
		return nil
	}
	c.replMu.Lock()
	defer c.replMu.Unlock()
	c.repl.clusterAddr, c.repl.primaryAPI = m.PrimaryClusterAddr, m.PrimaryAPIAddr
	switch m.Mode {
	case modePrimary:
		p, err := primary.Open(ctx, c.primaryConfig())
		if err != nil {
			return fmt.Errorf("restart replication primary: %w", err)
		}
		c.repl.mode, c.repl.primary = modePrimary, p
	case modeSecondary:
		s, err := secondary.Open(ctx, c.secondaryConfig())
		if err != nil {
			return fmt.Errorf("restart replication secondary: %w", err)
		}
		if err := s.Start(context.Background()); err != nil {
			return fmt.Errorf("restart replication secondary: %w", err)
		}
		c.repl.mode, c.repl.secondary = modeSecondary, s
	}
	return nil
}

// stopReplication stops the role's goroutines (on seal and shutdown).
func (c *Core) stopReplication() {
	c.replMu.Lock()
	defer c.replMu.Unlock()
	if c.repl.primary != nil {
		c.repl.primary.Stop()
		c.repl.primary = nil
	}
	if c.repl.secondary != nil {
		c.repl.secondary.Stop()
		c.repl.secondary = nil
	}
	c.repl.mode = ""
}

// SetDevRootToken records the dev root token id so that activation bundles
// carry it to dev secondaries (the seeds' "Dev-Mode Root Tokens").
func (c *Core) SetDevRootToken(id string) {
	c.replMu.Lock()
	c.repl.devRoot = id
	c.replMu.Unlock()
}

func (c *Core) requireBus() error {
	if c.cfg.Replication.Bus == nil {
		return logical.InvalidRequest("replication needs a NATS bus: add bus { embedded = true } or bus { url = \"nats://...\" } to the configuration (dev servers embed one)")
	}
	return nil
}

// EnablePrimary makes this cluster a performance replication primary.
func (c *Core) EnablePrimary(ctx context.Context, clusterAddr string) error {
	if err := c.requireBus(); err != nil {
		return err
	}
	c.replMu.Lock()
	defer c.replMu.Unlock()
	switch c.repl.mode {
	case modePrimary:
		return logical.InvalidRequest("this cluster is already a performance primary")
	case modeSecondary:
		return logical.InvalidRequest("this cluster is a performance secondary: a replication set has exactly one primary; disable the secondary first")
	}
	if clusterAddr == "" {
		clusterAddr = c.cfg.Replication.Bus.ClientURL()
	}
	c.repl.clusterAddr = clusterAddr
	cfg := c.primaryConfig()
	p, err := primary.Enable(ctx, cfg)
	if err != nil {
		return fmt.Errorf("enable performance primary: %w", err)
	}
	if err := putJSON(ctx, c.barrier, replModePath, replMode{V: replModeVersion, Mode: modePrimary, PrimaryClusterAddr: cfg.BusURL}); err != nil {
		p.Stop()
		return fmt.Errorf("store replication mode: %w", err)
	}
	c.repl.mode, c.repl.primary, c.repl.clusterAddr = modePrimary, p, cfg.BusURL
	c.logger.Info().Str("bus", cfg.BusURL).Msg("performance replication primary enabled")
	return nil
}

// DisablePrimary stops shipping and forgets the replication set.
func (c *Core) DisablePrimary(ctx context.Context) error {
	c.replMu.Lock()
	defer c.replMu.Unlock()
	if c.repl.mode != modePrimary {
		return logical.InvalidRequest("this cluster is not a performance primary")
	}
	c.repl.primary.Stop()
	if err := primary.Disable(ctx, c.primaryConfig()); err != nil {
		return fmt.Errorf("disable performance primary: %w", err)
	}
	if err := c.barrier.Delete(ctx, replModePath); err != nil {
		return err
	}
	c.repl.mode, c.repl.primary = "", nil
	return nil
}

func (c *Core) livePrimary() (*primary.Primary, error) {
	c.replMu.RLock()
	defer c.replMu.RUnlock()
	if c.repl.mode != modePrimary || c.repl.primary == nil {
		return nil, logical.InvalidRequest("this cluster is not a performance primary: enable it with sys/replication/performance/primary/enable")
	}
	return c.repl.primary, nil
}

// EnableSecondary activates this cluster as a secondary of the primary that
// issued token: it wipes storage, takes the primary's keyring and data, and
// streams from then on. The secondary reaches the primary's NATS at the URL
// in the token (or busURL).
func (c *Core) EnableSecondary(ctx context.Context, token, primaryAPIAddr, busURL string) error {
	c.replMu.Lock()
	defer c.replMu.Unlock()
	switch c.repl.mode {
	case modePrimary:
		return logical.InvalidRequest("this cluster is a performance primary: a cluster cannot be both; disable the primary first")
	case modeSecondary:
		return logical.InvalidRequest("this cluster is already a performance secondary: disable it first to join another primary")
	}
	claims, err := replication.ParseToken(token, time.Now())
	if err != nil {
		return logical.InvalidRequest("activation token refused: %v", err)
	}
	if busURL == "" {
		busURL = claims.BusURL
	}
	if primaryAPIAddr == "" {
		primaryAPIAddr = claims.APIAddr
	}
	sec, bundle, err := secondary.Activate(ctx, c.secondaryConfig(), token, busURL)
	if err != nil {
		return logical.InvalidRequest("activation refused: %v", err)
	}
	// From here the cluster's data is replaced: take the logical layer down,
	// wipe storage but for the WAL (its identity is rewritten below), take the
	// primary's data and keyring, bring everything up again.
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	c.sealLockedKeepRepl()
	keep := func(key string) bool {
		return strings.HasPrefix(key, "wal/")
	}
	c.merkle.mu.Lock()
	_ = c.stopMerkleLocked(ctx, false)
	c.merkle.mu.Unlock()
	if err := secondary.Wipe(ctx, c.phys, keep); err != nil {
		sec.Stop()
		return fmt.Errorf("wipe storage for activation: %w (the cluster is sealed; restart it and activate again)", err)
	}
	// A fresh, empty index: the sync below fills it through the WAL.
	if err := c.ReindexMerkle(ctx); err != nil {
		sec.Stop()
		return fmt.Errorf("reset the merkle index: %w", err)
	}
	c.setActivationRoot(bundle.RootKey)
	defer c.setActivationRoot(nil)
	if err := sec.Start(context.Background()); err != nil {
		sec.Stop()
		return fmt.Errorf("start replication: %w", err)
	}
	if err := waitStreaming(ctx, sec, secondaryReadyWait); err != nil {
		sec.Stop()
		return fmt.Errorf("initial sync from the primary: %w (the cluster is sealed; activate again with a new token)", err)
	}
	// This cluster keeps its identity, re-encrypted with the primary's keyring.
	if c.barrier.Sealed() {
		if err := c.barrier.Unseal(ctx, bundle.RootKey); err != nil {
			sec.Stop()
			return fmt.Errorf("open the primary's keyring: %w", err)
		}
	}
	if err := putJSON(ctx, c.barrier, clusterInfoPath, clusterInfo{Name: c.clusterName, ID: c.clusterID}); err != nil {
		sec.Stop()
		return fmt.Errorf("store cluster identity: %w", err)
	}
	// The wipe took the token salt: a fresh store, or tokens would be keyed
	// by a salt that no longer exists.
	c.tokens = c.newTokenStore()
	if err := c.unsealLocked(ctx, bundle.RootKey); err != nil {
		sec.Stop()
		return fmt.Errorf("unseal with the primary's keyring: %w", err)
	}
	mode := replMode{V: replModeVersion, Mode: modeSecondary, SecondaryID: bundle.SecondaryID, PrimaryClusterAddr: busURL, PrimaryAPIAddr: primaryAPIAddr}
	if err := putJSON(ctx, c.barrier, replModePath, mode); err != nil {
		sec.Stop()
		return fmt.Errorf("store replication mode: %w", err)
	}
	if c.cfg.Replication.Dev && bundle.DevRootTokenID != "" {
		if _, err := c.tokens.CreateRoot(ctx, bundle.DevRootTokenID); err != nil {
			c.logger.Warn().Err(err).Msg("could not create the primary's dev root token here")
		}
	}
	c.repl.mode, c.repl.secondary = modeSecondary, sec
	c.repl.clusterAddr, c.repl.primaryAPI = busURL, primaryAPIAddr
	c.logger.Info().Str("secondary_id", bundle.SecondaryID).Str("primary", bundle.PrimaryClusterID).Msg("performance secondary activated")
	return nil
}

// waitStreaming waits until the secondary's first sync is done.
func waitStreaming(ctx context.Context, sec *secondary.Secondary, limit time.Duration) error {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		st := sec.Status()
		switch st.State {
		case secondary.StateStreaming:
			return nil
		case secondary.StateRevoked:
			return errors.New("the primary refused this secondary (revoked)")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("still %s after %s (last error: %s)", st.State, limit, st.LastError)
		case <-tick.C:
		}
	}
}

// DisableSecondary stops replicating; the data stays, writable as a standalone cluster.
func (c *Core) DisableSecondary(ctx context.Context) error {
	c.replMu.Lock()
	defer c.replMu.Unlock()
	if c.repl.mode != modeSecondary {
		return logical.InvalidRequest("this cluster is not a performance secondary")
	}
	c.repl.secondary.Stop()
	if err := c.barrier.Delete(ctx, replModePath); err != nil {
		return err
	}
	c.repl.mode, c.repl.secondary = "", nil
	return nil
}

// refuseOnSecondary returns the error a replicated write gets on a
// performance secondary, or nil.
func (c *Core) refuseOnSecondary(local bool) error {
	if local || c.replMode() != modeSecondary {
		return nil
	}
	addr := "its primary"
	c.replMu.RLock()
	if c.repl.primaryAPI != "" {
		addr = "the primary at " + c.repl.primaryAPI
	}
	c.replMu.RUnlock()
	return logical.Errorf(http.StatusBadRequest, "cannot write to a replicated path on a performance secondary: send the write to %s (local mounts, tokens and logins work here)", addr)
}

// onReplicated invalidates what depends on keys a batch or a sync changed.
func (c *Core) onReplicated(keys []string) {
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
		case k == "core/keyring":
			keyring = true
		}
	}
	if c.barrier.Sealed() {
		// During activation the barrier opens as soon as the primary's
		// keyring has arrived; everything else loads when activation ends.
		if root := c.activationRoot(); keyring && root != nil {
			if err := c.barrier.Unseal(ctx, root); err != nil {
				c.logger.Error().Err(err).Msg("open the primary's keyring with the activation root key")
			}
		}
		return
	}
	if c.activationRoot() != nil {
		return
	}
	if keyring {
		if err := c.barrier.Reload(ctx); err != nil {
			c.logger.Error().Err(err).Msg("reload the replicated keyring")
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

// setActivationRoot records the root key of an activation in progress: the
// barrier opens with it as soon as the primary's keyring has arrived.
func (c *Core) setActivationRoot(k []byte) {
	c.activationMu.Lock()
	c.activationKey = k
	c.activationMu.Unlock()
}

// activationRoot is read by the applier's goroutine while EnableSecondary
// holds replMu, hence its own mutex.
func (c *Core) activationRoot() []byte {
	c.activationMu.Lock()
	defer c.activationMu.Unlock()
	return c.activationKey
}

// ReplicationStatus renders sys/replication/performance/status.
func (c *Core) ReplicationStatus() map[string]any {
	c.replMu.RLock()
	defer c.replMu.RUnlock()
	st := map[string]any{
		"mode":       modeDisabled,
		"cluster_id": c.clusterID,
		"last_wal":   c.wal.LastIndex(),
	}
	if x := c.Merkle(); x != nil {
		st["merkle_root"] = x.RootHex()
	}
	switch {
	case c.repl.primary != nil:
		ps := c.repl.primary.Status()
		st["mode"] = modePrimary
		st["state"] = "running"
		st["primary_cluster_addr"] = c.repl.clusterAddr
		st["last_reindex_epoch"] = "0"
		secs := []map[string]any{}
		var known []string
		for _, s := range ps.Secondaries {
			if s.State == "revoked" {
				continue
			}
			known = append(known, s.ID)
			conn := "disconnected"
			if s.Connected {
				conn = "connected"
			}
			secs = append(secs, map[string]any{
				"node_id":           s.ID,
				"api_address":       s.APIAddr,
				"cluster_address":   c.repl.clusterAddr,
				"connection_status": conn,
				"last_heartbeat":    fmtTime(s.LastHeartbeat),
				"last_remote_wal":   s.LastRemoteWAL,
				"state":             s.State,
			})
		}
		st["known_secondaries"] = known
		st["secondaries"] = secs
		st["last_shipped_wal"] = ps.ShippedIndex
	case c.repl.secondary != nil:
		ss := c.repl.secondary.Status()
		st["mode"] = modeSecondary
		st["state"] = string(ss.State)
		st["secondary_id"] = ss.SecondaryID
		st["last_remote_wal"] = ss.LastRemoteWAL
		st["primary_cluster_addr"] = c.repl.clusterAddr
		st["known_primary_cluster_addrs"] = []string{c.repl.clusterAddr}
		conn := "disconnected"
		if ss.Connected {
			conn = "connected"
		}
		st["connection_state"] = map[bool]string{true: "ready", false: "transient_failure"}[ss.Connected]
		st["primaries"] = []map[string]any{{
			"api_address":       c.repl.primaryAPI,
			"cluster_address":   c.repl.clusterAddr,
			"connection_status": conn,
			"last_heartbeat":    fmtTime(ss.LastHeartbeat),
		}}
		switch ss.State {
		case secondary.StateSync, secondary.StateMerkleDiff, secondary.StateMerkleSync:
			st["merkle_sync_progress"] = map[string]any{"sync_progress": ss.SyncKeysDone, "sync_total_keys": ss.SyncTotalKeys}
		}
		if ss.LastError != "" {
			st["last_error"] = ss.LastError
		}
	default:
		delete(st, "last_wal")
	}
	return st
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// replication endpoints of the system backend.
func (s *systemBackend) replication(ctx context.Context, req *logical.Request, p string) (*logical.Response, error) {
	c := s.c
	write := req.Operation == logical.UpdateOperation || req.Operation == logical.CreateOperation
	switch p {
	case "replication/status":
		if req.Operation != logical.ReadOperation {
			return nil, logical.ErrUnsupportedOperation
		}
		perf := c.ReplicationStatus()
		return &logical.Response{Data: map[string]any{"performance": perf, "dr": map[string]any{"mode": modeDisabled}}}, nil
	case "replication/performance/status":
		if req.Operation != logical.ReadOperation {
			return nil, logical.ErrUnsupportedOperation
		}
		return &logical.Response{Data: c.ReplicationStatus()}, nil
	}
	if !write {
		return nil, logical.ErrUnsupportedOperation
	}
	switch p {
	case "replication/performance/primary/enable":
		addr, err := fieldString(req.Data, "primary_cluster_addr")
		if err != nil {
			return nil, err
		}
		return nil, c.EnablePrimary(ctx, addr)
	case "replication/performance/primary/disable":
		return nil, c.DisablePrimary(ctx)
	case "replication/performance/primary/secondary-token":
		id, err := fieldString(req.Data, "id")
		if err != nil {
			return nil, err
		}
		if id == "" {
			return nil, logical.InvalidRequest("missing \"id\": the name of the secondary this token activates")
		}
		ttl, given, err := logical.FieldDuration(req.Data, "ttl")
		if err != nil {
			return nil, err
		}
		if !given || ttl <= 0 {
			ttl = 30 * time.Minute
		}
		p, err := c.livePrimary()
		if err != nil {
			return nil, err
		}
		tok, _, err := p.SecondaryToken(ctx, id, ttl)
		if err != nil {
			return nil, logical.InvalidRequest("%v", err)
		}
		return &logical.Response{WrapInfo: &logical.WrapInfo{
			Token: tok, Accessor: "", TTL: int64(ttl / time.Second), CreationTime: time.Now().UTC(),
			CreationPath: "sys/replication/performance/primary/secondary-token",
		}}, nil
	case "replication/performance/primary/revoke-secondary":
		id, err := fieldString(req.Data, "id")
		if err != nil {
			return nil, err
		}
		p, err := c.livePrimary()
		if err != nil {
			return nil, err
		}
		if err := p.RevokeSecondary(ctx, id); err != nil {
			return nil, logical.InvalidRequest("%v", err)
		}
		return nil, nil
	case "replication/performance/secondary/enable":
		tok, err := fieldString(req.Data, "token")
		if err != nil {
			return nil, err
		}
		if tok == "" {
			return nil, logical.InvalidRequest("missing \"token\": the activation token from the primary's secondary-token endpoint")
		}
		api, err := fieldString(req.Data, "primary_api_addr")
		if err != nil {
			return nil, err
		}
		busURL, err := fieldString(req.Data, "bus_url")
		if err != nil {
			return nil, err
		}
		return nil, c.EnableSecondary(ctx, tok, api, busURL)
	case "replication/performance/secondary/disable":
		return nil, c.DisableSecondary(ctx)
	}
	return nil, logical.Errorf(http.StatusNotFound, "no handler for route \"sys/%s\"", p)
}
