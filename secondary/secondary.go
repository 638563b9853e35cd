package secondary

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cofferhq/coffer/bus"
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
	// guardWait bounds how long the applier waits for the local merkle index
	// to apply a guarded batch's local WAL write before comparing roots; past
	// it the guard is not compared.
	guardWait = 2 * time.Second
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
	// ErrActivation wraps every refusal of the primary at activation; the
	// message says which (already used, expired, revoked, not issued here).
	ErrActivation = errors.New("secondary: activation refused")
)

// Config configures a Secondary. Validate fills defaults.
type Config struct {
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
		c.Now = time.Now
	}
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
	// mu guards everything below it.
	mu            sync.Mutex
	m             *Machine
	sec           *secret
	needSync      bool // fresh activation: sync before streaming
	stored        bool // sec is in Config.State
	started       bool
	lastHeartbeat time.Time
	syncDone      int
	syncTotal     int
	lastErr       string
	startSeq      uint64        // where a new durable starts (stream last seq + 1 before the first sync)
	advanced      chan struct{} // closed and replaced at every step: waiters re-check

	revoked     chan struct{}
	revokeOnce  sync.Once
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	stopOnce    sync.Once
	stopConsume func() // run goroutine only
}

func newSecondary(cfg Config, b *bus.Bus, own bool, sec *secret) *Secondary {
	return &Secondary{
		cfg: cfg, bus: b, ownBus: own, sec: sec, m: NewMachine(), revoked: make(chan struct{}), advanced: make(chan struct{}),
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

// Activate redeems an activation token: it checks the token, connects to the
// primary's NATS (busURLOverride, else the token's), sends the activate
// request with a fresh X25519 key and opens the bootstrap bundle. The caller
// then wipes its storage (Wipe), installs bundle.RootKey, and calls Start,
// which runs the first full sync; or Stop to abandon it.
func Activate(ctx context.Context, cfg Config, token, busURLOverride string) (*Secondary, *replication.Bundle, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	claims, err := replication.ParseToken(token, cfg.Now())
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrActivation, err)
	}
	url := claims.BusURL
	if busURLOverride != "" {
		url = busURLOverride
	}
	b, own, err := cfg.openBus(ctx, url)
	if err != nil {
		return nil, nil, fmt.Errorf("activate: connect to the primary's NATS: %w", err)
	}
	fail := func(err error) (*Secondary, *replication.Bundle, error) {
		if own {
			_ = b.Close()
		}
		return nil, nil, err
	}
	priv, err := replication.NewActivationKey()
	if err != nil {
		return fail(err)
	}
	req, err := replication.EncodeMessage(&replication.ActivateRequest{Token: token, PublicKey: priv.PublicKey().Bytes()})
	if err != nil {
		return fail(err)
	}
	rctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	resp, err := b.Request(rctx, replication.RPCSubject(claims.Issuer, replication.MethodActivate), req)
	cancel()
	if err != nil {
		return fail(fmt.Errorf("activate: %w", err))
	}
	var reply replication.ActivateReply
	if err := replication.DecodeMessage(resp, &reply); err != nil {
		return fail(fmt.Errorf("activate: the primary's reply: %w", err))
	}
	if err := reply.Err(); err != nil {
		return fail(fmt.Errorf("%w: %s", ErrActivation, reply.Error))
	}
	bundle, err := replication.OpenBundle(reply.Bundle, priv)
	if err != nil {
		return fail(fmt.Errorf("activate: open the bundle: %w", err))
	}
	if bundle.PrimaryClusterID != claims.Issuer || bundle.SecondaryID != claims.Subject ||
		!bytes.Equal(bundle.SigningPublicKey, claims.PublicKey) {
		return fail(fmt.Errorf("%w: the bundle does not match the token (another primary answered?)", ErrActivation))
	}
	sec := &secret{
		V: stateV, PrimaryClusterID: bundle.PrimaryClusterID, SecondaryID: bundle.SecondaryID,
		PrimaryAPIAddr: claims.APIAddr, BusURL: url, SigningPublicKey: bundle.SigningPublicKey,
		RPCKey: bundle.RPCKey, Stream: bundle.Stream, Subject: bundle.Subject, Keys: map[string][]byte{},
	}
	sec.setKey(bundle.Epoch, bundle.ReplicationKey)
	s := newSecondary(cfg, b, own, sec)
	s.needSync = true
	s.log.Info().Uint32("epoch", bundle.Epoch).Msg("activated; the first full sync starts with Start")
	return s, bundle, nil
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
	last, err := loadPosition(ctx, cfg.Raw, cfg.StateKey)
	if err != nil {
		return nil, err
	}
	b, own, err := cfg.openBus(ctx, sec.BusURL)
	if err != nil {
		return nil, fmt.Errorf("open secondary: connect to the primary's NATS: %w", err)
	}
	s := newSecondary(cfg, b, own, sec)
	s.stored = true
	s.m.lastRemote = last
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
	ev := Started{LastRemoteWAL: s.m.lastRemote, NeedSync: s.needSync, Merkle: s.cfg.Merkle != nil}
	s.mu.Unlock()
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.run(runCtx, ev)
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
}

