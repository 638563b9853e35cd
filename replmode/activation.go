package replmode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cofferhq/coffer/core"
	"github.com/cofferhq/coffer/internal/clock"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/secondary"
)

// An activation that survives a crash (docs/replication.md, "Activation
// that survives a crash"). secondary/enable redeems the token, stores an
// activation record and starts the bootstrap (wipe, first sync, unseal with
// the primary's keyring) in the background; it answers when the bootstrap
// ends or after Config.ActivationWait, whichever comes first. The record is
// deleted when the bootstrap completes. A server that finds one at boot
// resumes it (ResumeActivation) instead of unsealing its old data.

// activationKey is the record's key in raw storage: class ignored (never
// shipped) and kept by the activation's wipe.
const activationKey = "core/cluster/local/activation"

// wrapPurpose binds the wrapped redemption to this record.
const wrapPurpose = "replication-activation"

// Phases of a pending activation.
const (
	phaseRunning = "running" // the bootstrap runs, or resumes at boot
	phaseFailed  = "failed"  // it cannot complete: a retry with a new token completes it
)

// activationRecord is the stored activation, a replication.StateRecord:
//
//	{"v":1, "phase":"running"|"failed", "started":RFC 3339, "cluster_id":"...",
//	 "primary_cluster_id":"...", "secondary_id":"...", "signing_public_key":base64,
//	 "error":"...", "redemption":base64}
//
// Everything but redemption is public. redemption is secondary.Redemption's
// JSON wrapped by the static seal (seal.Wrapper, purpose wrapPurpose): it
// holds the key that opens the bundle and so the primary's root key. Under
// a seal without a key of its own (shamir) it is absent, and an interrupted
// activation cannot resume by itself: a retry completes it.
type activationRecord struct {
	V                int       `json:"v"`
	Phase            string    `json:"phase"`
	Started          time.Time `json:"started"`
	ClusterID        string    `json:"cluster_id"`
	PrimaryClusterID string    `json:"primary_cluster_id"`
	SecondaryID      string    `json:"secondary_id"`
	SigningPublicKey []byte    `json:"signing_public_key"`
	Error            string    `json:"error,omitempty"`
	Redemption       []byte    `json:"redemption,omitempty"`
	// DR is set for a DR secondary's activation.
	DR bool `json:"dr,omitempty"`
}

var activationStore = replication.StateRecord[activationRecord]{Key: activationKey, Version: 1, Name: "activation record"}

// bootstrap is a pending activation: its record and, while it runs, its
// goroutine and secondary. Fields change under Manager.mu.
type bootstrap struct {
	rec    activationRecord
	sec    *secondary.Secondary // the secondary being filled (status), nil when not running
	cancel context.CancelFunc   // nil when not running
	done   chan struct{}        // closed when the goroutine ends
}

func (b *bootstrap) running() bool { return b.cancel != nil }

// errActivationBusy refuses a transition while an activation runs.
var errActivationBusy = logical.InvalidRequest("an activation is running on this cluster: wait until sys/replication/status shows it done (state stream-wals)")

// ActivationPending reports an activation that has not completed.
func (m *Manager) ActivationPending() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.boot != nil
}

// EnableSecondary activates this cluster as a secondary of the primary that
// issued token. It redeems the token (an authenticated answer of the
// primary, or an error with nothing changed), stores the activation record
// and starts the bootstrap in the background: wipe (Step.Wipe), first sync
// from the primary, unseal with its keyring. It answers when the bootstrap
// has ended or after Config.ActivationWait (a warning then says it goes on).
//
// authenticated is false for the retry of a pending activation on a sealed
// cluster (HandleSealed): no client token then, and the new token must be
// signed by the key of the primary the record names.
func (m *Manager) EnableSecondary(ctx context.Context, token, primaryAPIAddr, busURL string, authenticated bool) (*logical.Response, error) {
	return m.enableSecondary(ctx, token, primaryAPIAddr, busURL, authenticated, false)
}

// EnableDRSecondary is EnableSecondary for a DR secondary
// (sys/replication/dr/secondary/enable): it takes the primary's cluster id,
// its local keys too, and serves no client request until promoted.
func (m *Manager) EnableDRSecondary(ctx context.Context, token, primaryAPIAddr, busURL string, authenticated bool) (*logical.Response, error) {
	return m.enableSecondary(ctx, token, primaryAPIAddr, busURL, authenticated, true)
}

