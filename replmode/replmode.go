package replmode

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/cofferhq/coffer/barrier"
	"github.com/cofferhq/coffer/barrier/seal"
	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/core"
	"github.com/cofferhq/coffer/forwarder"
	"github.com/cofferhq/coffer/internal/backoff"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/merkle"
	"github.com/cofferhq/coffer/primary"
	"github.com/cofferhq/coffer/secondary"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
	"github.com/rs/zerolog"
)

// Config carries what replication needs from the server's configuration.
type Config struct {
	// Bus is the NATS connection (embedded or external); nil means
	// replication cannot be enabled.
	Bus *bus.Bus
	// WALStreamMaxAge, WALStreamMaxBytes and WALStreamMaxMsgs bound the WAL
	// stream (0 = unlimited); WALStreamReplicas is its JetStream replica count.
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
	// MaxTokenTTL caps an activation token's ttl (primary's default: 24h).
	MaxTokenTTL time.Duration
	// ActivationWait is how long secondary/enable waits for the bootstrap
	// before it answers (it continues in the background either way).
	ActivationWait time.Duration
	// Dev marks a dev server: the dev root token follows activation.
	Dev bool
	// Logger receives the layer's logs (the roles log under their own component).
	Logger zerolog.Logger
}

// Host is what this layer needs from core (*core.Core implements it).
type Host interface {
	Barrier() *barrier.Barrier
	WAL() *wal.Log
	Physical() storage.Transactional
	Classify(key string) wal.Class
	// MountOfKey resolves a storage key to its mount's route path (paths filters).
	MountOfKey(key string) (string, bool)
	Merkle() *merkle.Index
	// MerkleCheck and ReindexMerkle serve sys/replication/merkle-check and reindex.
	MerkleCheck(ctx context.Context) (*merkle.CheckReport, error)
	ReindexMerkle(ctx context.Context) error
	// RebuildMerkle and LastMerkleReindex serve the background reindex
	// (reindex.go).
	RebuildMerkle(ctx context.Context, opts merkle.RebuildOptions) (*merkle.RebuildResult, error)
	LastMerkleReindex(ctx context.Context) time.Time
	ClusterID() string
	APIAddr() string
	// HATerm is the node's term as its cluster's active node (0 without HA).
	HATerm() uint64
	// Invalidate reloads what depends on keys replication changed.
	Invalidate(keys []string)
	// ReplaceData runs an activation's wipe and fill with the logical layer down.
	ReplaceData(ctx context.Context, root []byte, r core.Replacement) error
	// SealWrapper is the seal's key for records read before unseal (the
	// activation record), nil when the seal has none (shamir).
	SealWrapper() seal.Wrapper
	// CheckDROperationToken authorises a DR secondary's operation (promote,
	// update-primary, disable) by its DR operation token for path.
	CheckDROperationToken(ctx context.Context, token, path string) error
	// CreateRootToken creates the dev root token an activation bundle carries.
	CreateRootToken(ctx context.Context, id string) error
	// ApplyForwarded applies a forwarded write on the primary.
	forwarder.Applier
}

// Manager is a cluster's replication layer: its mode, the running role
// (a primary or a secondary), the transitions between modes, the
// sys/replication/* endpoints and the status. It implements core.Replication.
//
// Locks: opMu serializes transitions (an activation holds it for its whole
// sync); mu guards the fields below and is only held briefly, so status
// and the request path never wait for a transition.
type Manager struct {
	cfg  Config
	host Host
	log  zerolog.Logger
	fwd  *forwarder.Server

	opMu sync.Mutex
	// check is the outcome of the last merkle-check (status_fields.go).
	check checkRecord

	mu        sync.RWMutex
	mode      Mode
	drMode    Mode // DR: Disabled, Primary or Secondary
	primary   *primary.Primary
	secondary *secondary.Secondary
	// drSecondary is the running DR secondary (drMode Secondary).
	drSecondary *secondary.Secondary
	client      *forwarder.Client
	devRoot     string // the dev root token id, for activation bundles
	// clusterAddr is the NATS URL the primary advertises, or the one a
	// secondary follows; primaryAPI the primary's API address (secondary).
	clusterAddr, primaryAPI string
	// activationRoot is the root key of an activation in progress: the
	// barrier opens with it as soon as the primary's keyring has arrived.
	activationRoot []byte
	// boot is the pending activation (activation.go), nil without one.
	boot *bootstrap
	// starting retries the stored role's start in the background; startErr
	// is its last failure.
	starting *retry
	startErr string

	// reindex is sys/replication/reindex's background job (reindex.go).
	reindex reindexState
}

var _ core.Replication = (*Manager)(nil)

