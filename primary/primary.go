package primary

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/internal/clock"
	"github.com/cofferhq/coffer/merkle"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
	"github.com/rs/zerolog"
)

// Defaults.
const (
	DefaultHeartbeatInterval = 2 * time.Second
	DefaultTokenTTL          = 30 * time.Minute
	// DefaultMaxTokenTTL is the longest activation token ttl granted unless
	// Config.MaxTokenTTL says otherwise.
	DefaultMaxTokenTTL = 24 * time.Hour
)

// Errors of the primary API, for the lead to map to HTTP status codes.
var (
	// ErrNotEnabled: Open found no replication state: enable replication first.
	ErrNotEnabled = errors.New("primary: replication is not enabled on this cluster")
	// ErrAlreadyEnabled: Enable found replication state already: use Open.
	ErrAlreadyEnabled = errors.New("primary: replication is already enabled on this cluster")
	// ErrSecondaryExists: a token for the id is still live, or the id is an
	// active secondary: revoke it first.
	ErrSecondaryExists = errors.New("primary: this secondary id already has a live activation token or is an active secondary: revoke it first")
	// ErrDRNotEnabled: a DR token from a primary without DR replication.
	ErrDRNotEnabled = errors.New("primary: DR replication is not enabled on this primary: enable it with sys/replication/dr/primary/enable")
	// ErrUnknownSecondary: no secondary of that id.
	ErrUnknownSecondary = errors.New("primary: no secondary of that id")
	// ErrInvalidID: the secondary id breaks replication.ValidateID.
	ErrInvalidID = errors.New("primary: invalid secondary id")
	// ErrTokenTTL: the requested activation token ttl is above
	// Config.MaxTokenTTL (an invalid request; the message says the maximum
	// and how to raise it).
	ErrTokenTTL = errors.New("primary: activation token ttl too long")
)