// Status returns the current status.
func (s *Secondary) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Status{
		State: s.m.State(), SecondaryID: s.sec.SecondaryID, PrimaryClusterID: s.sec.PrimaryClusterID,
		PrimaryAPIAddr: s.sec.PrimaryAPIAddr, LastRemoteWAL: s.m.LastRemoteWAL(), PrimaryLastWAL: s.m.PrimaryLastWAL(),
		LastHeartbeat: s.lastHeartbeat, Connected: s.m.Connected(), Epoch: s.sec.Epoch,
		SyncKeysDone: s.syncDone, SyncTotalKeys: s.syncTotal, LastError: s.lastErr,
	}
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

// WaitRemoteWAL waits until this secondary has applied the primary's WAL up
// to index, or ctx ends (the caller bounds it: best_effort_wal_wait_duration).
func (s *Secondary) WaitRemoteWAL(ctx context.Context, index uint64) error {
	for {
		s.mu.Lock()
		done, ch := s.m.LastRemoteWAL() >= index, s.advanced
		s.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// LastRemoteWAL is the primary WAL index applied here.
func (s *Secondary) LastRemoteWAL() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.LastRemoteWAL()
}

// Forward sends an encoded forwarded write (opaque here: package forwarder
// encodes and decodes it) to the primary over the authenticated, sealed RPC
// and returns the opened reply payload. It fails fast (ErrUnreachable from
// the bus) when the primary cannot be reached; it never retries on its own,
// so a write the client saw fail is not applied later.
func (s *Secondary) Forward(ctx context.Context, payload []byte) ([]byte, error) {
	return s.callRaw(ctx, replication.MethodForward, payload)
}

func (s *Secondary) setErr(err error) {
	s.mu.Lock()
	s.lastErr = err.Error()
	s.mu.Unlock()
}

// run is the driver goroutine: it starts the machine, then waits for Stop or
// revocation and stops the consumer.
func (s *Secondary) run(ctx context.Context, ev Started) {
	s.exec(ctx, s.step(ev), nil)
	select {
	case <-ctx.Done():
	case <-s.revoked:
	}
	if s.stopConsume != nil {
		s.stopConsume()
	}
}

// delivery is the message being handled, for Ack, Nak and ApplyBatch.
type delivery struct {
	msg   *bus.Msg
	batch *replication.Batch
}

// exec carries out actions in order; d is nil outside the consume handler.
func (s *Secondary) exec(ctx context.Context, acts []Action, d *delivery) {
	for _, a := range acts {
		switch a := a.(type) {
		case StartSync:
			s.exec(ctx, s.syncUntilDone(ctx, a.Floor), d)
		case StartStreaming:
			s.startStreaming(ctx)
		case StopStreaming:
			s.revokeOnce.Do(func() { close(s.revoked) })
			s.log.Error().Msg("the primary revoked this secondary: replication stopped; generate a new token on the primary and activate again")
		case ApplyBatch:
			ev, local := s.apply(ctx, d.batch, a.After)
			s.exec(ctx, s.step(ev), d)
			if _, ok := ev.(BatchApplied); ok && s.guardMismatch(ctx, d.batch, local) {
				s.exec(ctx, s.step(GuardMismatch{Last: d.batch.Last}), nil)
			}
		case Ack:
			if d == nil {
				continue
			}
			switch a.Reason {
			case ReasonReplay:
				s.log.Info().Uint64("first", d.batch.First).Uint64("last", d.batch.Last).Msg("skipped a replayed batch (already applied)")
			case ReasonGap:
				s.log.Info().Uint64("first", d.batch.First).Msg("batch after a gap covered by the sync")
			}
			if err := d.msg.Ack(); err != nil {
				s.log.Warn().Err(err).Msg("ack")
			}
		case Nak:
			if d == nil {
				continue
			}
			if err := d.msg.Nak(); err != nil {
				s.log.Debug().Err(err).Msg("nak")
			}
		}
	}
}

// startStreaming starts the durable consumer, retrying until it runs or ctx ends.
func (s *Secondary) startStreaming(ctx context.Context) {
	s.mu.Lock()
	stream, durable, start := s.sec.Stream, replication.ConsumerName(s.sec.SecondaryID), s.startSeq
	s.mu.Unlock()
	wait := retryMin
	for {
		stop, err := s.bus.Consume(ctx, stream, durable, start, s.handle)
		if err == nil {
			s.stopConsume = stop
			s.log.Info().Str("stream", stream).Str("durable", durable).Msg("streaming WAL batches")
			return
		}
		s.setErr(err)
		s.log.Warn().Err(err).Msg("cannot start the WAL consumer; retrying")
		if !sleepCtx(ctx, wait) {
			return
		}
		wait = min(2*wait, retryMax)
	}
}

// handle is the consume handler: it verifies the batch, then lets the
// machine decide.
func (s *Secondary) handle(ctx context.Context, msg *bus.Msg) {
	d := &delivery{msg: msg}
	ev, batch := s.verify(ctx, msg)
	if ev != nil {
		s.exec(ctx, s.step(ev), d)
		return
	}
	d.batch = batch
	s.exec(ctx, s.step(BatchArrived{First: batch.First, Last: batch.Last}), d)
}

// verify opens a message: (nil, batch) when authentic, else the event to
// report (BatchRejected, ApplyFailed for a transient key fetch failure, Revoked).
func (s *Secondary) verify(ctx context.Context, msg *bus.Msg) (Event, *replication.Batch) {
	epoch, first, last, err := replication.PeekBatch(msg.Data)
	if err != nil {
		s.log.Warn().Err(err).Uint64("seq", msg.StreamSeq).Msg("rejected a message on the WAL stream: not a batch; nothing applied")
		return BatchRejected{Err: err}, nil
	}
	key, err := s.epochKey(ctx, epoch)
	if err != nil {
		var re *replication.RPCError
		switch {
		case replication.IsRevoked(err):
			return Revoked{}, nil
		case errors.As(err, &re) && re.Permanent():
			s.log.Warn().Err(err).Uint32("epoch", epoch).Uint64("first", first).Uint64("last", last).
				Msg("rejected a batch of an epoch the primary does not know; nothing applied")
			return BatchRejected{First: first, Last: last, Err: err}, nil
		}
		s.setErr(err)
		s.log.Warn().Err(err).Uint32("epoch", epoch).Msg("cannot fetch the replication key; the batch will be redelivered")
		return ApplyFailed{Err: err}, nil
	}
	s.mu.Lock()
	cid, pub := s.sec.PrimaryClusterID, s.sec.pub()
	s.mu.Unlock()
	b, err := replication.OpenBatch(msg.Data, cid, key, pub)
	if err != nil {
		s.log.Warn().Err(err).Uint64("seq", msg.StreamSeq).Uint64("first", first).Uint64("last", last).
			Msg("rejected a batch that failed verification (forged, tampered or another primary's); nothing applied")
		return BatchRejected{First: first, Last: last, Err: err}, nil
	}
	return nil, b
}

// epochKey returns the replication key of epoch, fetching it from the primary
// when unknown.
func (s *Secondary) epochKey(ctx context.Context, epoch uint32) ([]byte, error) {
	s.mu.Lock()
	k := s.sec.key(epoch)
	s.mu.Unlock()
	if k != nil {
		return k, nil
	}
	var reply replication.KeyReply
	if err := s.call(ctx, replication.MethodKey, &replication.KeyRequest{Epoch: epoch}, &reply); err != nil {
		return nil, err
	}
	if reply.Epoch != epoch {
		return nil, fmt.Errorf("key reply for epoch %d, asked %d", reply.Epoch, epoch)
	}
	s.mu.Lock()
	s.sec.setKey(epoch, reply.Key)
	stored, snap := s.stored, s.sec.clone()
	s.mu.Unlock()
	s.log.Info().Uint32("epoch", epoch).Msg("fetched a new replication key epoch")
	if stored {
		if err := saveSecret(ctx, s.cfg.State, snap); err != nil {
			s.log.Warn().Err(err).Msg("cannot store the new replication key; it will be fetched again after a restart")
		}
	}
	return reply.Key, nil
}

// accept reports whether the secondary writes a key the primary sent: never
// its own log's space nor an Ignored key (its replication state).
func (s *Secondary) accept(key string) bool {
	return !strings.HasPrefix(key, "wal/") && s.cfg.Classify(key) != wal.Ignored
}

// apply writes the entries of b after `after` and the new last_remote_wal in
// one WAL write (one storage transaction). It returns the event and the local
// WAL index of that write (0 when it logged nothing).
func (s *Secondary) apply(ctx context.Context, b *replication.Batch, after uint64) (Event, uint64) {
	var ops []*storage.TxnOp
	var keys []string
	for _, e := range b.Entries {
		if e.Index <= after {
			continue
		}
		for i := range e.Ops {
			op := &e.Ops[i]
			if !s.accept(op.Key) {
				s.log.Warn().Str("key", op.Key).Uint64("index", e.Index).Msg("ignored an op on a key this secondary does not replicate")
				continue
			}
			ops = append(ops, &storage.TxnOp{Operation: op.Kind, Entry: &storage.Entry{Key: op.Key, Value: op.Value}})
			keys = append(keys, op.Key)
		}
	}
	ops = append(ops, positionOp(s.cfg.StateKey, b.Last))
	local, err := s.cfg.WAL.Write(ctx, ops)
	if err != nil {
		s.setErr(err)
		s.log.Warn().Err(err).Uint64("first", b.First).Uint64("last", b.Last).Msg("cannot apply a batch; it will be redelivered")
		return ApplyFailed{Err: err}, 0
	}
	if len(keys) > 0 {
		s.cfg.OnApplied(keys)
	}
	return BatchApplied{Last: b.Last}, local
}

// guardMismatch compares the local merkle root with b's guard once the local
// index has applied the batch's local WAL write (local; 0 when that write
// logged nothing: then everything written so far). Having applied the
// primary's WAL up to b.Last, this cluster's replicated keys equal the
// primary's at b.Last, hence the roots. It reports false when there is no
// guard or no index, or the index did not catch up within guardWait.
func (s *Secondary) guardMismatch(ctx context.Context, b *replication.Batch, local uint64) bool {
	if len(b.Guard) == 0 {
		return false
	}
	x := s.index()
	if x == nil {
		return false
	}
	if local == 0 {
		local = s.cfg.WAL.LastIndex()
	}
	wctx, cancel := context.WithTimeout(ctx, guardWait)
	err := x.WaitApplied(wctx, local)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn().Uint64("last", b.Last).Uint64("local_index", local).Uint64("merkle_applied", x.Applied()).
				Msg("the local merkle index did not reach the applied batch in time; its guard is not compared")
		}
		return false
	}
	root := x.Root()
	if bytes.Equal(root, b.Guard) {
		return false
	}
	s.log.Warn().Uint64("last", b.Last).Hex("guard", b.Guard).Hex("local_root", root).
		Msg("merkle guard mismatch: this cluster's replicated keys differ from the primary's at the batch's last index; running a merkle sync")
	return true
}

