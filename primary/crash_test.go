package primary

import (
	"context"
	"fmt"
	"testing"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage"
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

// Found by the fault campaign: batches were bounded at 1 MiB of ops, so on
// a NATS server with its own default max_payload (1 MiB) a backlog of large
// entries (kv-v2 metadata of many versions) made a message JetStream
// refused, again and again: shipping stopped for good. Batches now stay
// below the server's max_payload.
func TestBatchesStayBelowTheServersMaxPayload(t *testing.T) {
	const maxPayload = 64 << 10
	r := newShipRigWith(t, func(c *Config) { c.Bus = bustest.StartConfig(t, bus.Config{MaxPayload: maxPayload}) })
	ctx := context.Background()
	r.p.Stop()
	// A backlog: 30 entries of 10 KiB, read by the next shipper at once.
	for i := range 30 {
		if err := r.log.Put(ctx, &storage.Entry{Key: fmt.Sprintf("data/big/%d", i), Value: make([]byte, 10<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := Open(ctx, r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	r.p = p
	r.shippedAll(t)
	first, last, _, err := r.cfg.Bus.StreamState(ctx, p.stream)
	if err != nil {
		t.Fatal(err)
	}
	for seq := first; seq <= last; seq++ {
		data, err := r.cfg.Bus.StreamMsg(ctx, p.stream, seq)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > maxPayload {
			t.Fatalf("stream message %d has %d bytes, above max_payload %d", seq, len(data), maxPayload)
		}
	}
	if err := r.covers(t, 1, r.log.LastIndex()); err != nil {
		t.Fatal(err)
	}
}
