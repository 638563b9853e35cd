package primary

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/wal"
)

// DefaultLeaseTTL is how long a claim must stay unchanged before another
// process of the cluster takes it over (a holder renews every fifth of it).
const DefaultLeaseTTL = 10 * time.Second

// Claim states, as Status.ClaimState reports them.
const (
	ClaimClaiming = "claiming" // not holding yet: nothing is shipped or served
	ClaimHolding  = "holding"  // this process holds the set's generation
	ClaimFenced   = "fenced"   // another process holds a newer or the same generation: never again until demoted
)

// ErrFenced wraps the error a fenced primary gives for writes.
var ErrFenced = errors.New("this cluster is no longer the replication primary")

// fenceRec is the stored fence: who holds the set now. It survives restarts:
// a fenced primary stays fenced until demoted.
type fenceRec struct {
	Gen       uint64    `json:"gen"`
	ClusterID string    `json:"cluster_id"`
	APIAddr   string    `json:"api_addr,omitempty"`
	Why       string    `json:"why"`
	At        time.Time `json:"at"`
}

// leaseState is the claim's state for Status and the shipper; guarded by
// Primary.lmu.
type leaseState struct {
	state   string
	why     string // the last wait or fence reason
	err     string // the last KV error
	foreign int    // claim records on the bus that the set's key did not sign
}