// Config configures a Primary. Validate fills defaults.
type Config struct {
	// Forward handles the opened payload of a secondary's forward RPC (a
	// forwarded write, which this package never decodes: package forwarder
	// does, above the barrier) and returns the reply payload; nil refuses
	// forwarding. See forward.go.
	Forward func(ctx context.Context, secondaryID string, payload []byte) ([]byte, *replication.RPCError)
	// ClusterID is this cluster's id (replication.ValidateID).
	ClusterID string
	// APIAddr is this cluster's API address, advertised in tokens.
	APIAddr string
	// BusURL is the NATS URL advertised in activation tokens; default Bus.ClientURL().
	BusURL string
	// Bus is the NATS connection. Required.
	Bus *bus.Bus
	// WAL is the log of committed entries to ship. Required.
	WAL *wal.Log
	// Raw is storage below the barrier: sync pages list its replicated keys and
	// their ciphertext. Required.
	Raw storage.Backend
	// State is where the primary keeps its replication state (a barrier view
	// under core/replication/primary/). Required.
	State storage.Backend
	// Classify gives a key's class; only Replicated keys are listed by sync.
	// Nil means wal.DefaultClassify.
	Classify func(key string) wal.Class
	// RootKey returns the barrier root key for the bootstrap bundle. Required.
	RootKey func() ([]byte, error)
	// Merkle returns this cluster's merkle index over the replicated keys
	// (following this WAL), or nil when there is none right now. A func, as
	// sys/replication/reindex swaps the index. With an index, every batch
	// carries the root as its guard when the index applied exactly the batch's
	// last entry, and the merkle RPC serves merkle sync. Nil (or a nil index):
	// no guards, the merkle RPC answers "unavailable" and secondaries fall back
	// to the full listing.
	Merkle func() *merkle.Index
	// DevRootTokenID is put in the bundle ("" unless dev mode).
	DevRootTokenID string
	// Stream holds the WAL stream's limits (MaxAge, MaxBytes, MaxMsgs; 0 =
	// unlimited) and Replicas; Name and Subject are set by the primary.
	Stream bus.StreamConfig
	// MaxTokenTTL is the longest ttl SecondaryToken grants (replication {
	// max_activation_token_ttl }); default 24h. A live token is a standing
	// invitation to join the replication set: keep it short.
	MaxTokenTTL time.Duration
	// HeartbeatInterval is the secondaries' heartbeat interval: a secondary is
	// connected when it was heard from within 3 intervals. Default 2s.
	HeartbeatInterval time.Duration
	// LeaseTTL is how long the set's generation claim must stay unchanged
	// before another process of this cluster takes it over (after a crash);
	// the holder renews it every fifth of it. Default DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Logger receives the primary's logs.
	Logger zerolog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MountOf resolves a storage key to the route path of the mount whose
	// data it is ("secret/"; core.Core.MountOfKey): what paths filters
	// decide on. Nil: paths filters are unavailable.
	MountOf func(key string) (path string, ok bool)
	// HATerm is the node's term as its cluster's active node (nil or 0: a
	// cluster of one node): it lets a later active node take the set over
	// from an earlier one at once (claim.go).
	HATerm func() uint64
}

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	switch {
	case c.Bus == nil:
		return errors.New("primary config: no bus")
	case c.WAL == nil:
		return errors.New("primary config: no WAL")
	case c.Raw == nil || c.State == nil:
		return errors.New("primary config: raw storage and state storage are required")
	case c.RootKey == nil:
		return errors.New("primary config: no root key function")
	case c.HeartbeatInterval < 0:
		return errors.New("primary config: negative heartbeat interval")
	case c.MaxTokenTTL < 0:
		return errors.New("primary config: negative maximum activation token ttl")
	case c.LeaseTTL < 0:
		return errors.New("primary config: negative lease ttl")
	}
	if err := replication.ValidateID(c.ClusterID); err != nil {
		return fmt.Errorf("primary config: cluster id: %w", err)
	}
	if c.Classify == nil {
		c.Classify = wal.DefaultClassify
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.MaxTokenTTL == 0 {
		c.MaxTokenTTL = DefaultMaxTokenTTL
	}
	if c.Now == nil {
		c.Now = clock.Now
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.Merkle == nil {
		c.Merkle = func() *merkle.Index { return nil }
	}
	if c.BusURL == "" {
		c.BusURL = c.Bus.ClientURL()
	}
	return nil
}

func (c *Config) streamConfig() bus.StreamConfig {
	sc := c.Stream
	sc.Name = replication.StreamName(c.ClusterID)
	sc.Subject = replication.WALSubject(c.ClusterID)
	sc.Also = []string{replication.FilterSubjects(c.ClusterID)}
	return sc
}

// Primary is a running replication primary: the shipper and the RPC server.
type Primary struct {
	cfg    Config
	log    zerolog.Logger
	stream string
	subj   string
	guard  *replication.ReplayGuard
	idKeys atomic.Pointer[idKeyMemo] // the shipper's message id key (idKey)

	// mu guards st (and its persistence), live and tagMemos.
	mu   sync.Mutex
	st   *persisted
	live map[string]*liveInfo
	// tagMemos are the active secondaries' batch tag keys, by id (tagKeys).
	tagMemos map[string]tagMemo

	shipped atomic.Uint64
	// stalledIndex and stalledAt: the index that last missed guardWait and its
	// Applied then (shipper goroutine only).
	stalledIndex *merkle.Index
	stalledAt    uint64
	// seq is the highest WAL stream sequence seen, checkedAt when the stream
	// was last checked (shipper goroutine only, and start before it runs).
	seq       uint64
	checkedAt time.Time
	// smu guards ss, the shipper's record for Status.
	smu sync.Mutex
	ss  shipStats

	// clearCheck removes the WAL entry check this primary set (Stop).
	clearCheck func()
	// The paths filters' lanes (filter.go), by filter ID, under fmu;
	// laneSync serialises syncLanes.
	fmu      sync.Mutex
	lanes    map[string]*lane
	laneSync sync.Mutex
	// building is 1 + the WAL index a lane's index is being built from
	// (0: none), for WALFloor.
	building atomic.Uint64

	// The generation claim (lease.go): instance is random per process; gen
	// is the generation held, 0 while claiming or fenced; holding closes once
	// the claim is first held, fenced when the primary is fenced.
	instance  string
	reg       *bus.Register
	gen       atomic.Uint64
	leaseWake chan struct{}
	holding   chan struct{}
	holdOnce  sync.Once
	fenced    chan struct{}
	fenceOnce sync.Once
	lmu       sync.Mutex
	lease     leaseState
	behind    string // noteBehind, under lmu
	promote   bool   // TakeOver: claim the next generation at once

	cancel context.CancelFunc
	wg     sync.WaitGroup
	stops  []func()
	once   sync.Once
}

// liveInfo is what heartbeats tell, in memory only.
type liveInfo struct {
	apiAddr       string
	lastRemoteWAL uint64
	lastHeartbeat time.Time
	// From the heartbeat (informational): the secondary's clock minus ours
	// (half a round trip allowed for), its last heartbeat's round trip, and
	// our commit time of the newest entry it applied (Unix nanoseconds).
	clockSkew    time.Duration
	rtt          time.Duration
	remoteCommit int64
}

// Enable turns this cluster into a replication primary for the first time:
// it generates the signing key and the replication key of epoch 1, stores them,
// provisions the stream and starts the shipper and the RPC server. Shipping
// starts at the WAL's current last index: entries written before are not
// shipped (a new secondary runs a full sync).
func Enable(ctx context.Context, cfg Config) (*Primary, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if st, err := loadState(ctx, cfg.State); err != nil {
		return nil, err
	} else if st != nil {
		return nil, ErrAlreadyEnabled
	}
	_, signer, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	st := &persisted{V: stateV, ClusterID: cfg.ClusterID, SigningKey: signer, Epoch: 1,
		Keys: map[string][]byte{}, Secondary: map[string]*secondaryRec{}}
	st.setKey(1, randomKey())
	// The shipped index first: a crash between the two writes leaves no state,
	// so Enable can run again.
	if err := saveShipped(ctx, cfg.State, cfg.WAL.LastIndex(), 0); err != nil {
		return nil, fmt.Errorf("enable primary: %w", err)
	}
	if err := saveState(ctx, cfg.State, st); err != nil {
		return nil, fmt.Errorf("enable primary: %w", err)
	}
	p, err := start(ctx, cfg, st)
	if err != nil {
		// Nothing runs: forget the state so that enable can be retried
		// (a NATS cluster still forming cannot place the stream yet).
		for _, k := range []string{stateKey, shippedKey} {
			if derr := cfg.State.Delete(context.WithoutCancel(ctx), k); derr != nil {
				return nil, fmt.Errorf("enable primary: %w (and its state could not be removed: %v; restart and retry)", err, derr)
			}
		}
		return nil, fmt.Errorf("enable primary: %w; nothing was enabled, retry", err)
	}
	// A new set's generation is claimed at once (nothing to wait for): wait
	// for it, so that the first token's activation finds a primary that
	// answers.
	select {
	case <-p.holding:
	case <-p.fenced:
	case <-time.After(publishTimeout):
		p.log.Warn().Msg("the set's generation is not claimed yet; shipping and activations wait for it")
	case <-ctx.Done():
	}
	return p, nil
}

// Open restarts an already enabled primary from its stored state.
func Open(ctx context.Context, cfg Config) (*Primary, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st, err := loadState(ctx, cfg.State)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, ErrNotEnabled
	}
	if st.ClusterID != cfg.ClusterID {
		return nil, fmt.Errorf("open primary: the stored replication state belongs to cluster %q, this is %q", st.ClusterID, cfg.ClusterID)
	}
	return start(ctx, cfg, st)
}