// New returns the replication layer of host, with replication disabled
// until Start finds a stored mode.
func New(host Host, cfg Config) *Manager {
	m := &Manager{cfg: cfg, host: host, log: cfg.Logger, mode: Disabled}
	m.fwd = forwarder.NewServer(forwarder.ServerConfig{Applier: host, StatusOf: core.StatusOf, Windows: windowStore{host.Barrier()}})
	return m
}

// Attach builds the replication layer of c and attaches it.
func Attach(c *core.Core, cfg Config) *Manager {
	m := New(c, cfg)
	c.SetReplication(m)
	return m
}

// SetDevRootToken records the dev root token id so that activation bundles
// carry it to dev secondaries (the seeds' "Dev-Mode Root Tokens").
func (m *Manager) SetDevRootToken(id string) {
	m.mu.Lock()
	m.devRoot = id
	m.mu.Unlock()
}

// DRMode reports the DR mode (DR replication: docs/replication.md, "DR
// replication").
func (m *Manager) DRMode() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.drMode == "" {
		return string(Disabled)
	}
	return string(m.drMode)
}

// Mode reports the performance mode.
func (m *Manager) Mode() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return string(m.mode)
}

// Start restarts the role stored in storage; core calls it on unseal. When
// the role cannot start now (NATS is down, say) it keeps trying in the
// background until it does or Stop is called; meanwhile the status shows the
// mode with state "connecting" and the last error, and the WAL collector
// keeps every entry a primary has not shipped.
func (m *Manager) Start(ctx context.Context) error {
	m.allowReindex()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.boot != nil || m.activationRoot != nil || m.primary != nil || m.secondary != nil || m.drSecondary != nil || m.starting != nil {
		// An activation unseals core under its own control and records
		// the mode itself when it is done.
		return nil
	}
	st, ok, err := loadState(ctx, m.host.Barrier())
	if err != nil {
		return fmt.Errorf("load replication mode: %w", err)
	}
	if !ok || (st.Mode == string(Disabled) && st.DRMode == "") {
		return nil
	}
	m.drMode = Mode(st.DRMode)
	if st.Demoted {
		// A demoted primary: a secondary with no primary until update-primary.
		if m.drMode != Secondary {
			m.mode = Secondary
		}
		return nil
	}
	if (st.Mode == string(Primary) || m.drMode == Primary) && m.cfg.Bus == nil {
		m.log.Error().Msg("this cluster is a replication primary but no NATS bus is configured: add a bus block to the configuration; replication stays stopped")
		return nil
	}
	m.clusterAddr, m.primaryAPI = st.PrimaryClusterAddr, st.PrimaryAPIAddr
	m.mode = Mode(st.Mode)
	if m.mode == "" {
		m.mode = Disabled
	}
	if err := m.startRoleLocked(ctx); err == nil {
		return nil
	} else {
		m.startErr = err.Error()
		m.log.Warn().Err(err).Str("mode", st.Mode).Msg("replication could not start; retrying in the background until it does")
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	m.starting = &retry{cancel: cancel, done: done}
	if mode, _, _ := m.roleLocked(); mode == Primary {
		// Until the primary runs (and sets its own), writes are held to
		// what one batch can carry all the same: one committed now and
		// never shippable would stall its secondaries once it does.
		m.starting.clearCheck = m.host.WAL().SetEntryCheck(func(ops []wal.Op) error {
			return primary.CheckEntry(m.cfg.Bus, true, ops)
		})
	}
	go m.retryStart(rctx, done)
	return nil
}

// retry owns the goroutine that retries a role's start.
type retry struct {
	cancel context.CancelFunc
	done   chan struct{}
	// clearCheck removes the WAL entry check set while a primary's start
	// is retried (a no-op once the primary set its own).
	clearCheck func()
}

// role is a started primary or secondary.
type role struct {
	p *primary.Primary
	s *secondary.Secondary
}

// openRole starts the role of mode once; it takes no lock (cfg is built
// under m.mu by the caller).
func openRole(ctx context.Context, mode Mode, pc primary.Config, sc secondary.Config) (role, error) {
	switch mode {
	case Primary:
		p, err := primary.Open(ctx, pc)
		if err != nil {
			return role{}, fmt.Errorf("restart replication primary: %w", err)
		}
		return role{p: p}, nil
	case Secondary:
		s, err := secondary.Open(ctx, sc)
		if err != nil {
			return role{}, fmt.Errorf("restart replication secondary: %w", err)
		}
		if err := s.Start(context.Background()); err != nil {
			s.Stop()
			return role{}, fmt.Errorf("restart replication secondary: %w", err)
		}
		return role{s: s}, nil
	}
	return role{}, nil
}

// installLocked makes r the running role.
func (m *Manager) installLocked(r role) {
	if r.p != nil {
		m.primary = r.p
	}
	switch {
	case r.s != nil && m.drMode == Secondary:
		m.drSecondary = r.s
	case r.s != nil:
		m.setSecondaryLocked(r.s)
	}
}

// roleLocked is the role the stored modes start: a primary for a
// performance or DR primary, a secondary (DR when drMode says so), or none.
func (m *Manager) roleLocked() (Mode, primary.Config, secondary.Config) {
	mode := m.mode
	switch m.drMode {
	case Primary:
		mode = Primary
	case Secondary:
		mode = Secondary
	}
	return mode, m.primaryConfig(), m.secondaryConfigOf(m.drMode == Secondary)
}

// startRoleLocked opens the stored role (m.mode) once, holding m.mu.
func (m *Manager) startRoleLocked(ctx context.Context) error {
	mode, pc, sc := m.roleLocked()
	r, err := openRole(ctx, mode, pc, sc)
	if err != nil {
		return err
	}
	m.installLocked(r)
	return nil
}

// retryStart retries the stored role's start with backoff until it succeeds
// or ctx ends. It holds m.mu only to read the configuration and to install
// the role, never while it waits on NATS.
func (m *Manager) retryStart(ctx context.Context, done chan struct{}) {
	defer close(done)
	b := backoff.Backoff{Min: 500 * time.Millisecond, Max: 15 * time.Second}
	for b.Wait(ctx) {
		m.mu.RLock()
		mode, pc, sc := m.roleLocked()
		m.mu.RUnlock()
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		r, err := openRole(actx, mode, pc, sc)
		cancel()
		m.mu.Lock()
		if ctx.Err() != nil {
			m.mu.Unlock()
			r.stop()
			return
		}
		if err == nil {
			m.installLocked(r)
			m.starting, m.startErr = nil, ""
			m.mu.Unlock()
			m.log.Info().Str("mode", string(mode)).Msg("replication started")
			return
		}
		m.startErr = err.Error()
		m.mu.Unlock()
	}
}

func (r role) stop() {
	if r.p != nil {
		r.p.Stop()
	}
	if r.s != nil {
		r.s.Stop()
	}
}

// stopRetry ends a background start, if one runs, and waits for it.
func (m *Manager) stopRetry() {
	m.mu.Lock()
	r := m.starting
	m.starting = nil
	m.mu.Unlock()
	if r != nil {
		r.cancel()
		<-r.done
		if r.clearCheck != nil {
			r.clearCheck()
		}
	}
}

// Stop stops the role's goroutines (on seal and shutdown).
func (m *Manager) Stop() {
	m.stopRetry()
	m.stopReindex(true)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.primary != nil {
		m.primary.Stop()
		m.primary = nil
	}
	if m.secondary != nil {
		m.secondary.Stop()
		m.secondary, m.client = nil, nil
	}
	if m.drSecondary != nil {
		m.drSecondary.Stop()
		m.drSecondary = nil
	}
	m.mode, m.drMode, m.startErr = Disabled, Disabled, ""
}

func (m *Manager) setSecondaryLocked(s *secondary.Secondary) {
	m.mode, m.secondary = Secondary, s
	m.client = forwarder.NewClient(transport{s}, forwarder.NewSequencer(seqStore{m.host.Barrier()}), m.cfg.BestEffortWALWait)
}

// Forwarder is the forwarding client of a secondary, nil otherwise.
func (m *Manager) Forwarder() *forwarder.Client {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.client
}

// Position returns, on a secondary, the set id and the primary's WAL index
// applied here.
//
// The set id X-Vault-Index carries names the generation too ("<set>@g<n>"):
// WAL indexes of two generations do not compare (a promoted DR secondary
// ships its own WAL), so a header of an older generation is one of another
// set, which the read-after-write check ignores. On a primary it is the
// generation it holds, with its own WAL index.
func (m *Manager) Position() (string, uint64, bool) {
	m.mu.RLock()
	s, p := m.secondary, m.primary
	m.mu.RUnlock()
	switch {
	case s != nil:
		st := s.Status()
		return indexSet(st.PrimaryClusterID, st.Generation), st.LastRemoteWAL, true
	case p != nil:
		return indexSet(m.host.ClusterID(), p.Generation()), m.host.WAL().LastIndex(), true
	}
	return "", 0, false
}

// indexSet is the set id of X-Vault-Index for a set in generation gen.
func indexSet(set string, gen uint64) string {
	if gen == 0 {
		return set
	}
	return fmt.Sprintf("%s@g%d", set, gen)
}

// WriteRefusal is the running primary's fence (primary.Fenced) as a 503, or
// nil.
func (m *Manager) WriteRefusal() error {
	m.mu.RLock()
	p := m.primary
	m.mu.RUnlock()
	if p == nil {
		return nil
	}
	if err := p.Fenced(); err != nil {
		return logical.Errorf(http.StatusServiceUnavailable, "%v", err)
	}
	return nil
}

// PrimaryAPIAddr is the primary's API address a secondary knows.
func (m *Manager) PrimaryAPIAddr() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.primaryAPI
}

