package primary

import (
	"context"
	"testing"

	"github.com/cofferhq/coffer/bus/bustest"
)

// StoredShipped reads what the shipper stored, with nothing running and no
// bus: what the WAL collector holds back to while the cluster is a primary
// whose shipper could not start (NATS down at unseal).
func TestStoredShippedNeedsNothingRunning(t *testing.T) {
	ctx := context.Background()
	r := newShipRig(t)
	if _, ok, err := StoredShipped(ctx, r.cfg.State); !ok || err != nil {
		t.Fatalf("after enable: ok %v, %v; want the index Enable stored", ok, err)
	}
	r.write(t, "x", 3)
	r.shippedAll(t)
	r.p.Stop()
	if err := r.cfg.Bus.Close(); err != nil {
		t.Fatal(err)
	}
	idx, ok, err := StoredShipped(ctx, r.cfg.State)
	if !ok || err != nil || idx != r.log.LastIndex() {
		t.Fatalf("stored shipped %d, %v, %v; want %d", idx, ok, err, r.log.LastIndex())
	}
	r.write(t, "y", 2) // committed, never shipped: the stored index stays
	if idx2, _, _ := StoredShipped(ctx, r.cfg.State); idx2 != idx {
		t.Fatalf("stored shipped moved to %d without a shipper", idx2)
	}
	if err := Disable(ctx, Config{Bus: bustest.Start(t), State: r.cfg.State, ClusterID: "dc1"}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := StoredShipped(ctx, r.cfg.State); ok || err != nil {
		t.Fatalf("after disable: ok %v, %v; want nothing stored", ok, err)
	}
}