func start(ctx context.Context, cfg Config, st *persisted) (*Primary, error) {
	return startWith(ctx, cfg, st, false)
}

func startWith(ctx context.Context, cfg Config, st *persisted, promote bool) (*Primary, error) {
	p := &Primary{
		promote:   promote,
		cfg:       cfg,
		log:       cfg.Logger.With().Str("component", "replication-primary").Str("cluster_id", cfg.ClusterID).Logger(),
		stream:    replication.StreamName(cfg.ClusterID),
		subj:      replication.WALSubject(cfg.ClusterID),
		guard:     replication.NewReplayGuard(replication.DefaultReplayWindow),
		st:        st,
		live:      make(map[string]*liveInfo),
		instance:  randomID(),
		leaseWake: make(chan struct{}, 1),
		holding:   make(chan struct{}),
		fenced:    make(chan struct{}),
		lease:     leaseState{state: ClaimClaiming},
		lanes:     map[string]*lane{},
	}
	rec, ok, err := loadShipped(ctx, cfg.State)
	if err != nil {
		return nil, err
	}
	shipped := rec.Index
	if !ok {
		shipped = cfg.WAL.LastIndex()
	}
	p.shipped.Store(shipped)
	p.seq = rec.Seq
	if st.Fenced != nil {
		// Fenced for good: nothing is shipped or served until demoted.
		p.lease = leaseState{state: ClaimFenced, why: st.Fenced.Why}
		p.fenceOnce.Do(func() { close(p.fenced) })
		p.cancel = func() {}
		p.log.Warn().Str("holder", st.Fenced.ClusterID).Uint64("generation", st.Fenced.Gen).Msg("replication primary is fenced: it ships nothing and refuses writes until demoted")
		return p, nil
	}
	if err := p.provisionStream(ctx); err != nil {
		return nil, fmt.Errorf("start primary: %w", err)
	}
	if p.reg, err = cfg.Bus.Register(ctx, replication.GenerationBucket(cfg.ClusterID), replication.GenerationKey, cfg.Stream.Replicas); err != nil {
		return nil, fmt.Errorf("start primary: %w", err)
	}
	storedGen, epoch := st.Generation, st.Epoch // read before the goroutines may write them
	streamLast, lastBatch := p.streamLastOf(ctx, storedGen)
	if lastBatch != nil && shipped < streamLast && p.walHolds(ctx, lastBatch) {
		// A crash lost the shipped index stored lazily, not the WAL: the
		// stream's last batch is in it, as shipped. Resume after it in the
		// same generation (secondaries keep their position) rather than
		// take the set to the next one as if the storage went back in time.
		p.log.Info().Uint64("stored_shipped", shipped).Uint64("stream_last", streamLast).
			Msg("the WAL holds the stream's last batch: resuming shipping after it")
		shipped = streamLast
		p.shipped.Store(shipped)
	}
	if err := p.syncLanes(ctx); err != nil {
		p.stopLanes()
		return nil, fmt.Errorf("start primary: %w", err)
	}
	if err := p.serve(); err != nil {
		p.stopServers()
		p.stopLanes()
		return nil, fmt.Errorf("start primary: %w", err)
	}
	p.clearCheck = cfg.WAL.SetEntryCheck(p.checkEntry)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.cancel = cancel
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		p.leaseLoop(runCtx, streamLast)
	}()
	go func() {
		defer p.wg.Done()
		p.ship(runCtx)
	}()
	p.log.Info().Uint64("shipped", shipped).Uint32("epoch", epoch).Str("stream", p.stream).Uint64("stored_generation", storedGen).
		Msg("replication primary started; it ships once it holds the set's generation")
	return p, nil
}