func (m *Manager) enableSecondary(ctx context.Context, token, primaryAPIAddr, busURL string, authenticated, dr bool) (*logical.Response, error) {
	m.opMu.Lock()
	b, err := m.beginActivation(ctx, token, primaryAPIAddr, busURL, authenticated, dr)
	m.opMu.Unlock()
	if err != nil {
		return nil, err
	}
	wait := time.NewTimer(m.cfg.ActivationWait)
	defer wait.Stop()
	select {
	case <-b.done:
	case <-wait.C:
	case <-ctx.Done():
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	switch {
	case m.boot == nil:
		return nil, nil
	case m.boot == b && !b.running():
		return nil, logical.Errorf(http.StatusInternalServerError, "activation failed: %s", b.rec.Error)
	}
	return &logical.Response{Warnings: []string{
		"the activation is recorded and its first sync continues in the background (it survives a restart of this server): " +
			"sys/replication/status shows its progress; the cluster serves requests when it reaches state stream-wals",
	}}, nil
}

// beginActivation does EnableSecondary's checks and redemption under opMu
// and starts the bootstrap.
func (m *Manager) beginActivation(ctx context.Context, token, primaryAPIAddr, busURL string, authenticated, dr bool) (*bootstrap, error) {
	wipe := WipeAllButWAL
	if dr {
		st, err := m.decideDR(OpDREnableSecondary)
		if err != nil {
			return nil, err
		}
		wipe = st.Wipe
	} else {
		step, err := m.decide(OpEnableSecondary)
		if err != nil {
			return nil, err
		}
		wipe = step.Wipe
	}
	claims, err := replication.ParseToken(token, clock.Now())
	if err != nil {
		return nil, logical.InvalidRequest("activation token refused: %v", err)
	}
	if !authenticated {
		if err := m.mayRetryUnauthenticated(claims); err != nil {
			return nil, err
		}
	}
	// The redemption and the bootstrap no longer depend on the HTTP call: a
	// client that gives up must not leave a token spent and nothing stored.
	ctx = context.WithoutCancel(ctx)
	rd, err := secondary.Redeem(ctx, m.secondaryConfigOf(dr), claims, busURL)
	if err != nil {
		return nil, logical.InvalidRequest("activation refused: %v", err)
	}
	if primaryAPIAddr != "" {
		rd.PrimaryAPIAddr = primaryAPIAddr
	}
	rec := activationRecord{
		V: activationStore.Version, Phase: phaseRunning, Started: clock.Now().UTC(), ClusterID: m.host.ClusterID(),
		PrimaryClusterID: rd.PrimaryClusterID, SecondaryID: rd.SecondaryID, SigningPublicKey: rd.SigningPublicKey, DR: dr,
	}
	m.mu.RLock()
	if old := m.boot; old != nil && old.rec.ClusterID != "" {
		rec.ClusterID = old.rec.ClusterID // a retry keeps the identity the first attempt recorded
	}
	m.mu.RUnlock()
	if rec.Redemption, err = m.wrapRedemption(rd); err != nil {
		return nil, err
	}
	if err := activationStore.Save(ctx, m.host.Physical(), &rec); err != nil {
		return nil, fmt.Errorf("store the activation record: %w (nothing was wiped: retry with a new token)", err)
	}
	return m.startBootstrap(rec, rd, wipe), nil
}

// mayRetryUnauthenticated allows a token-less activation only to finish a
// pending one that is not running, with a token of the same primary: the
// token's signature is the credential (only that primary's operator can
// issue one), and the cluster's data already belongs to that primary.
func (m *Manager) mayRetryUnauthenticated(claims *replication.TokenClaims) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	switch {
	case m.boot == nil:
		return core.ErrSealed
	case m.boot.running():
		return errActivationBusy
	case claims.Issuer != m.boot.rec.PrimaryClusterID || !bytes.Equal(claims.PublicKey, m.boot.rec.SigningPublicKey):
		return logical.Errorf(http.StatusForbidden, "permission denied: without a client token this cluster accepts only a token of primary %s, whose activation it is finishing", m.boot.rec.PrimaryClusterID)
	}
	return nil
}

// wrapRedemption encrypts rd with the seal's key, or returns nil when the
// seal has none (shamir: the activation cannot resume by itself).
func (m *Manager) wrapRedemption(rd *secondary.Redemption) ([]byte, error) {
	w := m.host.SealWrapper()
	if w == nil {
		return nil, nil
	}
	plain, err := json.Marshal(rd)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	out, err := w.Wrap(wrapPurpose, plain)
	if err != nil {
		return nil, fmt.Errorf("encrypt the activation record: %w", err)
	}
	return out, nil
}