// syncUntilDone runs the sync until it succeeds, ctx ends or the primary
// says revoked; it returns the machine's answer. floor is StartSync.Floor.
func (s *Secondary) syncUntilDone(ctx context.Context, floor uint64) []Action {
	wait := retryMin
	for {
		idx, from, err := s.syncOnce(ctx, floor)
		if err == nil {
			if err := s.storeSecret(ctx); err != nil {
				return nil
			}
			s.log.Info().Uint64("wal_index", idx).Uint64("guard_from", from).Msg("sync done; streaming")
			return s.step(SyncDone{WALIndex: idx, GuardFrom: from})
		}
		if replication.IsRevoked(err) {
			return s.step(Revoked{})
		}
		if ctx.Err() != nil {
			return nil
		}
		s.setErr(err)
		s.log.Warn().Err(err).Dur("retry_in", wait).Msg("sync failed; retrying")
		if !sleepCtx(ctx, wait) {
			return nil
		}
		wait = min(2*wait, retryMax)
	}
}

// storeSecret writes the secret state once, retrying until ctx ends.
func (s *Secondary) storeSecret(ctx context.Context) error {
	wait := retryMin
	for {
		s.mu.Lock()
		stored, snap := s.stored, s.sec.clone()
		s.mu.Unlock()
		if stored {
			return nil
		}
		err := saveSecret(ctx, s.cfg.State, snap)
		if err == nil {
			s.mu.Lock()
			s.stored = true
			s.mu.Unlock()
			return nil
		}
		s.setErr(err)
		s.log.Error().Err(err).Msg("cannot store the replication state after the first sync; retrying")
		if !sleepCtx(ctx, wait) {
			return ctx.Err()
		}
		wait = min(2*wait, retryMax)
	}
}

