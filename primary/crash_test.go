package primary

import (
	"context"
	"fmt"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
)

// Found by the fault campaign (docs/reliability.md): a primary killed with
// SIGKILL stored its shipped index lazily (every 64 batches or 1 s), so at
// its next start the index lagged the stream's last batch, the claim took
// that for storage gone back in time, and the set moved to the next
// generation: every secondary forgot its position and resynced after every
// crash of the primary. The WAL holds that batch exactly, so the primary
// keeps its generation and resumes after it.
func TestCrashedPrimaryKeepsItsGeneration(t *testing.T) {
	r := newShipRig(t)
	ctx := context.Background()
	r.write(t, "before", 10)
	r.shippedAll(t)
	if g := r.p.Status().Generation; g != 1 {
		t.Fatalf("generation %d, want 1", g)
	}
	last := r.log.LastIndex()
	r.p.Stop()
	// What a SIGKILL leaves: the stored shipped index behind the stream.
	if err := saveShipped(ctx, r.cfg.State, 2, 0); err != nil {
		t.Fatal(err)
	}
	p, err := Open(ctx, r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	testutil.Eventually(t, shipWait, "the restarted primary holds the set", func() error {
		if st := p.Status(); st.ClaimState != ClaimHolding {
			return fmt.Errorf("claim %s (%s)", st.ClaimState, st.ClaimWhy)
		}
		return nil
	})
	if st := p.Status(); st.Generation != 1 || st.ShippedIndex < last {
		t.Fatalf("after the restart: generation %d (want 1: nothing went back in time), shipped %d (want %d)", st.Generation, st.ShippedIndex, last)
	}
	r.p = p
	r.write(t, "after", 3)
	r.shippedAll(t)
	if err := r.covers(t, 1, r.log.LastIndex()); err != nil {
		t.Fatal(err)
	}
}