// ResumeActivation looks for an activation record at boot, before the core
// starts. With none it returns false. With one it returns true, and the
// caller must not start (unseal) the core: the cluster's data belongs to the
// activation. A record the seal can open resumes in the background; any
// other (shamir, a changed key file, a failed one) stays pending, sealed,
// until a retry with a new token (HandleSealed).
func (m *Manager) ResumeActivation(ctx context.Context) (bool, error) {
	rec, err := activationStore.Load(ctx, m.host.Physical())
	if err != nil || rec == nil {
		return false, err
	}
	m.opMu.Lock()
	defer m.opMu.Unlock()
	rd, err := m.unwrapRedemption(rec)
	if err != nil {
		rec.Phase, rec.Error = phaseFailed, err.Error()
		if serr := activationStore.Save(ctx, m.host.Physical(), rec); serr != nil {
			m.log.Error().Err(serr).Msg("store the activation record")
		}
	}
	if rec.Phase == phaseFailed {
		m.mu.Lock()
		m.boot = &bootstrap{rec: *rec, done: closedChan()}
		m.mu.Unlock()
		m.log.Error().Str("primary", rec.PrimaryClusterID).Str("error", rec.Error).
			Msg("this cluster's activation as a secondary did not complete and cannot resume: it stays sealed; finish it with secondary/enable and a new token from the same primary (no client token needed)")
		return true, nil
	}
	m.log.Info().Str("primary", rec.PrimaryClusterID).Str("secondary_id", rec.SecondaryID).Msg("resuming this cluster's activation as a secondary")
	m.startBootstrap(*rec, rd, WipeAllButWAL)
	return true, nil
}