// errUseListing: this sync attempt cannot use the merkle index; it copies
// the full listing instead.
var errUseListing = errors.New("the merkle index cannot serve this sync")

// syncOnce runs one sync attempt: a merkle sync when there is an index, else
// (or when the index cannot serve it) the full listing. It returns where
// streaming resumes and SyncDone.GuardFrom.
func (s *Secondary) syncOnce(ctx context.Context, floor uint64) (uint64, uint64, error) {
	if x := s.index(); x != nil {
		idx, from, err := s.merkleSync(ctx, x, floor)
		if !errors.Is(err, errUseListing) {
			return idx, from, err
		}
		s.log.Warn().Err(err).Msg("syncing by full listing instead of merkle diff")
	}
	s.step(ListingStarted{})
	idx, err := s.fullSync(ctx)
	return idx, idx, err
}

// beginSync resets the progress and notes where a new durable starts: every
// message in the stream now was published before the sync's WAL index is
// taken (the primary's WAL index, or the one its index applied after
// catching up with that WAL), so a new durable can start after them.
func (s *Secondary) beginSync(ctx context.Context) error {
	s.mu.Lock()
	stream := s.sec.Stream
	s.syncDone, s.syncTotal = 0, 0
	s.mu.Unlock()
	_, last, _, err := s.bus.StreamState(ctx, stream)
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	s.mu.Lock()
	s.startSeq = last + 1
	s.mu.Unlock()
	return nil
}

