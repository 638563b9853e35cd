package replmode

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/cofferhq/coffer/internal/backoff"
	"github.com/cofferhq/coffer/internal/clock"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/primary"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/secondary"
)

// DR replication (docs/replication.md, "DR replication"): the primary that
// performance replication runs ships a DR section in its batches (local
// keys) to DR secondaries, which take everything, serve nothing, keep a copy
// of the primary's replication state, and take the set over when promoted.

// DR operation token paths: what a DR operation token must allow.
const (
	pathDRPromote       = "sys/replication/dr/secondary/promote"
	pathDRUpdatePrimary = "sys/replication/dr/secondary/update-primary"
	pathDRDisable       = "sys/replication/dr/secondary/disable"
)

// decideDR asks the DR table whether op may run now.
func (m *Manager) decideDR(op Op) (DRStep, error) {
	m.mu.RLock()
	busy := m.boot != nil && m.boot.running()
	perf, dr := m.mode, m.drMode
	m.mu.RUnlock()
	if busy {
		return DRStep{}, errActivationBusy
	}
	return NextDR(perf, dr, op)
}

// EnableDRPrimary makes this cluster a DR primary: its primary (started
// here when performance replication does not run one) ships the DR section.
func (m *Manager) EnableDRPrimary(ctx context.Context, clusterAddr string) error {
	if err := m.requireBus(); err != nil {
		return err
	}
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if _, err := m.decideDR(OpDREnablePrimary); err != nil {
		return err
	}
	m.mu.Lock()
	p := m.primary
	if p == nil {
		if clusterAddr == "" {
			clusterAddr = m.cfg.Bus.ClientURL()
		}
		m.clusterAddr = clusterAddr
	}
	cfg := m.primaryConfig()
	m.mu.Unlock()
	started := false
	if p == nil {
		var err error
		if p, err = primary.Enable(ctx, cfg); err != nil {
			return fmt.Errorf("enable DR primary: %w", err)
		}
		started = true
	}
	if err := p.SetDR(ctx, true); err != nil {
		if started {
			p.Stop()
		}
		return fmt.Errorf("enable DR primary: %w", err)
	}
	m.mu.Lock()
	m.primary, m.drMode = p, Primary
	st := state{Mode: string(m.mode), DRMode: string(Primary), PrimaryClusterAddr: cfg.BusURL}
	m.mu.Unlock()
	if err := saveState(ctx, m.host.Barrier(), st); err != nil {
		return fmt.Errorf("store replication mode: %w", err)
	}
	m.log.Info().Msg("DR replication primary enabled")
	return nil
}

// DisableDRPrimary stops the DR section; the primary stops too unless
// performance replication runs.
func (m *Manager) DisableDRPrimary(ctx context.Context) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if _, err := m.decideDR(OpDRDisablePrimary); err != nil {
		return err
	}
	m.mu.Lock()
	p, perf := m.primary, m.mode
	m.mu.Unlock()
	if perf == Primary {
		if err := p.SetDR(ctx, false); err != nil {
			return err
		}
		m.mu.Lock()
		m.drMode = Disabled
		m.mu.Unlock()
		return saveState(ctx, m.host.Barrier(), state{Mode: string(Primary), PrimaryClusterAddr: m.clusterAddr})
	}
	m.stopRole()
	if err := primary.Disable(ctx, m.primaryConfig()); err != nil {
		return fmt.Errorf("disable DR primary: %w", err)
	}
	if err := deleteState(ctx, m.host.Barrier()); err != nil {
		return err
	}
	m.mu.Lock()
	m.drMode = Disabled
	m.mu.Unlock()
	return nil
}

// DemoteDRPrimary stops this DR primary and leaves it a DR secondary waiting
// for update-primary, with its data (its primary state goes; the set's
// stream and claim stay).
func (m *Manager) DemoteDRPrimary(ctx context.Context) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if _, err := m.decideDR(OpDRDemote); err != nil {
		return err
	}
	if err := m.demote(ctx, state{Mode: string(Disabled), DRMode: string(Secondary), Demoted: true}); err != nil {
		return err
	}
	m.mu.Lock()
	m.mode, m.drMode = Disabled, Secondary
	m.mu.Unlock()
	m.log.Warn().Msg("demoted: this cluster is a DR secondary waiting for update-primary with a DR token from the new primary")
	return nil
}