// leaseLoop is the claim's goroutine: it claims the set's generation (see
// decideClaim), then renews it every LeaseTTL/5 until ctx ends, or it finds
// itself fenced. It holds nothing while it waits on NATS.
func (p *Primary) leaseLoop(ctx context.Context, streamLast uint64) {
	every := p.cfg.LeaseTTL / 5
	var obsRev uint64
	var obsSince time.Time
	observing, alive := false, false
	for {
		e, err := p.reg.Get(ctx)
		rev := e.Revision
		if err != nil {
			p.setLease(func(l *leaseState) { l.err = err.Error() })
		} else {
			seen := p.openClaim(e)
			holding := p.gen.Load() != 0
			if !holding && (!observing || rev != obsRev) {
				if observing && seen != nil && seen.Instance != p.instance {
					alive = true
				}
				obsRev, obsSince, observing = rev, time.Now(), true
			}
			p.mu.Lock()
			stored, fenced := p.st.Generation, p.st.Fenced
			p.mu.Unlock()
			if fenced != nil {
				return
			}
			v := decideClaim(claimView{
				Cluster: p.cfg.ClusterID, Instance: p.instance, StoredGen: stored, StoredShipped: p.shipped.Load(),
				StreamLast: streamLast, Holding: holding, Seen: seen,
				Quiet: observing && time.Since(obsSince) >= p.cfg.LeaseTTL, Alive: alive, Promote: p.promote,
				Behind: p.takeBehind(), HATerm: p.haTerm(),
			})
			again, stop := p.carryOut(ctx, v, seen, rev)
			if stop {
				return
			}
			if again {
				observing, alive = false, false
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-p.leaseWake:
		case <-time.After(every):
		}
	}
}

// haTerm is this node's term as its cluster's active node (0 without HA).
func (p *Primary) haTerm() uint64 {
	if p.cfg.HATerm == nil {
		return 0
	}
	return p.cfg.HATerm()
}

// noteBehind records that a secondary of the held generation reported a
// position past this primary's WAL, and wakes the claim loop.
func (p *Primary) noteBehind(why string) {
	p.lmu.Lock()
	p.behind = why
	p.lmu.Unlock()
	select {
	case p.leaseWake <- struct{}{}:
	default:
	}
}

// takeBehind returns and clears what noteBehind recorded.
func (p *Primary) takeBehind() string {
	p.lmu.Lock()
	defer p.lmu.Unlock()
	why := p.behind
	p.behind = ""
	return why
}

// openClaim verifies a claim record; nil for none, a stranger's bytes, or a
// stale one. A claim is stale when the NATS server stored it more than a
// lease TTL away from when its writer signed it (Renewed): a record captured
// on the bus and written back later, which must neither fence a holder nor
// pass for a live one. (Clocks of the holders and of NATS agree within a
// lease TTL; a stranger cannot choose the server's time.)
func (p *Primary) openClaim(e bus.Entry) *replication.Claim {
	if e.Value == nil {
		return nil
	}
	p.mu.Lock()
	pub := p.st.signer().Public().(ed25519.PublicKey)
	p.mu.Unlock()
	c, err := replication.OpenClaim(e.Value, pub)
	if err == nil && c.Set != p.cfg.ClusterID {
		err = fmt.Errorf("a claim of set %q", c.Set)
	}
	if err == nil && c.Instance != p.instance {
		if skew := e.Stored.Sub(c.RenewedTime()); skew > p.cfg.LeaseTTL || skew < -p.cfg.LeaseTTL {
			err = fmt.Errorf("stale: signed at %s, stored at %s (a replay)", c.RenewedTime().UTC().Format(time.RFC3339), e.Stored.UTC().Format(time.RFC3339))
		}
	}
	if err != nil {
		p.setLease(func(l *leaseState) { l.foreign++ })
		p.log.Warn().Err(err).Msg("the generation claim on the bus is not a live claim of this set (a stranger on the bus); treated as empty")
		return nil
	}
	return c
}

// carryOut does what v says; again is true to decide anew at once (a lost
// compare-and-set), stop when the loop ends (fenced).
func (p *Primary) carryOut(ctx context.Context, v verdict, seen *replication.Claim, rev uint64) (again, stop bool) {
	switch v.Kind {
	case verdictWait:
		p.setLease(func(l *leaseState) { l.state, l.why = ClaimClaiming, v.Why })
		return false, false
	case verdictYield:
		// This node is no longer its cluster's active node: stop shipping
		// (the node deactivates replication as it turns standby).
		if p.gen.Swap(0) != 0 {
			p.log.Warn().Str("why", v.Why).Msg("yielding the replication set to this cluster's new active node")
		}
		p.setLease(func(l *leaseState) { l.state, l.why = ClaimClaiming, v.Why })
		return false, true
	case verdictFenced:
		f := fenceRec{Gen: v.Gen, ClusterID: p.cfg.ClusterID, Why: v.Why, At: p.cfg.Now()}
		if seen != nil {
			f.ClusterID, f.APIAddr = seen.ClusterID, seen.APIAddr
		}
		p.fence(ctx, f)
		return false, true
	}
	if err := p.writeClaim(ctx, v.Gen, rev, false); err != nil {
		if errors.Is(err, bus.ErrConflict) {
			return true, false
		}
		p.setLease(func(l *leaseState) { l.err = err.Error() })
		return false, false
	}
	if p.gen.Load() == v.Gen {
		return false, false // renewed
	}
	if v.From > p.shipped.Load() {
		// A handover: the stream holds the earlier active node's batches
		// up to From; ship after them, not again.
		p.shipped.Store(v.From)
	}
	if err := p.storeGeneration(ctx, v.Gen); err != nil {
		p.log.Error().Err(err).Uint64("generation", v.Gen).Msg("cannot store the claimed generation; retrying")
		return false, false
	}
	if v.Why != "" {
		p.log.Warn().Uint64("generation", v.Gen).Str("why", v.Why).Msg("claimed the replication set's generation")
	} else {
		p.log.Info().Uint64("generation", v.Gen).Msg("claimed the replication set's generation")
	}
	p.gen.Store(v.Gen)
	p.promote = false // from now on it holds like any primary
	p.setLease(func(l *leaseState) { l.state, l.why, l.err = ClaimHolding, "", "" })
	p.holdOnce.Do(func() { close(p.holding) })
	return false, false
}

// writeClaim writes this process's claim of gen at revision rev.
func (p *Primary) writeClaim(ctx context.Context, gen, rev uint64, released bool) error {
	msg, err := replication.SignClaim(&replication.Claim{
		Set: p.cfg.ClusterID, Gen: gen, ClusterID: p.cfg.ClusterID, Instance: p.instance, APIAddr: p.cfg.APIAddr,
		Shipped: p.shipped.Load(), Renewed: p.cfg.Now().UnixMilli(), Released: released, HATerm: p.haTerm(),
	}, p.st.signer())
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	_, err = p.reg.Set(wctx, msg, rev)
	return err
}

// storeGeneration records gen as this cluster's generation.
func (p *Primary) storeGeneration(ctx context.Context, gen uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.st.Generation == gen {
		return nil
	}
	old := p.st.Generation
	p.st.Generation = gen
	if err := saveState(ctx, p.cfg.State, p.st); err != nil {
		p.st.Generation = old
		return err
	}
	return nil
}

// fence stops this primary for good: it stores the fence (a restart stays
// fenced), stops serving RPCs and shipping, and refuses writes (Fenced).
func (p *Primary) fence(ctx context.Context, f fenceRec) {
	p.mu.Lock()
	p.st.Fenced = &f
	err := saveState(ctx, p.cfg.State, p.st)
	p.mu.Unlock()
	if err != nil {
		p.log.Error().Err(err).Msg("cannot store the fence; it holds until this process stops, and the next start finds the newer claim again")
	}
	p.gen.Store(0)
	p.setLease(func(l *leaseState) { l.state, l.why = ClaimFenced, f.Why })
	p.fenceOnce.Do(func() { close(p.fenced) })
	p.log.Error().Str("holder", f.ClusterID).Uint64("generation", f.Gen).Str("why", f.Why).
		Msg("this primary is fenced: another process holds the replication set; it ships nothing and refuses writes until demoted")
}

// Fenced returns nil while this primary may take writes, else an error that
// says who holds the set and what to do (ErrFenced).
func (p *Primary) Fenced() error {
	p.mu.Lock()
	f := p.st.Fenced
	p.mu.Unlock()
	if f == nil {
		return nil
	}
	at := ""
	if f.APIAddr != "" {
		at = " at " + f.APIAddr
	}
	return fmt.Errorf("%w: cluster %s%s holds replication set %s in generation %d (found %s: %s); "+
		"send writes there, and make this cluster its secondary: demote it (sys/replication/performance/primary/demote), then update-primary with a token from the holder",
		ErrFenced, f.ClusterID, at, p.cfg.ClusterID, f.Gen, f.At.UTC().Format(time.RFC3339), f.Why)
}

// release marks this process's claim released on a clean stop, so that the
// next start need not wait a lease TTL. Best effort.
func (p *Primary) release() {
	gen := p.gen.Load()
	if gen == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	e, err := p.reg.Get(ctx)
	if err != nil {
		return
	}
	if c := p.openClaim(e); c == nil || c.Instance != p.instance {
		return
	}
	if err := p.writeClaim(ctx, gen, e.Revision, true); err != nil {
		p.log.Debug().Err(err).Msg("cannot release the generation claim; the next start waits a lease TTL")
	}
}

func (p *Primary) setLease(f func(*leaseState)) {
	p.lmu.Lock()
	f(&p.lease)
	p.lmu.Unlock()
}

// streamLastOf returns the last WAL index of a batch of generation gen at
// the stream's end, verified with this primary's keys (0 when there is none,
// or it is not ours), and that batch.
func (p *Primary) streamLastOf(ctx context.Context, gen uint64) (uint64, *replication.Batch) {
	_, last, _, err := p.cfg.Bus.StreamState(ctx, p.stream)
	if err != nil || last == 0 {
		return 0, nil
	}
	msg, err := p.cfg.Bus.StreamMsg(ctx, p.stream, last)
	if err != nil {
		return 0, nil
	}
	epoch, _, _, err := replication.PeekBatch(msg)
	if err != nil {
		return 0, nil
	}
	p.mu.Lock()
	key, pub := p.st.key(epoch), p.st.signer().Public().(ed25519.PublicKey)
	p.mu.Unlock()
	if key == nil {
		return 0, nil
	}
	b, err := replication.OpenBatch(msg, p.cfg.ClusterID, key, pub)
	if err != nil || b.Generation != gen {
		return 0, nil
	}
	return b.Last, b
}

// walHolds reports whether this primary's WAL holds batch b exactly: every
// entry of its range, with the same commit times and replicated ops. Then
// the storage did not go back in time past b (a crash only lost the lazily
// stored shipped index), and shipping resumes after it in the same
// generation. False when the WAL no longer has the range or differs.
func (p *Primary) walHolds(ctx context.Context, b *replication.Batch) bool {
	if b.First == 0 || b.Last < b.First || p.cfg.WAL.LastIndex() < b.Last {
		return false
	}
	entries, err := p.cfg.WAL.Read(ctx, b.First-1, int(min(b.Last-b.First+1, maxBatchEntries)))
	if err != nil || len(entries) == 0 || entries[len(entries)-1].Index != b.Last {
		return false
	}
	shipped := make(map[uint64]*wal.Entry, len(b.Entries))
	for _, e := range b.Entries {
		shipped[e.Index] = e
	}
	for _, e := range entries {
		var ops []wal.Op
		for _, op := range e.Ops {
			if op.Class == wal.Replicated {
				ops = append(ops, op)
			}
		}
		s := shipped[e.Index]
		if s == nil {
			if len(ops) > 0 {
				return false
			}
			continue
		}
		if s.Time != e.Time || len(s.Ops) != len(ops) {
			return false
		}
		for i := range ops {
			if s.Ops[i].Kind != ops[i].Kind || s.Ops[i].Key != ops[i].Key || !bytes.Equal(s.Ops[i].Value, ops[i].Value) {
				return false
			}
		}
	}
	return true
}
