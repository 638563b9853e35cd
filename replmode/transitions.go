package replmode

import (
	"context"
	"fmt"
	"net/http"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/primary"
)

// decide asks the table whether op may run now.
func (m *Manager) decide(op Op) (Step, error) {
	m.mu.RLock()
	busy := m.boot != nil && m.boot.running()
	dr := m.drMode
	m.mu.RUnlock()
	if busy {
		return Step{}, errActivationBusy
	}
	if dr == Secondary {
		return Step{}, logical.InvalidRequest("this cluster is a DR secondary: it takes no performance replication operation; promote it first (sys/replication/dr/secondary/promote)")
	}
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
	if m.primary != nil {
		// A DR primary already runs: performance replication uses it.
		m.mode = Primary
		st := state{Mode: string(Primary), DRMode: string(m.drMode), PrimaryClusterAddr: m.clusterAddr}
		m.mu.Unlock()
		return saveState(ctx, m.host.Barrier(), st)
	}
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
	if m.drMode == Primary {
		// DR replication goes on with the same primary.
		m.mode = Disabled
		return saveState(ctx, m.host.Barrier(), state{Mode: string(Disabled), DRMode: string(Primary), PrimaryClusterAddr: m.clusterAddr})
	}
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
