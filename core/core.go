package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/audit"
	"github.com/cofferhq/coffer/barrier"
	"github.com/cofferhq/coffer/barrier/seal"
	"github.com/cofferhq/coffer/core/drtoken"
	"github.com/cofferhq/coffer/core/tokens"
	"github.com/cofferhq/coffer/engines/approle"
	"github.com/cofferhq/coffer/engines/kv"
	"github.com/cofferhq/coffer/engines/transit"
	"github.com/cofferhq/coffer/engines/userpass"
	"github.com/cofferhq/coffer/internal/clock"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
	"github.com/google/uuid"
	"github.com/rs/zerolog"
)

// Version is the version Coffer reports in sys/health and sys/seal-status.
const Version = "0.1.0"

// clusterInfoPath holds this cluster's name and id. It is per cluster: never replicated.
const clusterInfoPath = "core/cluster/local/info"

// Config assembles a Core.
type Config struct {
	// Physical is the raw storage (bolt, inmem). Core owns it from New on and closes it in Close.
	Physical storage.Transactional
	// StorageType names the backend for sys/seal-status ("bolt", "inmem").
	StorageType string
	// Seal protects the root key. Nil means the shamir seal.
	Seal seal.Seal
	// ClusterName is reported in status; generated ("coffer-cluster-<8 hex>") when empty at init.
	ClusterName string
	// APIAddr is this server's advertised API address (sys/leader).
	APIAddr string
	// WAL tunes group commit.
	WAL wal.Options
	// DefaultLeaseTTL and MaxLeaseTTL bound token TTLs (Vault's defaults: 768h).
	DefaultLeaseTTL, MaxLeaseTTL time.Duration
	// Logger receives core's logs.
	Logger zerolog.Logger
	// Standby starts the node as a standby of an HA cluster: it writes
	// nothing until Activate (the ha package calls it once the node holds
	// the cluster's lock).
	Standby bool
	// DisablePerfStandby: a standby serves nothing itself (every request
	// goes to the active node) and is no performance standby.
	DisablePerfStandby bool
}

// Validate reports a Config core cannot start with.
func (c *Config) Validate() error {
	if c.Physical == nil {
		return errors.New("core: no storage backend configured")
	}
	return nil
}

// Core is one Coffer cluster node. All methods are safe for concurrent use.
type Core struct {
	cfg     Config
	logger  zerolog.Logger
	phys    storage.Transactional
	wal     *wal.Log
	barrier *barrier.Barrier
	seal    seal.Seal

	// stateMu guards the sealed/unsealed transition; readers hold it shared.
	// It is never held across a replication sync: ReplaceData marks the
	// core replacing instead, and init, unseal and seal refuse meanwhile.
	stateMu   sync.RWMutex
	replacing bool
	// replacingNow mirrors replacing for the request path, which must not
	// take stateMu; it stays true until the replacement has unsealed.
	replacingNow atomic.Bool
	unsealKeys   [][]byte
	unsealNonce  string
	clusterName  string
	clusterID    string
	activeTime   time.Time

	// Logical layer, rebuilt on every unseal.
	factories map[Table]map[string]logical.Factory
	router    *router
	mountMu   sync.Mutex // serializes mount table changes
	// migrations are the outcomes of the last sys/remount calls here.
	migrations migrations
	policies   *policyStore
	tokens     *tokens.Store
	wrapMu     sync.Mutex // makes unwrap's read-and-delete single use

	// rootGen is sys/generate-root's attempt, drGen the DR operation token
	// generation's (in memory: a restart or a seal cancels them).
	rootGen, drGen *TokenGeneration
	// drTokens are the DR operation tokens generated here (droptoken.go):
	// in memory, dropped by a seal, kept by a resync (ReplaceData).
	drTokens *drtoken.Set

	// clusterIDv is clusterID for readers that cannot take stateMu (the
	// replication layer, called while stateMu is held).
	clusterIDv atomic.Pointer[string]
	// clusterNamev likewise, for sys/health: it answers while an activation
	// holds stateMu (Consul's health check of an HA node polls it).
	clusterNamev atomic.Pointer[string]

	replMu sync.RWMutex // guards repl and ha
	repl   Replication
	ha     HA

	// standby: this node does not hold its cluster's HA lock (ha.go).
	standby atomic.Bool
	follow  follow

	merkle merkleState

	auditMu        sync.RWMutex
	audit          *audit.Broker
	auditEntries   map[string]*auditEntry
	auditSaltBytes []byte
}