// PromoteDRSecondary makes this DR secondary the primary of its set, after
// checking the DR operation token: it stops following, takes over the
// primary's replication state it kept and claims the set's next generation
// at once, which fences the former primary wherever it is. It works with the
// former primary and its NATS node gone: it needs only the set's claim
// (JetStream KV) reachable on the NATS system.
func (m *Manager) PromoteDRSecondary(ctx context.Context, opToken, clusterAddr string) error {
	if err := m.requireBus(); err != nil {
		return err
	}
	if err := m.host.CheckDROperationToken(ctx, opToken, pathDRPromote); err != nil {
		return err
	}
	m.opMu.Lock()
	defer m.opMu.Unlock()
	step, err := m.decideDR(OpDRPromote)
	if err != nil {
		return err
	}
	m.mu.RLock()
	sec := m.drSecondary
	m.mu.RUnlock()
	if sec == nil {
		return logical.InvalidRequest("this DR secondary follows no primary yet (demoted, waiting for update-primary): it has no copy of a primary's state to take over")
	}
	state0 := sec.PrimaryState()
	if len(state0) == 0 {
		return logical.InvalidRequest("this DR secondary has no copy of its primary's replication state yet: wait for its first sync to end (sys/replication/dr/status)")
	}
	followed := sec.Status().Generation
	m.stopRole()
	m.mu.Lock()
	if clusterAddr == "" {
		clusterAddr = m.cfg.Bus.ClientURL()
	}
	m.clusterAddr = clusterAddr
	cfg := m.primaryConfig()
	m.mu.Unlock()
	p, err := takeOver(ctx, cfg, state0, followed)
	if err != nil {
		// Follow the primary again, so that promote can be retried.
		if r, rerr := openRole(context.WithoutCancel(ctx), Secondary, cfg, m.secondaryConfigOf(true)); rerr == nil {
			m.mu.Lock()
			m.drSecondary = r.s
			m.mu.Unlock()
		}
		return logical.Errorf(http.StatusServiceUnavailable, "promote: %v: this cluster follows its primary again; retry promote once NATS answers", err)
	}
	if err := m.forgetSecondary(ctx); err != nil {
		m.log.Warn().Err(err).Msg("promote: cannot delete the DR secondary's state; it is ignored from now on")
	}
	st := state{Mode: string(step.PerfTo), DRMode: string(step.To), PrimaryClusterAddr: cfg.BusURL}
	if err := saveState(ctx, m.host.Barrier(), st); err != nil {
		p.Stop()
		return fmt.Errorf("store replication mode: %w", err)
	}
	m.mu.Lock()
	m.mode, m.drMode, m.primary, m.primaryAPI = step.PerfTo, step.To, p, ""
	m.mu.Unlock()
	m.log.Warn().Uint64("generation", p.Status().Generation).Msg("promoted: this cluster is the primary of its replication set")
	return nil
}

// takeOverWait bounds how long a promotion retries while NATS cannot place
// the stream or the claim (a JetStream leader election after the primary's
// NATS node died takes seconds).
const takeOverWait = time.Minute

// takeOver runs primary.TakeOver, retrying what fails (NATS) until
// takeOverWait: each attempt stores the same state again.
func takeOver(ctx context.Context, cfg primary.Config, state []byte, followed uint64) (*primary.Primary, error) {
	deadline := time.Now().Add(takeOverWait)
	bo := backoff.Backoff{Min: 250 * time.Millisecond, Max: 5 * time.Second}
	for {
		// Short attempts: a request lost while this node's NATS connection
		// moved to another server must not hold the promotion for long.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		p, err := primary.TakeOver(actx, cfg, state, followed)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return p, err
		}
		wctx, wcancel := context.WithDeadline(context.Background(), deadline)
		ok := bo.Wait(wctx)
		wcancel()
		if !ok {
			return nil, err
		}
	}
}

