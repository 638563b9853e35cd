package secondary

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/internal/clock"
	"github.com/cofferhq/coffer/merkle"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
	"github.com/rs/zerolog"
)

// Defaults and bounds.
const (
	DefaultHeartbeatInterval = 2 * time.Second
	// rpcTimeout bounds one RPC to the primary.
	rpcTimeout = 10 * time.Second
	// retryMin and retryMax bound the pause between sync attempts.
	retryMin = 250 * time.Millisecond
	retryMax = 5 * time.Second
	// deleteChunk is how many deletions one sync transaction holds.
	deleteChunk = 512
	// guardWait bounds how long the guard checker waits for the local merkle
	// index to apply a guarded batch's local WAL write; past it the guard is
	// not compared.
	guardWait = 2 * time.Second
	// guardQueue is how many guards may wait for the checker; past it a
	// guard is not compared.
	guardQueue = 256
	// indexWait bounds how long a merkle sync waits for the local index to
	// apply the local WAL; past it the sync uses the full listing.
	indexWait = 10 * time.Second
)

// Errors.
var (
	// ErrNotActivated: Open found no replication state: activate first (or the
	// activation did not finish its first sync before a restart: activate again).
	ErrNotActivated = errors.New("secondary: this cluster is not an activated performance secondary (activate it with a token from the primary)")
	// ErrRevoked: the primary revoked this secondary; activate again with a new token.
	ErrRevoked = errors.New("secondary: revoked by the primary: generate a new token on the primary and activate again")
	// ErrPrimaryChanged: WaitRemoteWAL's index belongs to a primary that no
	// longer holds the set; whether its write survived is unknown here.
	ErrPrimaryChanged = errors.New("secondary: the primary changed")
	// ErrActivation wraps every refusal of the primary at activation; the
	// message says which (already used, expired, revoked, not issued here).
	ErrActivation = errors.New("secondary: activation refused")
)

// Config configures a Secondary. Validate fills defaults.
type Config struct {
	// DR makes this a DR secondary: it takes local keys too (the batches' DR
	// section, listed by sync), keeps a copy of the primary's replication
	// state, and accepts only DR tokens; a performance secondary only
	// performance tokens.
	DR bool
	// Bus is the NATS connection to the primary's NATS system. Nil: the
	// secondary opens (and owns) one to the token's bus URL, the override, or
	// the stored URL, with BusConfig's credentials.
	Bus *bus.Bus
	// BusConfig is the template of that connection (CredsFile, TLSCAFile,
	// Name); its URL is set by the secondary.
	BusConfig bus.Config
	// WAL: every apply writes through it, ops and StateKey in one Write.
	WAL *wal.Log
	// Raw is storage below the barrier: sync deletions list it.
	Raw storage.Transactional
	// State stores the secret replication state (keys): a barrier view, e.g.
	// under core/replication/secondary/secrets/. It is first written at the end
	// of the first full sync, because the keyring arrives with it.
	State storage.Backend
	// StateKey is the raw key (class Ignored) holding last_remote_wal, written
	// with every applied batch. Default DefaultStateKey.
	StateKey string
	// Classify: the secondary applies only keys it does not class Ignored, and
	// sync deletes only its Replicated keys. Nil means wal.DefaultClassify.
	Classify func(key string) wal.Class
	// OnApplied is called after each applied batch and sync page with the keys
	// written or deleted (the lead invalidates caches). It must not block long.
	OnApplied func(keys []string)
	// Merkle returns this cluster's merkle index over the replicated keys
	// (following WAL), or nil when there is none right now. A func, as
	// sys/replication/reindex swaps the index. With an index, a sync is a
	// merkle diff against the primary's index followed by fetching the
	// differing keys, and every guarded batch is checked: after applying it
	// the local root must equal its guard, else a sync runs. Nil (or a nil
	// index, or an index that cannot serve the diff): the full listing.
	Merkle func() *merkle.Index
	// OnState, when set, is called with the new state at every state change,
	// in order. It must not block long nor call back into the Secondary
	// except Status.
	OnState func(State)
	// ClusterID and APIAddr are this cluster's, sent in heartbeats.
	ClusterID, APIAddr string
	// HeartbeatInterval: default 2s.
	HeartbeatInterval time.Duration
	Logger            zerolog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Loop configures the merkle-sync loop detector (loop.go); zero: defaults.
	Loop LoopConfig
}

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	switch {
	case c.WAL == nil:
		return errors.New("secondary config: no WAL")
	case c.Raw == nil || c.State == nil:
		return errors.New("secondary config: raw storage and state storage are required")
	case c.HeartbeatInterval < 0:
		return errors.New("secondary config: negative heartbeat interval")
	}
	if c.StateKey == "" {
		c.StateKey = DefaultStateKey
	}
	if c.Classify == nil {
		c.Classify = wal.DefaultClassify
	}
	if c.Classify(c.StateKey) != wal.Ignored {
		return fmt.Errorf("secondary config: state key %q must be of class ignored", c.StateKey)
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.Now == nil {
		c.Now = clock.Now
	}
	c.Loop.fill()
	if c.OnApplied == nil {
		c.OnApplied = func([]string) {}
	}
	return nil
}