// ShippedIndex is, on a primary, the last WAL index JetStream acknowledged
// (or less while a paths filter's merkle index still needs the entries after
// it: primary.WALFloor). A primary whose shipper is not running yet reports the index it stored
// (0 when it cannot read it), so the WAL collector never truncates what was
// not shipped.
func (m *Manager) ShippedIndex() (uint64, bool) {
	m.mu.RLock()
	p, mode := m.primary, m.mode
	m.mu.RUnlock()
	switch {
	case p != nil:
		return p.WALFloor(), true // the shipped index, or less for its paths filters' indexes
	case mode == Primary:
		idx, _, err := primary.StoredShipped(context.Background(), logical.NewView(m.host.Barrier(), primaryPrefix))
		if err != nil {
			return 0, true
		}
		return idx, true
	}
	return 0, false
}

// Replication state in storage (class ignored: never shipped):
//
//	core/replication/mode          the stored mode (state.go)
//	core/replication/primary/      the primary package's state (barrier view)
//	core/replication/secondary/    the secondary package's state
const (
	primaryPrefix   = "core/replication/primary/"
	secondaryPrefix = "core/replication/secondary/"
)

func (m *Manager) primaryConfig() primary.Config {
	return primary.Config{
		ClusterID:         m.host.ClusterID(),
		APIAddr:           m.host.APIAddr(),
		BusURL:            m.clusterAddr,
		Bus:               m.cfg.Bus,
		WAL:               m.host.WAL(),
		Raw:               m.host.WAL(),
		State:             logical.NewView(m.host.Barrier(), primaryPrefix),
		Classify:          m.host.Classify,
		RootKey:           m.host.Barrier().RootKey,
		DevRootTokenID:    m.devRoot,
		Stream:            bus.StreamConfig{MaxAge: m.cfg.WALStreamMaxAge, MaxBytes: m.cfg.WALStreamMaxBytes, MaxMsgs: m.cfg.WALStreamMaxMsgs, Replicas: m.cfg.WALStreamReplicas},
		HeartbeatInterval: m.cfg.HeartbeatInterval,
		MaxTokenTTL:       m.cfg.MaxTokenTTL,
		Forward:           m.handleForward,
		Merkle:            m.host.Merkle,
		MountOf:           m.host.MountOfKey,
		HATerm:            m.host.HATerm,
		Logger:            m.log.With().Str("component", "primary").Logger(),
	}
}

