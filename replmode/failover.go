package replmode

import (
	"bytes"
	"context"
	"fmt"

	"github.com/cofferhq/coffer/internal/clock"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/primary"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/secondary"
)

// Performance failover (docs/replication.md, "Failover"): promote a
// secondary to a primary, demote a primary to a secondary waiting for a new
// primary, and point a secondary at a new primary (update-primary). None of
// them wipes: the merkle index is the source of truth, and a secondary that
// follows a new primary reconciles by merkle diff.

// PromoteSecondary makes this performance secondary the primary of a new
// replication set (its own cluster id), keeping its data. Its former
// primary's other secondaries follow it with update-primary and a token from
// it. The former primary is not fenced by this (it holds another set): demote
// it.
func (m *Manager) PromoteSecondary(ctx context.Context, clusterAddr string) error {
	if err := m.requireBus(); err != nil {
		return err
	}
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if _, err := m.decide(OpPromote); err != nil {
		return err
	}
	m.stopRole()
	if err := m.forgetSecondary(ctx); err != nil {
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
		return fmt.Errorf("promote: enable the primary: %w (this cluster is now disabled, its data kept: retry promote with sys/replication/performance/primary/enable)", err)
	}
	if err := saveState(ctx, m.host.Barrier(), state{Mode: string(Primary), PrimaryClusterAddr: cfg.BusURL}); err != nil {
		p.Stop()
		return fmt.Errorf("store replication mode: %w", err)
	}
	m.mu.Lock()
	m.mode, m.primary, m.primaryAPI = Primary, p, ""
	m.mu.Unlock()
	m.log.Warn().Str("bus", cfg.BusURL).Msg("promoted to performance primary of a new replication set; point the other secondaries at it with update-primary")
	return nil
}

// DemotePrimary stops this primary and leaves the cluster a performance
// secondary waiting for update-primary, with its data; a DR primary role
// ends with it. Its primary state
// goes (keys, registry); the set's WAL stream and generation claim stay:
// another cluster may hold the set now.
func (m *Manager) DemotePrimary(ctx context.Context) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if _, err := m.decide(OpDemote); err != nil {
		return err
	}
	if err := m.demote(ctx, state{Mode: string(Secondary), Demoted: true}); err != nil {
		return err
	}
	m.mu.Lock()
	m.mode, m.drMode = Secondary, Disabled // its DR primary role went with the primary
	m.mu.Unlock()
	m.log.Warn().Msg("demoted: this cluster is a performance secondary waiting for update-primary with a token from the new primary")
	return nil
}

// UpdatePrimary points this performance secondary (or a demoted primary) at
// the primary that issued token, without a wipe: it redeems the token, checks
// that the new primary's keyring is this cluster's (its promoted secondary,
// or the promoted DR copy of its primary), then syncs by merkle diff, which
// moves only the keys that differ.
func (m *Manager) UpdatePrimary(ctx context.Context, token, primaryAPIAddr, busURL string) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if _, err := m.decide(OpUpdatePrimary); err != nil {
		return err
	}
	claims, err := replication.ParseToken(token, clock.Now())
	if err != nil {
		return logical.InvalidRequest("activation token refused: %v", err)
	}
	ctx = context.WithoutCancel(ctx)
	cfg := m.secondaryConfig()
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
		return logical.InvalidRequest("update-primary refused: primary %s does not share this cluster's keyring, so this cluster's data cannot be kept; activate with sys/replication/performance/secondary/enable instead (it replaces the data)", bundle.PrimaryClusterID)
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
	st := state{Mode: string(Secondary), SecondaryID: bundle.SecondaryID, PrimaryClusterAddr: rd.BusURL, PrimaryAPIAddr: rd.PrimaryAPIAddr}
	if err := saveState(ctx, m.host.Barrier(), st); err != nil {
		sec.Stop()
		return fmt.Errorf("store replication mode: %w", err)
	}
	m.mu.Lock()
	m.setSecondaryLocked(sec)
	m.clusterAddr, m.primaryAPI = rd.BusURL, rd.PrimaryAPIAddr
	m.mu.Unlock()
	m.log.Warn().Str("primary", bundle.PrimaryClusterID).Uint64("generation", bundle.Generation).
		Msg("following a new primary; reconciling by merkle diff")
	return nil
}

// demote stops the primary, forgets its primary state (the set's stream and
// claim stay: another cluster may hold the set now) and stores st, the mode
// of a cluster waiting for update-primary. opMu is held.
func (m *Manager) demote(ctx context.Context, st state) error {
	m.stopRole()
	if err := primary.Forget(ctx, logicalView(m)); err != nil {
		return err
	}
	if err := saveState(ctx, m.host.Barrier(), st); err != nil {
		return fmt.Errorf("store replication mode: %w", err)
	}
	return nil
}

// stopRole stops the running role (and a background start), keeping the mode.
func (m *Manager) stopRole() {
	m.stopRetry()
	m.mu.Lock()
	p, s, d := m.primary, m.secondary, m.drSecondary
	m.primary, m.secondary, m.drSecondary, m.client = nil, nil, nil, nil
	m.mu.Unlock()
	if p != nil {
		p.Stop()
	}
	if s != nil {
		s.Stop()
	}
	if d != nil {
		d.Stop()
	}
}

// forgetSecondary deletes the secondary's stored state and position: the
// next secondary starts from its own sync.
func (m *Manager) forgetSecondary(ctx context.Context) error {
	if err := m.host.Physical().Delete(ctx, secondaryPrefix+"state"); err != nil {
		return fmt.Errorf("forget the secondary's position: %w", err)
	}
	if err := logicalSecondaryView(m).Delete(ctx, "state"); err != nil {
		return fmt.Errorf("forget the secondary's state: %w", err)
	}
	return nil
}

func logicalView(m *Manager) *logical.View { return logical.NewView(m.host.Barrier(), primaryPrefix) }

func logicalSecondaryView(m *Manager) *logical.View {
	return logical.NewView(m.host.Barrier(), secondaryPrefix+"secrets/")
}