// Secondary is a performance secondary: the durable consumer and applier, the
// full sync and the heartbeats, driven by a Machine.
type Secondary struct {
	cfg    Config
	log    zerolog.Logger
	bus    *bus.Bus
	ownBus bool

	// stepMu serialises Step with its OnState call, so states are reported in order.
	stepMu sync.Mutex
	// asideMu guards the actions heartbeats queued for the goroutine that
	// runs them (execAside) and whether it runs.
	asideMu      sync.Mutex
	asideQ       []Action
	asideRunning bool
	// keyMu serialises fetching an epoch's key: messages verified at once
	// (ahead of the apply) ask for a new epoch's key once, not once each.
	keyMu sync.Mutex
	// mu guards everything below it.
	mu            sync.Mutex
	m             *Machine
	sec           *secret
	needSync      bool // fresh activation: sync before streaming
	stored        bool // sec is in Config.State
	started       bool
	lastHeartbeat time.Time
	hbRTT         time.Duration // the last answered heartbeat's round trip
	remoteCommit  int64         // the primary's commit time of the newest entry applied (Unix ns)
	syncDone      int
	syncTotal     int
	lastErr       string
	hbErr         string              // the last heartbeat's failure; "" once one is answered
	startSeq      uint64              // where a new durable starts (stream last seq + 1 before the first sync)
	advanced      chan struct{}       // closed and replaced at every step: waiters re-check
	loop          *Loop               // the merkle-sync loop detector (loop_driver.go)
	tag           *replication.TagKey // batch tag key (tagKeyLocked), of the RPC key tagRPC
	tagRPC        []byte

	revoked    chan struct{}
	revokeOnce sync.Once
	cancel     context.CancelFunc
	runCtx     context.Context // Start's: what RunAside's actions run under
	wg         sync.WaitGroup
	stopOnce   sync.Once
	// consumeMu guards stopConsume: the consumer is started by the run
	// goroutine or, after a resync a heartbeat started, by execAside's.
	consumeMu   sync.Mutex
	stopConsume func()
	// guards holds the guards the applier queued for the checker (guard.go).
	guards chan guardCheck
}

func newSecondary(cfg Config, b *bus.Bus, own bool, sec *secret) *Secondary {
	return &Secondary{
		cfg: cfg, bus: b, ownBus: own, sec: sec, m: NewMachine(), revoked: make(chan struct{}), advanced: make(chan struct{}),
		loop: NewLoop(cfg.Loop), guards: make(chan guardCheck, guardQueue),
		log: cfg.Logger.With().Str("component", "replication-secondary").Str("primary_cluster_id", sec.PrimaryClusterID).
			Str("secondary_id", sec.SecondaryID).Logger(),
	}
}

func (c *Config) openBus(ctx context.Context, url string) (*bus.Bus, bool, error) {
	if c.Bus != nil {
		return c.Bus, false, nil
	}
	bc := c.BusConfig
	bc.Embedded, bc.URL = false, url
	b, err := bus.Open(ctx, bc, c.Logger)
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// Open restores an activated secondary after a restart from Config.State and
// Config.StateKey. It returns ErrNotActivated when there is no state.
func Open(ctx context.Context, cfg Config) (*Secondary, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sec, err := loadSecret(ctx, cfg.State)
	if err != nil {
		return nil, err
	}
	if sec == nil {
		return nil, ErrNotActivated
	}
	last, gen, err := loadPosition(ctx, cfg.Raw, cfg.StateKey)
	if err != nil {
		return nil, err
	}
	b, own, err := cfg.openBus(ctx, sec.BusURL)
	if err != nil {
		return nil, fmt.Errorf("open secondary: connect to the primary's NATS: %w", err)
	}
	s := newSecondary(cfg, b, own, sec)
	s.stored = true
	s.m.lastRemote, s.m.gen = last, gen
	return s, nil
}

// Start runs the secondary: the first full sync after an activation, then the
// durable consumer and the heartbeats, until Stop (or revocation).
func (s *Secondary) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("secondary: already started")
	}
	if s.m.State() == StateRevoked {
		s.mu.Unlock()
		return ErrRevoked
	}
	s.started = true
	ev := Started{LastRemoteWAL: s.m.lastRemote, NeedSync: s.needSync, Merkle: s.cfg.Merkle != nil, Generation: s.m.gen}
	s.mu.Unlock()
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel, s.runCtx = cancel, runCtx
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		s.run(runCtx, ev)
	}()
	go func() {
		defer s.wg.Done()
		s.checkGuards(runCtx)
	}()
	go func() {
		defer s.wg.Done()
		s.heartbeats(runCtx)
	}()
	return nil
}

// Stop stops the consumer, the sync and the heartbeats and waits for them,
// then closes the bus if the secondary opened it. Idempotent.
func (s *Secondary) Stop() {
	s.stopOnce.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		s.wg.Wait()
		s.step(Stopped{})
		if s.ownBus {
			_ = s.bus.Close()
		}
		s.log.Info().Uint64("last_remote_wal", s.Status().LastRemoteWAL).Msg("replication secondary stopped")
	})
}

