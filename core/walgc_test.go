package core

import (
	"context"
	"fmt"
	"testing"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
)

// newTestCore returns an initialized, unsealed core on in-memory storage.
func newTestCore(t *testing.T) *Core {
	t.Helper()
	c, _ := newTestCoreRoot(t)
	return c
}

// The core's collector reads its floor from the live merkle index (and, on a
// primary, the shipper): nothing past the redo point minus the margin goes.
// The policy itself, and recovery from a collected WAL, are tested in wal/.
func TestWALGCFollowsTheMerkleRedoPoint(t *testing.T) {
	ctx := context.Background()
	c := newTestCore(t)
	for i := range 3000 {
		if err := c.barrier.Put(ctx, &storage.Entry{Key: fmt.Sprintf("logical/test/k%04d", i), Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	x := c.Merkle()
	if err := x.WaitApplied(ctx, c.wal.LastIndex()); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.shippedWAL(); ok {
		t.Fatal("a cluster that is not a primary reports a shipped index")
	}
	gc := c.merkle.gc
	// Before a full flush the redo point holds the collector back.
	if floor, err := gc.Collect(ctx); err != nil || (floor > 0 && floor+wal.DefaultCollectKeep > x.SafeTruncateIndex()) {
		t.Fatalf("collect before a full flush: floor %d, safe %d, %v", floor, x.SafeTruncateIndex(), err)
	}
	if _, err := x.Flush(ctx, 0); err != nil {
		t.Fatal(err)
	}
	safe := x.SafeTruncateIndex()
	floor, err := gc.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if floor == 0 || floor+wal.DefaultCollectKeep != safe || c.wal.FirstIndex() != floor+1 {
		t.Fatalf("after a full flush: floor %d, safe %d, first index %d; want floor = safe - %d", floor, safe, c.wal.FirstIndex(), wal.DefaultCollectKeep)
	}
}