// unwrapRedemption opens the record's redemption with the seal's key.
func (m *Manager) unwrapRedemption(rec *activationRecord) (*secondary.Redemption, error) {
	if rec.Phase == phaseFailed {
		return nil, nil
	}
	w := m.host.SealWrapper()
	if w == nil || len(rec.Redemption) == 0 {
		return nil, errors.New("the activation was interrupted by a restart, and this cluster's seal has no key of its own to keep the activation's secrets across one (shamir)")
	}
	plain, err := w.Unwrap(wrapPurpose, rec.Redemption)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	rd := new(secondary.Redemption)
	if err := json.Unmarshal(plain, rd); err != nil {
		return nil, fmt.Errorf("decode the activation record: %w", err)
	}
	return rd, nil
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// startBootstrap makes rec the pending activation and runs its bootstrap in
// a goroutine that Close stops. opMu is held.
func (m *Manager) startBootstrap(rec activationRecord, rd *secondary.Redemption, wipe Wipe) *bootstrap {
	ctx, cancel := context.WithCancel(context.Background())
	b := &bootstrap{rec: rec, cancel: cancel, done: make(chan struct{})}
	m.mu.Lock()
	m.boot = b
	m.mu.Unlock()
	go m.runBootstrap(ctx, b, rd, wipe)
	return b
}

// runBootstrap runs the bootstrap to its end: complete (the record goes, the
// role is installed), stopped by Close (the record stays: the next boot
// resumes), or failed (the record says why; the cluster stays sealed).
func (m *Manager) runBootstrap(ctx context.Context, b *bootstrap, rd *secondary.Redemption, wipe Wipe) {
	defer close(b.done)
	err := m.bootstrapOnce(ctx, b, rd, wipe)
	m.mu.Lock()
	defer m.mu.Unlock()
	b.cancel, b.sec, m.activationRoot = nil, nil, nil
	switch {
	case err == nil:
		if m.boot == b {
			m.boot = nil
		}
	case ctx.Err() != nil:
		m.log.Info().Msg("activation stopped by shutdown; it resumes at the next start")
	default:
		b.rec.Phase, b.rec.Error = phaseFailed, err.Error()
		b.rec.Redemption = nil
		if serr := activationStore.Save(context.Background(), m.host.Physical(), &b.rec); serr != nil {
			m.log.Error().Err(serr).Msg("store the failed activation record")
		}
		m.log.Error().Err(err).Msg("activation failed: the cluster stays sealed; finish it with secondary/enable and a new token from the same primary")
	}
}

// bootstrapOnce opens the redemption, replaces the data, stores the mode and
// deletes the record.
func (m *Manager) bootstrapOnce(ctx context.Context, b *bootstrap, rd *secondary.Redemption, wipe Wipe) error {
	cfg := m.secondaryConfigOf(b.rec.DR)
	id := b.rec.ClusterID
	if b.rec.DR {
		id = b.rec.PrimaryClusterID // a DR secondary is a copy of its primary, identity included
	}
	cfg.ClusterID = id
	sec, bundle, err := secondary.Resume(ctx, cfg, rd)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.activationRoot, b.sec = bundle.RootKey, sec
	m.mu.Unlock()
	err = m.host.ReplaceData(ctx, bundle.RootKey, core.Replacement{
		ClusterID: id,
		Wipe:      func(ctx context.Context) error { return m.wipe(ctx, wipe) },
		Fill: func(ctx context.Context) error {
			if err := sec.Start(context.Background()); err != nil {
				return fmt.Errorf("start replication: %w", err)
			}
			if err := waitStreaming(ctx, sec); err != nil {
				return fmt.Errorf("initial sync from the primary: %w", err)
			}
			return nil
		},
	})
	if err != nil {
		sec.Stop()
		return err
	}
	st := state{Mode: string(Secondary), SecondaryID: bundle.SecondaryID, PrimaryClusterAddr: rd.BusURL, PrimaryAPIAddr: rd.PrimaryAPIAddr}
	if b.rec.DR {
		st.Mode, st.DRMode = string(Disabled), string(Secondary)
	}
	if err := saveState(ctx, m.host.Barrier(), st); err != nil {
		sec.Stop()
		return fmt.Errorf("store replication mode: %w", err)
	}
	if err := m.host.Physical().Delete(ctx, activationKey); err != nil {
		m.log.Warn().Err(err).Msg("delete the completed activation record; the next start finds the mode stored and ignores it")
	}
	if m.cfg.Dev && bundle.DevRootTokenID != "" {
		if err := m.host.CreateRootToken(ctx, bundle.DevRootTokenID); err != nil {
			m.log.Warn().Err(err).Msg("could not create the primary's dev root token here")
		}
	}
	m.mu.Lock()
	if b.rec.DR {
		m.drMode, m.drSecondary = Secondary, sec
	} else {
		m.setSecondaryLocked(sec)
	}
	m.clusterAddr, m.primaryAPI = rd.BusURL, rd.PrimaryAPIAddr
	m.mu.Unlock()
	m.log.Info().Str("secondary_id", bundle.SecondaryID).Str("primary", bundle.PrimaryClusterID).Bool("dr", b.rec.DR).Msg("secondary activated")
	return nil
}

// wipe deletes what a transition replaces; the activation record stays.
func (m *Manager) wipe(ctx context.Context, w Wipe) error {
	switch w {
	case WipeNothing:
		return nil
	case WipeAllButWAL:
		keep := func(key string) bool { return strings.HasPrefix(key, "wal/") || key == activationKey }
		if err := secondary.Wipe(ctx, m.host.Physical(), keep); err != nil {
			return fmt.Errorf("wipe storage for activation: %w", err)
		}
		return nil
	}
	return fmt.Errorf("unknown wipe %q", w)
}

// waitStreaming waits until the secondary's first sync is done, for as long
// as it takes: the secondary retries what fails, and the status shows it.
// Only a revocation (signed by the primary) or ctx ends it early.
func waitStreaming(ctx context.Context, sec *secondary.Secondary) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		switch sec.Status().State {
		case secondary.StateStreaming:
			return nil
		case secondary.StateRevoked:
			return errors.New("the primary refused this secondary (revoked)")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// HandleSealed serves sys/replication/* while the core is sealed or its data
// is being replaced: the status, and the retry of a pending activation that
// does not run.
func (m *Manager) HandleSealed(ctx context.Context, req *logical.Request, p string) (*logical.Response, error) {
	switch p {
	case "replication/status", "replication/performance/status", "replication/dr/status":
		return m.HandleRequest(ctx, req, p)
	case "replication/performance/secondary/enable", "replication/dr/secondary/enable":
		if !m.ActivationPending() || (req.Operation != logical.UpdateOperation && req.Operation != logical.CreateOperation) {
			return nil, core.ErrSealed
		}
		m.mu.RLock()
		dr := m.boot != nil && m.boot.rec.DR
		m.mu.RUnlock()
		if dr != (p == "replication/dr/secondary/enable") {
			return nil, logical.InvalidRequest("the pending activation is of another kind: finish it with the endpoint of its kind (performance or dr)")
		}
		return m.enableEndpoint(ctx, req.Data, false, dr)
	}
	return nil, core.ErrSealed
}

// Close stops a running bootstrap (it resumes at the next start) and the
// role. The server calls it before it closes the core.
func (m *Manager) Close() {
	m.mu.RLock()
	b := m.boot
	m.mu.RUnlock()
	if b != nil {
		m.mu.RLock()
		cancel := b.cancel
		m.mu.RUnlock()
		if cancel != nil {
			cancel()
		}
		<-b.done
	}
	m.Stop()
}