// UpdateDRPrimary points this DR secondary (or a demoted DR primary) at the
// primary that issued a DR token, after checking the DR operation token,
// without a wipe: the new primary must share this cluster's keyring; the
// sync (a full listing: DR secondaries take local keys the merkle index does
// not cover) reconciles the data.
func (m *Manager) UpdateDRPrimary(ctx context.Context, opToken, token, primaryAPIAddr, busURL string) error {
	if err := m.host.CheckDROperationToken(ctx, opToken, pathDRUpdatePrimary); err != nil {
		return err
	}
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if _, err := m.decideDR(OpDRUpdatePrimary); err != nil {
		return err
	}
	claims, err := replication.ParseToken(token, clock.Now())
	if err != nil {
		return logical.InvalidRequest("DR token refused: %v", err)
	}
	ctx = context.WithoutCancel(ctx)
	cfg := m.secondaryConfigOf(true)
	cfg.ClusterID = claims.Issuer
	rd, err := secondary.Redeem(ctx, cfg, claims, busURL)
	if err != nil {
		return logical.InvalidRequest("update-primary refused: %v", err)
	}
	if primaryAPIAddr != "" {
		rd.PrimaryAPIAddr = primaryAPIAddr
	}
	sec, bundle, err := secondary.Resume(ctx, cfg, rd)
	if err != nil {
		return logical.InvalidRequest("update-primary refused: %v", err)
	}
	if root, rerr := m.host.Barrier().RootKey(); rerr != nil || !bytes.Equal(root, bundle.RootKey) {
		sec.Stop()
		return logical.InvalidRequest("update-primary refused: primary %s does not share this cluster's keyring; activate with sys/replication/dr/secondary/enable instead (it replaces the data)", bundle.PrimaryClusterID)
	}
	if m.host.ClusterID() != bundle.PrimaryClusterID {
		sec.Stop()
		return logical.InvalidRequest("update-primary refused: primary %s holds another replication set than this DR secondary's (%s); activate with sys/replication/dr/secondary/enable instead", bundle.PrimaryClusterID, m.host.ClusterID())
	}
	m.stopRole()
	if err := m.forgetSecondary(ctx); err != nil {
		sec.Stop()
		return err
	}
	if err := sec.Start(context.Background()); err != nil {
		sec.Stop()
		return fmt.Errorf("start replication: %w", err)
	}
	st := state{Mode: string(Disabled), DRMode: string(Secondary), SecondaryID: bundle.SecondaryID, PrimaryClusterAddr: rd.BusURL, PrimaryAPIAddr: rd.PrimaryAPIAddr}
	if err := saveState(ctx, m.host.Barrier(), st); err != nil {
		sec.Stop()
		return fmt.Errorf("store replication mode: %w", err)
	}
	m.mu.Lock()
	m.mode, m.drMode, m.drSecondary = Disabled, Secondary, sec
	m.clusterAddr, m.primaryAPI = rd.BusURL, rd.PrimaryAPIAddr
	m.mu.Unlock()
	m.log.Warn().Str("primary", bundle.PrimaryClusterID).Msg("DR secondary following a new primary; syncing")
	return nil
}

// DisableDRSecondary stops DR replication on this DR secondary after
// checking the DR operation token; its data stays, and it becomes a
// standalone cluster.
func (m *Manager) DisableDRSecondary(ctx context.Context, opToken string) error {
	if err := m.host.CheckDROperationToken(ctx, opToken, pathDRDisable); err != nil {
		return err
	}
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if _, err := m.decideDR(OpDRDisableSecondary); err != nil {
		return err
	}
	m.stopRole()
	if err := m.forgetSecondary(ctx); err != nil {
		return err
	}
	if err := deleteState(ctx, m.host.Barrier()); err != nil {
		return err
	}
	m.mu.Lock()
	m.drMode = Disabled
	m.mu.Unlock()
	return nil
}