// merkleSync makes this cluster's replicated keys those of the primary by
// merkle diff: it compares the local index with the primary's (state
// merkle-diff), then fetches the values of the added and changed keys in
// pages and deletes the deleted ones, each page one WAL write, so the
// Follower brings the local index along (state merkle-sync). It stores and
// returns last_remote_wal = the WAL index the primary's index had applied at
// the diff's first round (at least floor, else the attempt fails and is
// retried), and the primary's WAL index after the last value was read. Values
// written meanwhile on the primary may be missed or newer: streaming from the
// returned index re-applies them.
func (s *Secondary) merkleSync(ctx context.Context, x *merkle.Index, floor uint64) (uint64, uint64, error) {
	s.step(DiffStarted{})
	if err := s.beginSync(ctx); err != nil {
		return 0, 0, err
	}
	// The local index must reflect every local write before it is compared.
	local := s.cfg.WAL.LastIndex()
	wctx, cancel := context.WithTimeout(ctx, indexWait)
	err := x.WaitApplied(wctx, local)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		return 0, 0, fmt.Errorf("%w: the local index has applied the local WAL up to %d of %d (is its follower running?)", errUseListing, x.Applied(), local)
	}
	remote := merkle.SourceFunc(func(ctx context.Context, req []byte) ([]byte, error) {
		return s.callRaw(ctx, replication.MethodMerkle, req)
	})
	res, err := merkle.Diff(ctx, x, remote, merkle.DiffOptions{})
	var re *replication.RPCError
	switch {
	case errors.Is(err, merkle.ErrReindexRequired):
		return 0, 0, fmt.Errorf("%w: the local index: %w", errUseListing, err)
	case errors.As(err, &re) && re.Code == replication.CodeNoMerkle:
		return 0, 0, fmt.Errorf("%w: %w", errUseListing, err)
	case errors.Is(err, bus.ErrUnreachable) && s.Status().Connected:
		// The primary answers heartbeats but nobody serves the merkle subject:
		// a primary from before merkle sync.
		return 0, 0, fmt.Errorf("%w: the primary does not serve merkle sync: %w", errUseListing, err)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("merkle diff: %w", err)
	}
	if res.RemoteApplied < floor {
		// Resuming the stream below floor would lose what was already taken
		// off it; the primary's index lags its WAL (the primary waited for it).
		return 0, 0, fmt.Errorf("%w: the primary's merkle index has applied its WAL up to %d only, and this secondary read the stream up to %d", errUseListing, res.RemoteApplied, floor)
	}
	total := res.Keys()
	s.mu.Lock()
	s.syncTotal = total
	s.mu.Unlock()
	s.log.Info().Int("added", len(res.Added)).Int("changed", len(res.Changed)).Int("deleted", len(res.Deleted)).
		Int("rounds", res.Rounds).Int64("bytes_received", res.BytesReceived).Uint64("remote_applied", res.RemoteApplied).
		Msg("merkle diff done; fetching the differing keys")
	s.step(DiffDone{Keys: total})

	guardFrom := res.RemoteApplied
	fetch := make([]string, 0, len(res.Added)+len(res.Changed))
	skipped := 0
	for _, k := range slices.Concat(res.Added, res.Changed) {
		if s.accept(k) {
			fetch = append(fetch, k)
		} else {
			skipped++
		}
	}
	for len(fetch) > 0 {
		chunk := fetch[:min(len(fetch), replication.MaxFetchKeys)]
		var reply replication.FetchReply
		if err := s.call(ctx, replication.MethodFetch, &replication.FetchRequest{Keys: chunk}, &reply); err != nil {
			return 0, 0, fmt.Errorf("merkle sync: fetch: %w", err)
		}
		if reply.Answered < 1 || reply.Answered > len(chunk) {
			return 0, 0, fmt.Errorf("merkle sync: the primary answered %d keys of %d", reply.Answered, len(chunk))
		}
		asked := make(map[string]struct{}, reply.Answered)
		for _, k := range chunk[:reply.Answered] {
			asked[k] = struct{}{}
		}
		ops := make([]*storage.TxnOp, 0, reply.Answered)
		keys := make([]string, 0, reply.Answered)
		take := func(k string) error {
			if _, ok := asked[k]; !ok {
				return fmt.Errorf("merkle sync: the primary answered key %q, not asked or answered twice", k)
			}
			delete(asked, k)
			keys = append(keys, k)
			return nil
		}
		for _, kv := range reply.Entries {
			if err := take(kv.Key); err != nil {
				return 0, 0, err
			}
			ops = append(ops, &storage.TxnOp{Operation: storage.PutOperation, Entry: &storage.Entry{Key: kv.Key, Value: kv.Value}})
		}
		for _, k := range reply.Absent { // gone since the diff: the stream brings its deletion too
			if err := take(k); err != nil {
				return 0, 0, err
			}
			ops = append(ops, &storage.TxnOp{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: k}})
		}
		if _, err := s.cfg.WAL.Write(ctx, ops); err != nil {
			return 0, 0, fmt.Errorf("merkle sync: write fetched values: %w", err)
		}
		s.cfg.OnApplied(keys)
		guardFrom = max(guardFrom, reply.WALIndex)
		fetch = fetch[reply.Answered:]
		s.mu.Lock()
		s.syncDone += reply.Answered
		s.mu.Unlock()
	}
	doomed := make([]string, 0, len(res.Deleted))
	for _, k := range res.Deleted {
		if s.cfg.Classify(k) == wal.Replicated && s.accept(k) {
			doomed = append(doomed, k)
		} else {
			skipped++
		}
	}
	if err := s.deleteKeys(ctx, doomed, res.RemoteApplied); err != nil {
		return 0, 0, fmt.Errorf("merkle sync: %w", err)
	}
	if skipped > 0 {
		s.log.Warn().Int("keys", skipped).Msg("merkle sync: skipped keys this secondary does not replicate")
	}
	return res.RemoteApplied, guardFrom, nil
}