// Stop stops the RPC server and the shipper (which persists its index) and
// waits for them. Idempotent.
func (p *Primary) Stop() {
	p.once.Do(func() {
		if p.clearCheck != nil {
			p.clearCheck()
		}
		p.stopServers()
		p.cancel()
		p.wg.Wait()
		p.stopLanes()
		if p.reg != nil {
			p.release()
		}
		p.log.Info().Uint64("shipped", p.shipped.Load()).Msg("replication primary stopped")
	})
}

func (p *Primary) stopServers() {
	for _, stop := range p.stops {
		stop()
	}
	p.stops = nil
}

// Disable deletes the WAL stream (with every consumer) and the primary's
// state. Stop the Primary first.
func Disable(ctx context.Context, cfg Config) error {
	if cfg.Bus == nil || cfg.State == nil {
		return errors.New("disable primary: bus and state storage are required")
	}
	if err := cfg.Bus.DeleteStream(ctx, replication.StreamName(cfg.ClusterID)); err != nil {
		return fmt.Errorf("disable primary: %w", err)
	}
	for _, k := range []string{shippedKey, stateKey} {
		if err := cfg.State.Delete(ctx, k); err != nil {
			return fmt.Errorf("disable primary: delete %s: %w", k, err)
		}
	}
	return nil
}

