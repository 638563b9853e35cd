package primary

import (
	"context"
	"fmt"
	"time"

	"github.com/cofferhq/coffer/storage"
)

// DR replication and failover on the primary's side (docs/replication.md,
// "Failover" and "DR replication").

// SetDR turns DR replication on or off on this primary: on, batches carry
// the DR section (the local ops, under the DR key of their epoch) and DR
// tokens are issued.
func (p *Primary) SetDR(ctx context.Context, on bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.st.DR
	p.st.DR = on
	if on {
		p.st.ensureDRKey()
	}
	if err := saveState(ctx, p.cfg.State, p.st); err != nil {
		p.st.DR = old
		return err
	}
	return nil
}

// DREnabled reports whether DR replication is on.
func (p *Primary) DREnabled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.DR
}

// TakeOver starts a promoted DR secondary as the set's primary: state is the
// primary's replication state the DR secondary kept (its keys and
// registry), for this cluster id; followedGen the newest generation the
// secondary followed: the promotion claims the one after it. Shipping starts at this cluster's WAL
// (its index space is its own), the fence of a former demotion goes, and the
// next generation is claimed at once: the previous primary is fenced when it
// sees it, and every secondary resyncs by merkle diff.
func TakeOver(ctx context.Context, cfg Config, state []byte, followedGen uint64) (*Primary, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st, err := stateRecord.Decode(state)
	if err != nil {
		return nil, fmt.Errorf("take over: the primary's replication state copy: %w", err)
	}
	if st.ClusterID != cfg.ClusterID {
		return nil, fmt.Errorf("take over: the state copy belongs to cluster %q, this is %q", st.ClusterID, cfg.ClusterID)
	}
	st.Fenced = nil
	st.Generation = max(st.Generation, followedGen)
	if err := saveShipped(ctx, cfg.State, cfg.WAL.LastIndex(), 0); err != nil {
		return nil, fmt.Errorf("take over: %w", err)
	}
	if err := saveState(ctx, cfg.State, st); err != nil {
		return nil, fmt.Errorf("take over: %w", err)
	}
	p, err := startWith(ctx, cfg, st, true)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.holding:
	case <-p.fenced:
	case <-time.After(publishTimeout):
		p.log.Warn().Msg("the set's next generation is not claimed yet (NATS?); shipping waits for it")
	case <-ctx.Done():
	}
	return p, nil
}

// Generation is the set's generation this primary holds, or the stored one
// while it claims it or is fenced. Cheap: the request path reads it.
func (p *Primary) Generation() uint64 {
	if g := p.gen.Load(); g != 0 {
		return g
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.Generation
}

// Forget deletes this cluster's primary state (keys, registry, shipped
// index, generation, fence) and leaves the WAL stream and the generation
// claim alone: they belong to the set, which another cluster may hold now.
// Demote calls it on a stopped primary.
func Forget(ctx context.Context, state storage.Backend) error {
	for _, k := range []string{shippedKey, stateKey} {
		if err := state.Delete(ctx, k); err != nil {
			return fmt.Errorf("forget primary state: delete %s: %w", k, err)
		}
	}
	return nil
}
