package secondary

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cofferhq/coffer/bus"
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

	// mu guards everything below it.
	mu            sync.Mutex
	m             *Machine
	sec           *secret
	needSync      bool // fresh activation: sync before streaming
	stored        bool // sec is in Config.State
	started       bool
	lastHeartbeat time.Time
	syncDone      int
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
	ev := Started{LastRemoteWAL: s.m.lastRemote, NeedSync: s.needSync}
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
	// SyncKeysDone counts the keys written by the running (or last) full sync;
	// the total is not known in advance.
	SyncKeysDone int
	LastError    string
}

// Status returns the current status.
func (s *Secondary) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Status{
		State: s.m.State(), SecondaryID: s.sec.SecondaryID, PrimaryClusterID: s.sec.PrimaryClusterID,
		PrimaryAPIAddr: s.sec.PrimaryAPIAddr, LastRemoteWAL: s.m.LastRemoteWAL(), PrimaryLastWAL: s.m.PrimaryLastWAL(),
		LastHeartbeat: s.lastHeartbeat, Connected: s.m.Connected(), Epoch: s.sec.Epoch,
		SyncKeysDone: s.syncDone, LastError: s.lastErr,
	}
}

// step feeds the machine under the lock.
func (s *Secondary) step(ev Event) []Action {
	s.mu.Lock()
	defer s.mu.Unlock()
	acts := s.m.Step(ev)
	close(s.advanced)
	s.advanced = make(chan struct{})
	return acts
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

// Forward sends a write to the primary over the authenticated RPC and
// returns its reply. It fails fast (ErrUnreachable from the bus) when the
// primary cannot be reached; it never retries on its own, so a write the
// client saw fail is not applied later.
func (s *Secondary) Forward(ctx context.Context, req *replication.ForwardRequest) (*replication.ForwardReply, error) {
	var reply replication.ForwardReply
	if err := s.call(ctx, replication.MethodForward, req, &reply); err != nil {
		return nil, err
	}
	return &reply, nil
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
			s.exec(ctx, s.syncUntilDone(ctx), d)
		case StartStreaming:
			s.startStreaming(ctx)
		case StopStreaming:
			s.revokeOnce.Do(func() { close(s.revoked) })
			s.log.Error().Msg("the primary revoked this secondary: replication stopped; generate a new token on the primary and activate again")
		case ApplyBatch:
			s.exec(ctx, s.step(s.apply(ctx, d.batch, a.After)), d)
		case Ack:
			if d == nil {
				continue
			}
			switch a.Reason {
			case ReasonReplay:
				s.log.Info().Uint64("first", d.batch.First).Uint64("last", d.batch.Last).Msg("skipped a replayed batch (already applied)")
			case ReasonGap:
				s.log.Info().Uint64("first", d.batch.First).Msg("batch after a gap covered by the full sync")
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
// one WAL write (one storage transaction).
func (s *Secondary) apply(ctx context.Context, b *replication.Batch, after uint64) Event {
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
	if _, err := s.cfg.WAL.Write(ctx, ops); err != nil {
		s.setErr(err)
		s.log.Warn().Err(err).Uint64("first", b.First).Uint64("last", b.Last).Msg("cannot apply a batch; it will be redelivered")
		return ApplyFailed{Err: err}
	}
	if len(keys) > 0 {
		s.cfg.OnApplied(keys)
	}
	return BatchApplied{Last: b.Last}
}

// syncUntilDone runs the full sync until it succeeds, ctx ends or the
// primary says revoked; it returns the machine's answer.
func (s *Secondary) syncUntilDone(ctx context.Context) []Action {
	wait := retryMin
	for {
		idx, err := s.fullSync(ctx)
		if err == nil {
			if err := s.storeSecret(ctx); err != nil {
				return nil
			}
			s.log.Info().Uint64("wal_index", idx).Msg("full sync done; streaming")
			return s.step(SyncDone{WALIndex: idx})
		}
		if replication.IsRevoked(err) {
			return s.step(Revoked{})
		}
		if ctx.Err() != nil {
			return nil
		}
		s.setErr(err)
		s.log.Warn().Err(err).Dur("retry_in", wait).Msg("full sync failed; retrying")
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

// fullSync copies every replicated key of the primary, deletes the local
// replicated keys it does not list, and stores last_remote_wal = the
// primary's WAL index at the start. It returns that index.
func (s *Secondary) fullSync(ctx context.Context) (uint64, error) {
	s.mu.Lock()
	stream := s.sec.Stream
	s.syncDone = 0
	s.mu.Unlock()
	// Every message in the stream now was published before the sync's WAL
	// index is taken: a new durable can start after them.
	if _, last, _, err := s.bus.StreamState(ctx, stream); err != nil {
		return 0, fmt.Errorf("sync: %w", err)
	} else {
		s.mu.Lock()
		s.startSeq = last + 1
		s.mu.Unlock()
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
	for {
		n := min(len(doomed), deleteChunk)
		ops := make([]*storage.TxnOp, 0, n+1)
		for _, k := range doomed[:n] {
			ops = append(ops, &storage.TxnOp{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: k}})
		}
		last := n == len(doomed)
		if last {
			ops = append(ops, positionOp(s.cfg.StateKey, walIndex))
		}
		if _, err := s.cfg.WAL.Write(ctx, ops); err != nil {
			return 0, fmt.Errorf("sync: delete keys the primary no longer has: %w", err)
		}
		if n > 0 {
			s.cfg.OnApplied(doomed[:n])
		}
		doomed = doomed[n:]
		if last {
			break
		}
	}
	return walIndex, nil
}

// call sends one authenticated RPC and decodes its reply.
func (s *Secondary) call(ctx context.Context, method string, req, reply replication.Message) error {
	s.mu.Lock()
	sid, cid, key := s.sec.SecondaryID, s.sec.PrimaryClusterID, s.sec.RPCKey
	s.mu.Unlock()
	payload, err := replication.EncodeMessage(req)
	if err != nil {
		return err
	}
	msg, err := replication.SealRequest(sid, method, key, payload, s.cfg.Now())
	if err != nil {
		return err
	}
	nonce, err := replication.RequestNonce(msg)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := s.bus.Request(rctx, replication.RPCSubject(cid, method), msg)
	if err != nil {
		return err
	}
	out, err := replication.OpenReply(resp, key, nonce)
	if err != nil {
		return err
	}
	return replication.DecodeMessage(out, reply)
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