// Status is the primary's view for sys/replication/status.
type Status struct {
	ClusterID    string
	LastWAL      uint64 // the WAL's last committed index
	ShippedIndex uint64 // the last index JetStream acknowledged
	Epoch        uint32 // the current replication key epoch
	Stream       string
	Secondaries  []SecondaryStatus // sorted by ID

	// The WAL stream on an untrusted bus (docs/replication.md):
	// StreamRepairs counts the times the shipper found the stream missing,
	// changed or displaced and restored it; LastStreamRepair says what it
	// found and did the last time, at LastStreamRepairAt.
	StreamRepairs      uint64
	LastStreamRepair   string
	LastStreamRepairAt time.Time
	// ForeignDuplicates counts publishes JetStream dropped as duplicates of a
	// message this primary had not published (each was published again
	// under a fresh id).
	ForeignDuplicates uint64
	// ShipError is why the batch being shipped is not stored yet ("" while
	// shipping works), failing since ShipErrorSince.
	ShipError      string
	ShipErrorSince time.Time

	// The set's generation (docs/replication.md, "Generations"):
	// Generation is the one held (the stored one while claiming or
	// fenced); ClaimState is ClaimClaiming, ClaimHolding or ClaimFenced,
	// ClaimWhy why it waits or is fenced, ClaimError the last KV error;
	// Holder the cluster that holds the set when fenced; ForeignClaims
	// counts claim records on the bus the set's key did not sign.
	Generation    uint64
	ClaimState    string
	ClaimWhy      string
	ClaimError    string
	Holder        string
	HolderAPIAddr string
	ForeignClaims int
}

// SecondaryStatus is one secondary as the primary sees it.
type SecondaryStatus struct {
	ID            string
	State         string // SecondaryPending, SecondaryActive, SecondaryRevoked
	APIAddr       string
	LastRemoteWAL uint64
	LastHeartbeat time.Time
	// Connected: a heartbeat arrived within 2 heartbeat intervals.
	Connected bool
	// ClockSkew, HeartbeatRTT and Lag come from its last heartbeat: its
	// clock minus ours, the round trip of its heartbeat before it, and how
	// old the newest entry it applied is while it is behind (0 once it has
	// everything).
	ClockSkew    time.Duration
	HeartbeatRTT time.Duration
	Lag          time.Duration
	TokenExpires time.Time
	// Kind is KindDR for a DR secondary, "" for a performance one.
	Kind string
	// Filter is its paths filter (nil: none); FilterRoot the root of the
	// primary's merkle index of what the filter allows, in hex ("" while it
	// is not in service): a filtered secondary that has everything shows it
	// as its merkle_root.
	Filter     *replication.Filter
	FilterRoot string
}

