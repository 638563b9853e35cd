package replmode

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cofferhq/coffer/core"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/primary"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/secondary"
)

// secondaryReadyWait bounds an activation's first sync.
const secondaryReadyWait = 2 * time.Minute

// decide asks the table whether op may run now.
func (m *Manager) decide(op Op) (Step, error) {
	return Next(Mode(m.Mode()), op)
}

func (m *Manager) requireBus() error {
	if m.cfg.Bus == nil {
		return logical.InvalidRequest("replication needs a NATS bus: add bus { embedded = true } or bus { url = \"nats://...\" } to the configuration (dev servers embed one)")
	}
	return nil
}

// EnablePrimary makes this cluster a performance replication primary.
func (m *Manager) EnablePrimary(ctx context.Context, clusterAddr string) error {
	if err := m.requireBus(); err != nil {
		return err
	}
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if _, err := m.decide(OpEnablePrimary); err != nil {
		return err
	}
	if clusterAddr == "" {
		clusterAddr = m.cfg.Bus.ClientURL()
	}
	m.mu.Lock()
	m.clusterAddr = clusterAddr
	cfg := m.primaryConfig()
	m.mu.Unlock()
	p, err := primary.Enable(ctx, cfg)
	if err != nil {
		return fmt.Errorf("enable performance primary: %w", err)
	}
	if err := saveState(ctx, m.host.Barrier(), state{Mode: string(Primary), PrimaryClusterAddr: cfg.BusURL}); err != nil {
		p.Stop()
		return fmt.Errorf("store replication mode: %w", err)
	}
	m.mu.Lock()
	m.mode, m.primary = Primary, p
	m.mu.Unlock()
	m.log.Info().Str("bus", cfg.BusURL).Msg("performance replication primary enabled")
	return nil
}

// DisablePrimary stops shipping and forgets the replication set.
func (m *Manager) DisablePrimary(ctx context.Context) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if _, err := m.decide(OpDisablePrimary); err != nil {
		return err
	}
	m.stopRetry()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.primary != nil {
		m.primary.Stop()
	}
	if err := primary.Disable(ctx, m.primaryConfig()); err != nil {
		return fmt.Errorf("disable performance primary: %w", err)
	}
	if err := deleteState(ctx, m.host.Barrier()); err != nil {
		return err
	}
	m.mode, m.primary = Disabled, nil
	return nil
}

// livePrimary returns the running primary for op, or the table's refusal.
func (m *Manager) livePrimary(op Op) (*primary.Primary, error) {
	if _, err := m.decide(op); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	switch {
	case m.primary != nil:
		return m.primary, nil
	case m.mode == Primary:
		return nil, logical.Errorf(http.StatusServiceUnavailable, "this primary's replication is not running yet (%s): it retries by itself; retry when sys/replication/status shows state running", m.startErr)
	}
	return nil, logical.InvalidRequest("%s", defaultRefusal(m.mode, op))
}

// EnableSecondary activates this cluster as a secondary of the primary that
// issued token: it wipes storage (Step.Wipe), takes the primary's keyring and
// data, and streams from then on. The secondary reaches the primary's NATS at
// the URL in the token (or busURL).
func (m *Manager) EnableSecondary(ctx context.Context, token, primaryAPIAddr, busURL string) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	step, err := m.decide(OpEnableSecondary)
	if err != nil {
		return err
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
	// From here the activation no longer depends on the HTTP call: a client
	// that gives up (vault/api's 60 s timeout) must not cancel a sync
	// halfway, after the wipe.
	ctx = context.WithoutCancel(ctx)
	sec, bundle, err := secondary.Activate(ctx, m.secondaryConfig(), token, busURL)
	if err != nil {
		return logical.InvalidRequest("activation refused: %v", err)
	}
	m.setActivation(bundle.RootKey, sec)
	defer m.setActivation(nil, nil)
	err = m.host.ReplaceData(ctx, bundle.RootKey, core.Replacement{
		Wipe: func(ctx context.Context) error { return m.wipe(ctx, step.Wipe) },
		Fill: func(ctx context.Context) error {
			if err := sec.Start(context.Background()); err != nil {
				return fmt.Errorf("start replication: %w", err)
			}
			if err := waitStreaming(ctx, sec, secondaryReadyWait); err != nil {
				return fmt.Errorf("initial sync from the primary: %w (the cluster is sealed; activate again with a new token)", err)
			}
			return nil
		},
	})
	if err != nil {
		sec.Stop()
		return err
	}
	st := state{Mode: string(Secondary), SecondaryID: bundle.SecondaryID, PrimaryClusterAddr: busURL, PrimaryAPIAddr: primaryAPIAddr}
	if err := saveState(ctx, m.host.Barrier(), st); err != nil {
		sec.Stop()
		return fmt.Errorf("store replication mode: %w", err)
	}
	if m.cfg.Dev && bundle.DevRootTokenID != "" {
		if err := m.host.CreateRootToken(ctx, bundle.DevRootTokenID); err != nil {
			m.log.Warn().Err(err).Msg("could not create the primary's dev root token here")
		}
	}
	m.mu.Lock()
	m.setSecondaryLocked(sec)
	m.clusterAddr, m.primaryAPI = busURL, primaryAPIAddr
	m.mu.Unlock()
	m.log.Info().Str("secondary_id", bundle.SecondaryID).Str("primary", bundle.PrimaryClusterID).Msg("performance secondary activated")
	return nil
}

// wipe deletes what a transition replaces.
func (m *Manager) wipe(ctx context.Context, w Wipe) error {
	switch w {
	case WipeNothing:
		return nil
	case WipeAllButWAL:
		keep := func(key string) bool { return strings.HasPrefix(key, "wal/") }
		if err := secondary.Wipe(ctx, m.host.Physical(), keep); err != nil {
			return fmt.Errorf("wipe storage for activation: %w (the cluster is sealed; restart it and activate again)", err)
		}
		return nil
	}
	return fmt.Errorf("unknown wipe %q", w)
}

// setActivation records the activation in progress (nil, nil when it ends).
func (m *Manager) setActivation(root []byte, sec *secondary.Secondary) {
	m.mu.Lock()
	m.activationRoot, m.bootstrapping = root, sec
	m.mu.Unlock()
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
func (m *Manager) DisableSecondary(ctx context.Context) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if _, err := m.decide(OpDisableSecondary); err != nil {
		return err
	}
	m.stopRetry()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.secondary != nil {
		m.secondary.Stop()
	}
	if err := deleteState(ctx, m.host.Barrier()); err != nil {
		return err
	}
	m.mode, m.secondary, m.client = Disabled, nil, nil
	return nil
}