// secondaryConfigOf is secondaryConfig for a DR secondary when dr: it takes
// local keys and syncs by full listing (the merkle index covers the
// replicated keys only).
func (m *Manager) secondaryConfigOf(dr bool) secondary.Config {
	cfg := m.secondaryConfig()
	if dr {
		cfg.DR, cfg.Merkle = true, nil
	}
	return cfg
}

// secondaryConfig: the secondary opens its own connection to the primary's
// NATS (the URL in the activation token), not this cluster's bus.
func (m *Manager) secondaryConfig() secondary.Config {
	return secondary.Config{
		BusConfig:         m.cfg.BusTemplate,
		WAL:               m.host.WAL(),
		Raw:               m.host.Physical(),
		State:             logical.NewView(m.host.Barrier(), secondaryPrefix+"secrets/"),
		StateKey:          secondaryPrefix + "state",
		Classify:          m.host.Classify,
		OnApplied:         m.onApplied,
		Merkle:            m.host.Merkle,
		APIAddr:           m.host.APIAddr(),
		ClusterID:         m.host.ClusterID(),
		HeartbeatInterval: m.cfg.HeartbeatInterval,
		Logger:            m.log.With().Str("component", "secondary").Logger(),
	}
}

// onApplied runs after each batch or sync page a secondary applied. During
// an activation the barrier opens with the bundle's root key as soon as the
// primary's keyring has arrived, and nothing else is reloaded (core brings
// the logical layer up when the activation ends).
func (m *Manager) onApplied(keys []string) {
	m.mu.RLock()
	root := m.activationRoot
	m.mu.RUnlock()
	if root == nil {
		m.host.Invalidate(keys)
		return
	}
	b := m.host.Barrier()
	if !b.Sealed() {
		return
	}
	for _, k := range keys {
		if k == barrier.KeyringPath {
			if err := b.Unseal(context.Background(), root); err != nil {
				m.log.Error().Err(err).Msg("open the primary's keyring with the activation root key")
			}
			return
		}
	}
}