// Status returns the current status.
func (p *Primary) Status() Status {
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Status{ClusterID: p.cfg.ClusterID, LastWAL: p.cfg.WAL.LastIndex(), ShippedIndex: p.shipped.Load(),
		Epoch: p.st.Epoch, Stream: p.stream}
	p.smu.Lock()
	s.StreamRepairs, s.LastStreamRepair, s.LastStreamRepairAt = p.ss.repairs, p.ss.lastRepair, p.ss.lastRepairAt
	s.ForeignDuplicates, s.ShipError, s.ShipErrorSince = p.ss.foreignDups, p.ss.err, p.ss.errSince
	p.smu.Unlock()
	s.Generation = p.st.Generation
	if f := p.st.Fenced; f != nil {
		s.Holder, s.HolderAPIAddr, s.Generation = f.ClusterID, f.APIAddr, f.Gen
	}
	p.lmu.Lock()
	s.ClaimState, s.ClaimWhy, s.ClaimError, s.ForeignClaims = p.lease.state, p.lease.why, p.lease.err, p.lease.foreign
	p.lmu.Unlock()
	for id, r := range p.st.Secondary {
		ss := SecondaryStatus{ID: id, State: r.State, TokenExpires: r.TokenExpires, Kind: r.Kind, Filter: r.Filter}
		if r.Filter != nil {
			ss.FilterRoot = p.laneRoot(r.Filter.ID())
		}
		if l := p.live[id]; l != nil {
			ss.APIAddr, ss.LastRemoteWAL, ss.LastHeartbeat = l.apiAddr, l.lastRemoteWAL, l.lastHeartbeat
			ss.Connected = r.State == SecondaryActive && now.Sub(l.lastHeartbeat) <= 2*p.cfg.HeartbeatInterval
			ss.ClockSkew, ss.HeartbeatRTT = l.clockSkew, l.rtt
			ss.Lag = replication.LagOf(now, l.lastRemoteWAL, s.LastWAL, l.remoteCommit)
		}
		s.Secondaries = append(s.Secondaries, ss)
	}
	sort.Slice(s.Secondaries, func(i, j int) bool { return s.Secondaries[i].ID < s.Secondaries[j].ID })
	return s
}

// SecondaryToken issues a signed, single-use activation token for secondary
// id, valid for ttl (0 = 30m, or Config.MaxTokenTTL when that is shorter),
// carrying a fresh activation secret that the registry keeps until the token
// is used. It refuses a ttl above Config.MaxTokenTTL (ErrTokenTTL) and, while
// id has a live token or is active, ErrSecondaryExists. The token is a bearer
// credential: it goes to the operator (the HTTP response), never on the bus.
func (p *Primary) SecondaryToken(ctx context.Context, id string, ttl time.Duration) (string, time.Time, error) {
	return p.SecondaryTokenKind(ctx, id, ttl, "")
}

// SecondaryTokenKind is SecondaryToken for a secondary of kind ("" for a
// performance secondary, KindDR for a DR secondary: DR must be enabled).
func (p *Primary) SecondaryTokenKind(ctx context.Context, id string, ttl time.Duration, kind string) (string, time.Time, error) {
	tok, exp, err := p.issueToken(ctx, id, ttl, kind)
	if err != nil {
		return "", time.Time{}, err
	}
	// The id's filter, kept across a revocation: its lane runs again.
	if err := p.syncLanes(ctx); err != nil {
		return "", time.Time{}, fmt.Errorf("secondary token: %w", err)
	}
	return tok, exp, nil
}