// deleteKeys deletes doomed in WAL writes of at most deleteChunk keys, the
// last one (even when doomed is empty) storing last_remote_wal = position.
func (s *Secondary) deleteKeys(ctx context.Context, doomed []string, position uint64) error {
	for {
		n := min(len(doomed), deleteChunk)
		ops := make([]*storage.TxnOp, 0, n+1)
		for _, k := range doomed[:n] {
			ops = append(ops, &storage.TxnOp{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: k}})
		}
		last := n == len(doomed)
		if last {
			ops = append(ops, positionOp(s.cfg.StateKey, position))
		}
		if _, err := s.cfg.WAL.Write(ctx, ops); err != nil {
			return fmt.Errorf("delete keys the primary no longer has: %w", err)
		}
		if n > 0 {
			s.cfg.OnApplied(doomed[:n])
		}
		s.mu.Lock()
		s.syncDone += n
		s.mu.Unlock()
		doomed = doomed[n:]
		if last {
			return nil
		}
	}
}

// fullSync copies every replicated key of the primary, deletes the local
// replicated keys it does not list, and stores last_remote_wal = the
// primary's WAL index at the start. It returns that index.
func (s *Secondary) fullSync(ctx context.Context) (uint64, error) {
	if err := s.beginSync(ctx); err != nil {
		return 0, err
	}
	listed := make(map[string]struct{})
	var walIndex uint64
	after := ""
	for page := 0; ; page++ {
		var reply replication.SyncReply
		if err := s.call(ctx, replication.MethodSync, &replication.SyncRequest{After: after}, &reply); err != nil {
			return 0, fmt.Errorf("sync page after %q: %w", after, err)
		}
		if page == 0 {
			walIndex = reply.WALIndex
		}
		ops := make([]*storage.TxnOp, 0, len(reply.Entries))
		keys := make([]string, 0, len(reply.Entries))
		for _, kv := range reply.Entries {
			listed[kv.Key] = struct{}{}
			if !s.accept(kv.Key) {
				continue
			}
			ops = append(ops, &storage.TxnOp{Operation: storage.PutOperation, Entry: &storage.Entry{Key: kv.Key, Value: kv.Value}})
			keys = append(keys, kv.Key)
		}
		if len(ops) > 0 {
			if _, err := s.cfg.WAL.Write(ctx, ops); err != nil {
				return 0, fmt.Errorf("sync: write page: %w", err)
			}
			s.cfg.OnApplied(keys)
		}
		s.mu.Lock()
		s.syncDone += len(ops)
		s.mu.Unlock()
		if reply.Done {
			break
		}
		if reply.Next == "" || reply.Next <= after {
			return 0, fmt.Errorf("sync: the primary's page after %q does not advance", after)
		}
		after = reply.Next
	}
	var doomed []string
	if _, err := walkKeys(ctx, s.cfg.Raw, "", func(k string) bool {
		if _, ok := listed[k]; !ok && s.cfg.Classify(k) == wal.Replicated && s.accept(k) {
			doomed = append(doomed, k)
		}
		return true
	}); err != nil {
		return 0, fmt.Errorf("sync: list local keys: %w", err)
	}
	if err := s.deleteKeys(ctx, doomed, walIndex); err != nil {
		return 0, fmt.Errorf("sync: %w", err)
	}
	return walIndex, nil
}