// Status is the secondary's view for sys/replication/status.
type Status struct {
	State            State
	SecondaryID      string
	PrimaryClusterID string
	PrimaryAPIAddr   string
	LastRemoteWAL    uint64
	PrimaryLastWAL   uint64 // from the last heartbeat reply
	LastHeartbeat    time.Time
	Connected        bool
	Epoch            uint32
	// SyncKeysDone counts the keys written or deleted by the running (or
	// last) sync. SyncTotalKeys is the number a merkle sync's diff found
	// (added + changed + deleted); 0 for a full listing, whose total is not
	// known in advance.
	SyncKeysDone  int
	SyncTotalKeys int
	LastError     string
	// HeartbeatError is why the last heartbeat failed ("" once one is
	// answered): a write refused while heartbeats fail says it.
	HeartbeatError string
	// Generation is the newest generation of the set seen.
	Generation uint64
	// LastRemoteCommit is the primary's commit time of the newest entry
	// applied here (zero before the first batch of this process); Lag is how
	// old it is while this secondary is behind the primary's last WAL index
	// as the last heartbeat said (0 once caught up: replication.LagOf);
	// HeartbeatRTT is the last answered heartbeat's round trip.
	LastRemoteCommit time.Time
	Lag              time.Duration
	HeartbeatRTT     time.Duration
	// FilterID is the ID of the paths filter the primary applies to this
	// secondary ("" for none).
	FilterID string
}

// Status returns the current status.
func (s *Secondary) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	st := Status{
		State: s.m.State(), SecondaryID: s.sec.SecondaryID, PrimaryClusterID: s.sec.PrimaryClusterID,
		PrimaryAPIAddr: s.sec.PrimaryAPIAddr, LastRemoteWAL: s.m.LastRemoteWAL(), PrimaryLastWAL: s.m.PrimaryLastWAL(),
		LastHeartbeat: s.lastHeartbeat, Epoch: s.sec.Epoch,
		SyncKeysDone: s.syncDone, SyncTotalKeys: s.syncTotal, LastError: s.lastErr, HeartbeatError: s.hbErr, Generation: s.m.Generation(),
		Connected:    connectedAt(now, s.m.Connected(), s.lastHeartbeat, s.cfg.HeartbeatInterval),
		Lag:          replication.LagOf(now, s.m.LastRemoteWAL(), s.m.PrimaryLastWAL(), s.remoteCommit),
		HeartbeatRTT: s.hbRTT,
		FilterID:     s.sec.FilterID,
	}
	if s.remoteCommit != 0 {
		st.LastRemoteCommit = time.Unix(0, s.remoteCommit)
	}
	return st
}

// connectedAt: the primary answered the last heartbeat, and it did so
// within two heartbeat intervals of now. A primary that goes silent (frozen,
// cut off) shows as disconnected two intervals after its last answer, not
// only when a heartbeat's RPC times out.
func connectedAt(now time.Time, answered bool, last time.Time, interval time.Duration) bool {
	return answered && !last.IsZero() && now.Sub(last) <= 2*interval
}

// noteApplied records the primary's commit time of the newest entry of b,
// applied here.
func (s *Secondary) noteApplied(b *replication.Batch) {
	var newest int64
	for _, e := range b.Entries {
		newest = max(newest, e.Time)
	}
	if newest == 0 {
		return
	}
	s.mu.Lock()
	s.remoteCommit = max(s.remoteCommit, newest)
	s.mu.Unlock()
}

// step feeds the machine under the lock, then reports a state change.
func (s *Secondary) step(ev Event) []Action {
	s.stepMu.Lock()
	defer s.stepMu.Unlock()
	s.mu.Lock()
	before := s.m.State()
	acts := s.m.Step(ev)
	after := s.m.State()
	close(s.advanced)
	s.advanced = make(chan struct{})
	s.mu.Unlock()
	if after != before && s.cfg.OnState != nil {
		s.cfg.OnState(after)
	}
	return acts
}

// index is the local merkle index, or nil.
func (s *Secondary) index() *merkle.Index {
	if s.cfg.Merkle == nil {
		return nil
	}
	return s.cfg.Merkle()
}

// PrimaryState is a DR secondary's copy of its primary's replication state
// (nil on a performance secondary): a promotion takes it over.
func (s *Secondary) PrimaryState() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sec.PrimaryState
}

// LastRemoteWAL is the primary WAL index applied here.
func (s *Secondary) LastRemoteWAL() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.LastRemoteWAL()
}

// isRevoked reports whether the machine stopped replication on a
// revocation (StopStreaming closed s.revoked).
func (s *Secondary) isRevoked() bool {
	select {
	case <-s.revoked:
		return true
	default:
		return false
	}
}

func (s *Secondary) setErr(err error) {
	if s.isRevoked() {
		// Terminal: the revocation's reason stays the state. What fails
		// after it (an RPC in flight, cancelled as replication stops) is
		// not why replication stopped.
		return
	}
	s.mu.Lock()
	s.lastErr = err.Error()
	s.mu.Unlock()
}