// issueToken is SecondaryTokenKind but for the lanes.
func (p *Primary) issueToken(ctx context.Context, id string, ttl time.Duration, kind string) (string, time.Time, error) {
	if err := replication.ValidateID(id); err != nil {
		return "", time.Time{}, fmt.Errorf("%w: %v", ErrInvalidID, err)
	}
	if ttl <= 0 {
		ttl = min(DefaultTokenTTL, p.cfg.MaxTokenTTL)
	}
	if ttl > p.cfg.MaxTokenTTL {
		return "", time.Time{}, fmt.Errorf("%w: ttl %s is above the maximum of %s: ask for a shorter ttl, or raise "+
			"replication { max_activation_token_ttl } in the primary's server configuration", ErrTokenTTL, ttl, p.cfg.MaxTokenTTL)
	}
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if kind == KindDR && !p.st.DR {
		return "", time.Time{}, ErrDRNotEnabled
	}
	if r := p.st.Secondary[id]; r != nil {
		if r.State == SecondaryActive || (r.State == SecondaryPending && now.Before(r.TokenExpires)) {
			return "", time.Time{}, ErrSecondaryExists
		}
	}
	exp := time.Unix(now.Add(ttl).Unix(), 0) // the token carries whole seconds
	jti := randomID()
	secret := replication.NewActivationSecret()
	signer := p.st.signer()
	tok, err := replication.SignToken(&replication.TokenClaims{
		Issuer: p.cfg.ClusterID, Subject: id, ID: jti, IssuedAt: now.Unix(), Expires: exp.Unix(),
		APIAddr: p.cfg.APIAddr, BusURL: p.cfg.BusURL, PublicKey: signer.Public().(ed25519.PublicKey),
		Secret: secret, Kind: kind,
	}, signer)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("secondary token: %w", err)
	}
	old := p.st.Secondary[id]
	rec := &secondaryRec{State: SecondaryPending, JTI: jti, TokenExpires: exp, Secret: secret, Kind: kind}
	if old != nil && kind == "" {
		rec.Filter = old.Filter // the paths filter belongs to the id: a new token keeps it
	}
	p.st.Secondary[id] = rec
	if err := saveState(ctx, p.cfg.State, p.st); err != nil {
		p.restoreRec(id, old)
		return "", time.Time{}, fmt.Errorf("secondary token: %w", err)
	}
	p.log.Info().Str("secondary_id", id).Time("expires", exp).Msg("activation token issued")
	return tok, exp, nil
}

func (p *Primary) restoreRec(id string, old *secondaryRec) {
	if old == nil {
		delete(p.st.Secondary, id)
	} else {
		p.st.Secondary[id] = old
	}
}

// RevokeSecondary revokes secondary id: its token or activation ends, every
// RPC of it is refused from now on, its durable consumer is deleted, and the
// primary moves to a new replication key epoch (the remaining secondaries
// fetch it with the key RPC), so batches shipped from now on are unreadable
// to it.
func (p *Primary) RevokeSecondary(ctx context.Context, id string) error {
	p.mu.Lock()
	r := p.st.Secondary[id]
	if r == nil {
		p.mu.Unlock()
		return fmt.Errorf("revoke secondary %q: %w", id, ErrUnknownSecondary)
	}
	old := *r
	wasActive := r.State == SecondaryActive
	r.State, r.RPCKey, r.Secret, r.RevokedAt = SecondaryRevoked, nil, nil, p.cfg.Now()
	oldEpoch := p.st.Epoch
	if wasActive {
		p.st.Epoch++
		p.st.setKey(p.st.Epoch, randomKey())
		if p.st.DR {
			p.st.ensureDRKey()
		}
	}
	if err := saveState(ctx, p.cfg.State, p.st); err != nil {
		*r = old
		if wasActive {
			delete(p.st.Keys, fmt.Sprint(p.st.Epoch))
			p.st.Epoch = oldEpoch
		}
		p.mu.Unlock()
		return fmt.Errorf("revoke secondary %q: %w", id, err)
	}
	epoch := p.st.Epoch
	delete(p.live, id)
	p.mu.Unlock()
	p.log.Info().Str("secondary_id", id).Uint32("epoch", epoch).Msg("secondary revoked")
	if err := p.cfg.Bus.DeleteConsumer(ctx, p.stream, replication.ConsumerName(id)); err != nil {
		p.log.Warn().Err(err).Str("secondary_id", id).Msg("revoked, but its consumer could not be deleted; it can no longer read new batches anyway (new key epoch)")
	}
	if old.Filter != nil {
		return p.syncLanes(ctx) // its filter's lane may have no secondary left
	}
	return nil
}

// currentKey returns the current epoch, its key and the signing key.
func (p *Primary) currentKey() (uint32, []byte, ed25519.PrivateKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.Epoch, p.st.key(p.st.Epoch), p.st.signer()
}

func randomKey() []byte {
	k := make([]byte, replication.KeySize)
	if _, err := rand.Read(k); err != nil {
		panic(err)
	}
	return k
}

func randomID() string {
	return fmt.Sprintf("%x", randomKey()[:16])
}