// New opens the WAL on cfg.Physical and returns a sealed Core.
func New(ctx context.Context, cfg Config) (*Core, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Seal == nil {
		cfg.Seal = seal.NewShamir()
	}
	wopts := cfg.WAL
	wopts.Shared = wopts.Shared || cfg.Standby
	log, err := wal.Open(ctx, cfg.Physical, wopts, cfg.Logger.With().Str("component", "wal").Logger())
	if err != nil {
		return nil, fmt.Errorf("open write-ahead log: %w", err)
	}
	c := &Core{
		cfg:     cfg,
		logger:  cfg.Logger,
		phys:    cfg.Physical,
		wal:     log,
		barrier: barrier.New(log),
		seal:    cfg.Seal,
	}
	c.standby.Store(cfg.Standby)
	c.router = newRouter()
	c.policies = newPolicyStore(c.barrier)
	c.tokens = c.newTokenStore()
	c.rootGen = c.newRootGeneration()
	c.drTokens = &drtoken.Set{}
	c.drGen = c.newDRGeneration()
	c.factories = map[Table]map[string]logical.Factory{
		SecretTable: {"kv": kv.Factory, "transit": transit.Factory},
		AuthTable:   {"userpass": userpass.Factory, "approle": approle.Factory},
	}
	log.SetClassifier(c.classify)
	c.initMerkle()
	return c, nil
}

// mountBuiltins routes the system backend (sys/) and the token auth method
// (auth/token/); they are listed with the mounts but never stored.
func (c *Core) mountBuiltins() {
	c.router.add(&mountedBackend{
		entry:   &MountEntry{Table: SecretTable, Path: "sys/", Type: "system", Description: "system endpoints used for control, policy and debugging", UUID: "system", Accessor: "system", builtin: true, Options: map[string]string{}},
		backend: &systemBackend{c: c},
		storage: logical.NewView(c.barrier, "sys/"),
	})
	c.router.add(&mountedBackend{
		entry:   &MountEntry{Table: AuthTable, Path: "token/", Type: "token", Description: "token based credentials", UUID: "token", Accessor: "auth_token", builtin: true, Options: map[string]string{}},
		backend: c.tokens.Backend(),
		storage: logical.NewView(c.barrier, tokenStoragePrefix),
	})
}

// classify gives the WAL each key's replication class: per-cluster state is
// never shipped; tokens, wrapped responses, local tables and the data of local
// mounts are local (the batch token signing key among the "core/local-" keys);
// everything else is replicated, the published batch token key included.
func (c *Core) classify(key string) wal.Class {
	switch {
	case strings.HasPrefix(key, "core/cluster/local/"):
		return wal.Ignored
	case strings.HasPrefix(key, "core/local-"), strings.HasPrefix(key, wrappingPrefix):
		return wal.Local
	case (strings.HasPrefix(key, secretStoragePrefix) || strings.HasPrefix(key, authStoragePrefix)) && c.router.isLocalKey(key):
		return wal.Local
	}
	return wal.DefaultClassify(key)
}

// WAL exposes the write-ahead log to the replication layers.
func (c *Core) WAL() *wal.Log { return c.wal }

// Barrier exposes the barrier to the logical layers.
func (c *Core) Barrier() *barrier.Barrier { return c.barrier }