// call sends one authenticated RPC and decodes its reply.
func (s *Secondary) call(ctx context.Context, method string, req, reply replication.Message) error {
	payload, err := replication.EncodeMessage(req)
	if err != nil {
		return err
	}
	out, err := s.callRaw(ctx, method, payload)
	if err != nil {
		return err
	}
	return replication.DecodeMessage(out, reply)
}

// callRaw sends one authenticated RPC with an opaque payload and returns the
// opened reply payload.
func (s *Secondary) callRaw(ctx context.Context, method string, payload []byte) ([]byte, error) {
	s.mu.Lock()
	sid, cid, key := s.sec.SecondaryID, s.sec.PrimaryClusterID, s.sec.RPCKey
	s.mu.Unlock()
	msg, err := replication.SealRequest(sid, method, key, payload, s.cfg.Now())
	if err != nil {
		return nil, err
	}
	nonce, err := replication.RequestNonce(msg)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := s.bus.Request(rctx, replication.RPCSubject(cid, method), msg)
	if err != nil {
		return nil, err
	}
	return replication.OpenReply(resp, key, nonce)
}

// heartbeats sends a heartbeat every interval until ctx ends or revocation.
func (s *Secondary) heartbeats(ctx context.Context) {
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		s.heartbeat(ctx)
		select {
		case <-ctx.Done():
			return
		case <-s.revoked:
			return
		case <-t.C:
		}
	}
}

func (s *Secondary) heartbeat(ctx context.Context) {
	s.mu.Lock()
	req := &replication.HeartbeatRequest{LastRemoteWAL: s.m.LastRemoteWAL(), APIAddr: s.cfg.APIAddr, ClusterID: s.cfg.ClusterID}
	s.mu.Unlock()
	var reply replication.HeartbeatReply
	err := s.call(ctx, replication.MethodHeartbeat, req, &reply)
	switch {
	case err == nil:
		s.mu.Lock()
		s.lastHeartbeat = s.cfg.Now()
		s.lastErr = "" // the primary answers again: an old failure is no longer the state
		if reply.APIAddr != "" {
			s.sec.PrimaryAPIAddr = reply.APIAddr
		}
		s.mu.Unlock()
		s.exec(ctx, s.step(HeartbeatOK{PrimaryLastWAL: reply.LastWAL}), nil)
	case replication.IsRevoked(err):
		s.setErr(err)
		s.exec(ctx, s.step(Revoked{}), nil)
	case ctx.Err() != nil:
	default:
		s.setErr(err)
		s.exec(ctx, s.step(HeartbeatFailed{Err: err}), nil)
	}
}

// sleepCtx waits d or until ctx ends; false when ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