// Start unseals by itself when the seal allows it (static seal) and the
// cluster is initialized. A shamir-sealed core stays sealed.
func (c *Core) Start(ctx context.Context) error {
	init, err := c.Initialized(ctx)
	if err != nil || !init {
		return err
	}
	if !c.seal.RecoveryKeySupported() {
		return nil
	}
	root, err := c.seal.AutoUnseal(ctx, c.wal)
	if err != nil {
		return fmt.Errorf("auto-unseal with the %s seal: %w", c.seal.Type(), err)
	}
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if c.replacing {
		return ErrReplacing
	}
	return c.unsealLocked(ctx, root)
}

// Close seals the core, stops the WAL and closes the storage.
func (c *Core) Close() error {
	c.stateMu.Lock()
	c.sealLocked()
	c.stateMu.Unlock()
	c.stopWALGC()
	c.merkle.mu.Lock()
	merr := c.stopMerkleLocked(context.Background(), true)
	c.merkle.mu.Unlock()
	if merr != nil {
		c.logger.Warn().Err(merr).Msg("flushing the merkle index at shutdown; the next start redoes from its checkpoint")
	}
	err := c.wal.Close()
	if cl, ok := c.phys.(interface{ Close() error }); ok {
		if cerr := cl.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Initialized reports whether sys/init has run on this storage.
func (c *Core) Initialized(ctx context.Context) (bool, error) {
	cfg, err := c.seal.Config(ctx, c.wal)
	if err != nil {
		return false, fmt.Errorf("read seal configuration: %w", err)
	}
	if cfg == nil {
		return false, nil
	}
	// A crash between the seal's and the barrier's init leaves a seal
	// configuration without a keyring: that storage is not initialized, and
	// sys/init may run again (the seal overwrites its half-written entries).
	return c.barrier.Initialized(ctx)
}

// SealWrapper is the seal's Wrapper when it has one (the static seal), nil
// otherwise (shamir).
func (c *Core) SealWrapper() seal.Wrapper {
	w, _ := c.seal.(seal.Wrapper)
	return w
}

// Sealed reports whether the barrier is sealed.
func (c *Core) Sealed() bool { return c.barrier.Sealed() }

// Initialize runs sys/init: it creates the root key, the keyring, the
// cluster identity and a root token, and returns the key shares. The core is
// left sealed with the shamir seal and unsealed with an auto-unseal seal, as
// Vault does.
func (c *Core) Initialize(ctx context.Context, req InitRequest) (*InitResult, error) {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if c.replacing {
		return nil, ErrReplacing
	}
	if c.replication().ActivationPending() {
		return nil, ErrActivationPending
	}
	init, err := c.Initialized(ctx)
	if err != nil {
		return nil, err
	}
	if init {
		return nil, ErrAlreadyInitialized
	}
	sc := seal.Config{
		Type:              c.seal.Type(),
		SecretShares:      req.SecretShares,
		SecretThreshold:   req.SecretThreshold,
		RecoveryShares:    req.RecoveryShares,
		RecoveryThreshold: req.RecoveryThreshold,
	}
	if c.seal.RecoveryKeySupported() {
		if sc.RecoveryShares == 0 && sc.RecoveryThreshold == 0 {
			sc.RecoveryShares, sc.RecoveryThreshold = req.SecretShares, req.SecretThreshold
		}
		sc.SecretShares, sc.SecretThreshold = 1, 1
	}
	if err := seal.ValidateConfig(&sc); err != nil {
		return nil, &InvalidRequestError{Msg: err.Error()}
	}
	root, shares, err := c.seal.Init(ctx, c.wal, sc)
	if err != nil {
		var inv *seal.ConfigError
		if errors.As(err, &inv) {
			return nil, &InvalidRequestError{Msg: err.Error()}
		}
		return nil, fmt.Errorf("initialize seal: %w", err)
	}
	if err := c.barrier.Initialize(ctx, root); err != nil {
		return nil, fmt.Errorf("initialize barrier: %w", err)
	}
	if err := c.barrier.Unseal(ctx, root); err != nil {
		return nil, fmt.Errorf("open barrier after init: %w", err)
	}
	name := c.cfg.ClusterName
	if name == "" {
		name = "coffer-cluster-" + uuid.NewString()[:8]
	}
	info := clusterInfo{Name: name, ID: uuid.NewString()}
	if err := putJSON(ctx, c.barrier, clusterInfoPath, info); err != nil {
		c.barrier.Seal()
		return nil, fmt.Errorf("store cluster identity: %w", err)
	}
	if err := c.policies.ensureDefault(ctx); err != nil {
		c.barrier.Seal()
		return nil, fmt.Errorf("store the default policy: %w", err)
	}
	rootToken, err := c.tokens.CreateRoot(ctx, req.RootTokenID)
	if err != nil {
		c.barrier.Seal()
		return nil, fmt.Errorf("create root token: %w", err)
	}
	res := &InitResult{RootToken: rootToken.ID}
	if c.seal.RecoveryKeySupported() {
		res.RecoveryKeys = shares
		c.setIdentity(info)
		if err := c.postUnseal(ctx); err != nil {
			c.sealLocked()
			return nil, err
		}
		c.logger.Info().Str("cluster_name", info.Name).Str("cluster_id", info.ID).Msg("initialized and unsealed by the " + c.seal.Type() + " seal")
		return res, nil
	}
	res.Keys = shares
	c.barrier.Seal()
	c.logger.Info().Str("cluster_name", info.Name).Int("shares", sc.SecretShares).Int("threshold", sc.SecretThreshold).Msg("initialized; unseal with sys/unseal")
	return res, nil
}

// Unseal adds one key share. When the threshold is reached the shares are
// combined; a set that does not open the root key returns ErrInvalidKey and
// clears the progress so the operator can start over.
func (c *Core) Unseal(ctx context.Context, key []byte) (*SealStatus, error) {
	c.stateMu.Lock()
	if c.replacing {
		c.stateMu.Unlock()
		return nil, ErrReplacing
	}
	if !c.barrier.Sealed() {
		c.stateMu.Unlock()
		return c.SealStatus(ctx)
	}
	cfg, err := c.seal.Config(ctx, c.wal)
	if err != nil {
		c.stateMu.Unlock()
		return nil, err
	}
	if init, err := c.barrier.Initialized(ctx); cfg == nil || err != nil || !init {
		c.stateMu.Unlock()
		if err != nil {
			return nil, err
		}
		return nil, ErrNotInitialized
	}
	if c.seal.RecoveryKeySupported() {
		c.stateMu.Unlock()
		return nil, Invalidf("this server uses the %s seal and unseals itself; recovery keys cannot unseal it: check the seal's key file and restart", c.seal.Type())
	}
	if len(key) == 0 {
		c.stateMu.Unlock()
		return nil, Invalidf("missing unseal key: pass one share in \"key\" (hex or base64)")
	}
	for _, k := range c.unsealKeys {
		if bytes.Equal(k, key) {
			c.stateMu.Unlock()
			return c.SealStatus(ctx)
		}
	}
	if len(c.unsealKeys) == 0 {
		c.unsealNonce = uuid.NewString()
	}
	c.unsealKeys = append(c.unsealKeys, append([]byte(nil), key...))
	if len(c.unsealKeys) < cfg.SecretThreshold {
		c.stateMu.Unlock()
		return c.SealStatus(ctx)
	}
	shares := c.unsealKeys
	c.unsealKeys, c.unsealNonce = nil, ""
	root, err := c.seal.RootKeyFromShares(ctx, c.wal, shares)
	if err != nil {
		c.stateMu.Unlock()
		c.logger.Warn().Err(err).Msg("unseal attempt with wrong key shares")
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	err = c.unsealLocked(ctx, root)
	c.stateMu.Unlock()
	if err != nil {
		return nil, err
	}
	return c.SealStatus(ctx)
}

func (c *Core) unsealLocked(ctx context.Context, root []byte) error {
	if err := c.barrier.Unseal(ctx, root); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	var info clusterInfo
	if _, err := getJSON(ctx, c.barrier, clusterInfoPath, &info); err != nil {
		c.barrier.Seal()
		return fmt.Errorf("load cluster identity: %w", err)
	}
	c.setIdentity(info)
	if err := c.postUnseal(ctx); err != nil {
		c.sealLocked()
		return err
	}
	c.logger.Info().Str("cluster_name", info.Name).Str("cluster_id", info.ID).Msg("unsealed")
	return nil
}

// setIdentity records the cluster's name and id as the barrier opens.
func (c *Core) setIdentity(info clusterInfo) {
	c.clusterName, c.clusterID, c.activeTime = info.Name, info.ID, clock.Now().UTC()
	id, name := info.ID, info.Name
	c.clusterIDv.Store(&id)
	c.clusterNamev.Store(&name)
}

// postUnseal brings the logical layer up: policies, mounts and audit
// devices on every node; token expiration, the merkle index and replication
// on the active node only (a standby writes nothing).
func (c *Core) postUnseal(ctx context.Context) error {
	if err := c.standbyUp(ctx); err != nil {
		return err
	}
	if c.standby.Load() {
		c.follow.mu.Lock()
		c.follow.seen = c.wal.LastIndex()
		c.follow.mu.Unlock()
		return nil
	}
	return c.activeUp(ctx)
}

// standbyUp loads what serving reads needs: policies, mounts, audit devices.
func (c *Core) standbyUp(ctx context.Context) error {
	c.policies.invalidate()
	if err := c.loadMounts(ctx); err != nil {
		return err
	}
	return c.loadAudit(ctx)
}

// activeUp starts what only the active node runs: token expiration, the
// merkle index, replication.
func (c *Core) activeUp(ctx context.Context) error {
	c.tokens.Start()
	if err := c.startMerkle(ctx); err != nil {
		return err
	}
	if err := c.replication().Start(ctx); err != nil {
		c.logger.Error().Err(err).Msg("replication could not restart; the cluster serves its local data")
	}
	return nil
}

// sealLocked takes the logical layer and replication down and seals the
// barrier. It drops the DR operation tokens: a seal ends them.
func (c *Core) sealLocked() {
	c.replication().Stop()
	c.drTokens.Clear()
	c.sealLockedKeepRepl()
}

// sealLockedKeepRepl seals without touching the replication role (activation
// replaces the data underneath a running secondary). It keeps the DR
// operation tokens, which a resync must not take from a DR secondary, but
// cancels the generation attempts: their shares are checked against the
// seal as it will be after the replacement.
func (c *Core) sealLockedKeepRepl() {
	c.rootGen.reset()
	c.drGen.reset()
	c.tokens.Stop()
	c.router.clear()
	c.auditMu.Lock()
	if c.audit != nil {
		if err := c.audit.Close(); err != nil {
			c.logger.Warn().Err(err).Msg("closing audit devices")
		}
		c.audit = nil
	}
	c.auditMu.Unlock()
	c.barrier.Seal()
}

// ResetUnseal forgets the shares given so far.
func (c *Core) ResetUnseal(ctx context.Context) (*SealStatus, error) {
	c.stateMu.Lock()
	c.unsealKeys, c.unsealNonce = nil, ""
	c.stateMu.Unlock()
	return c.SealStatus(ctx)
}

// Seal seals the barrier. It needs a root token.
func (c *Core) Seal(ctx context.Context, token string) error {
	if err := c.requireRoot(ctx, token); err != nil {
		return err
	}
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if c.replacing {
		return ErrReplacing
	}
	c.sealLocked()
	c.logger.Info().Msg("sealed by request")
	return nil
}

// Rotate adds a new barrier key term; new writes use it. It needs a root token.
func (c *Core) Rotate(ctx context.Context, token string) (*KeyStatus, error) {
	if err := c.requireRoot(ctx, token); err != nil {
		return nil, err
	}
	c.stateMu.RLock()
	defer c.stateMu.RUnlock()
	ki, err := c.barrier.Rotate(ctx)
	if err != nil {
		return nil, mapBarrierErr(err)
	}
	c.logger.Info().Uint32("term", ki.Term).Msg("barrier key rotated")
	return &KeyStatus{Term: ki.Term, InstallTime: ki.InstallTime, Encryptions: ki.Encryptions}, nil
}

// KeyStatus describes the active barrier key. It needs a root token.
func (c *Core) KeyStatus(ctx context.Context, token string) (*KeyStatus, error) {
	if err := c.requireRoot(ctx, token); err != nil {
		return nil, err
	}
	ki, err := c.barrier.ActiveKey()
	if err != nil {
		return nil, mapBarrierErr(err)
	}
	return &KeyStatus{Term: ki.Term, InstallTime: ki.InstallTime, Encryptions: ki.Encryptions}, nil
}

// SealStatus reports the seal state with Vault's fields.
func (c *Core) SealStatus(ctx context.Context) (*SealStatus, error) {
	cfg, err := c.seal.Config(ctx, c.wal)
	if err != nil {
		return nil, fmt.Errorf("read seal configuration: %w", err)
	}
	st := &SealStatus{
		Type:         c.seal.Type(),
		Sealed:       c.barrier.Sealed(),
		Version:      Version,
		BuildDate:    buildDate,
		RecoverySeal: c.seal.RecoveryKeySupported(),
		StorageType:  c.cfg.StorageType,
	}
	c.stateMu.RLock()
	st.Progress, st.Nonce = len(c.unsealKeys), c.unsealNonce
	if !st.Sealed {
		st.ClusterName, st.ClusterID = c.clusterName, c.clusterID
	}
	c.stateMu.RUnlock()
	if cfg != nil {
		if st.Initialized, err = c.barrier.Initialized(ctx); err != nil {
			return nil, fmt.Errorf("read barrier keyring: %w", err)
		}
	}
	if st.Initialized {
		if st.RecoverySeal {
			st.T, st.N = cfg.RecoveryThreshold, cfg.RecoveryShares
		} else {
			st.T, st.N = cfg.SecretThreshold, cfg.SecretShares
		}
	}
	return st, nil
}

// Health reports what sys/health shows; httpapi picks the status code.
func (c *Core) Health(ctx context.Context) *HealthStatus {
	h := &HealthStatus{
		Standby:                    c.standby.Load(),
		Sealed:                     c.barrier.Sealed(),
		ReplicationPerformanceMode: c.replication().Mode(),
		ReplicationDRMode:          c.replication().DRMode(),
		ServerTimeUTC:              clock.Now().UTC().Unix(),
		Version:                    Version,
	}
	if init, err := c.Initialized(ctx); err == nil {
		h.Initialized = init
	}
	if !h.Sealed {
		h.ClusterID = c.ClusterID()
		if n := c.clusterNamev.Load(); n != nil {
			h.ClusterName = *n
		}
		// An unsealed standby serves reads itself: a performance standby.
		h.PerformanceStandby = h.Standby && !c.cfg.DisablePerfStandby
	}
	return h
}

func (c *Core) requireRoot(ctx context.Context, token string) error {
	if c.barrier.Sealed() {
		return ErrSealed
	}
	te, err := c.tokens.Lookup(ctx, token)
	if err != nil {
		return mapBarrierErr(err)
	}
	if te == nil || !slices.Contains(te.Policies, "root") {
		return ErrPermissionDenied
	}
	return nil
}

func mapBarrierErr(err error) error {
	if errors.Is(err, barrier.ErrSealed) {
		return ErrSealed
	}
	return err
}

type clusterInfo struct {
	Name string `json:"name"`
	ID   string `json:"id"`
}

func putJSON(ctx context.Context, b storage.Backend, key string, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(ctx, &storage.Entry{Key: key, Value: buf})
}

// getJSON decodes key into v and reports whether it existed.
func getJSON(ctx context.Context, b storage.Backend, key string, v any) (bool, error) {
	e, err := b.Get(ctx, key)
	if err != nil || e == nil {
		return false, err
	}
	if err := json.Unmarshal(e.Value, v); err != nil {
		return true, fmt.Errorf("decode %s: %w", key, err)
	}
	return true, nil
}
