package wal

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
)

// writeN commits n single-op entries to l.
func writeN(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := range n {
		if _, err := l.Write(context.Background(), []*storage.TxnOp{put(fmt.Sprintf("logical/gc/k%05d", i), "v")}); err != nil {
			t.Fatal(err)
		}
	}
}

func newCollector(t *testing.T, l *Log, opts CollectorOptions) *Collector {
	t.Helper()
	g, err := NewCollector(l, opts, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	return g
}

func TestCollectorOptionsValidate(t *testing.T) {
	redo := func() uint64 { return 0 }
	for _, o := range []CollectorOptions{{}, {Redo: redo, Interval: -time.Second}} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v: no error", o)
		}
		if _, err := NewCollector(nil, o, testLogger(t)); err == nil {
			t.Errorf("NewCollector(%+v): no error", o)
		}
	}
	o := CollectorOptions{Redo: redo}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if d := o.withDefaults(); d.Interval != DefaultCollectInterval || d.Keep != DefaultCollectKeep {
		t.Fatalf("defaults %+v", d)
	}
}

// The floor is min(redo, shipped when a shipper runs) minus Keep, or 0.
func TestCollectorFloor(t *testing.T) {
	l := openLog(t, inmem.New(), Options{})
	var redo, shipped atomic.Uint64
	var primary atomic.Bool
	g := newCollector(t, l, CollectorOptions{
		Redo:    redo.Load,
		Shipped: func() (uint64, bool) { return shipped.Load(), primary.Load() },
	})
	for _, c := range []struct {
		redo, shipped uint64
		primary       bool
		want          uint64
	}{
		{0, 0, false, 0},
		{DefaultCollectKeep, 0, false, 0},
		{DefaultCollectKeep + 1, 0, false, 1},
		{5000, 0, false, 5000 - DefaultCollectKeep},
		{5000, 2000, false, 5000 - DefaultCollectKeep}, // no shipper: its index does not count
		{5000, 2000, true, 2000 - DefaultCollectKeep},
		{2000, 5000, true, 2000 - DefaultCollectKeep},
		{5000, 1000, true, 0},
		{0, 5000, true, 0}, // the merkle index needs everything
	} {
		redo.Store(c.redo)
		shipped.Store(c.shipped)
		primary.Store(c.primary)
		if got := g.Floor(); got != c.want {
			t.Errorf("redo %d, shipped %d (primary %v): floor %d, want %d", c.redo, c.shipped, c.primary, got, c.want)
		}
	}
	// Without Shipped only the redo point counts; Keep is configurable.
	g = newCollector(t, l, CollectorOptions{Redo: func() uint64 { return 100 }, Keep: 10})
	if got := g.Floor(); got != 90 {
		t.Fatalf("floor %d, want 90", got)
	}
}

// Collect truncates up to the floor, then does nothing until the floor
// passes the first index left.
func TestCollectorCollect(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, inmem.New(), Options{})
	writeN(t, l, 300)
	var redo atomic.Uint64
	g := newCollector(t, l, CollectorOptions{Redo: redo.Load, Keep: 10})
	if floor, err := g.Collect(ctx); err != nil || floor != 0 || l.FirstIndex() != 1 {
		t.Fatalf("redo 0: floor %d, first index %d, %v", floor, l.FirstIndex(), err)
	}
	redo.Store(200)
	if floor, err := g.Collect(ctx); err != nil || floor != 190 || l.FirstIndex() != 191 {
		t.Fatalf("redo 200: floor %d, first index %d, %v", floor, l.FirstIndex(), err)
	}
	if floor, err := g.Collect(ctx); err != nil || floor != 0 || l.FirstIndex() != 191 {
		t.Fatalf("again: floor %d, first index %d, %v", floor, l.FirstIndex(), err)
	}
	redo.Store(201) // floor 191 = the first index: one more entry goes
	if floor, err := g.Collect(ctx); err != nil || floor != 191 || l.FirstIndex() != 192 {
		t.Fatalf("redo 201: floor %d, first index %d, %v", floor, l.FirstIndex(), err)
	}
	if es, err := l.Read(ctx, 191, 1000); err != nil || len(es) != 300-191 || es[0].Index != 192 {
		t.Fatalf("%d entries left (%v), want %d from 192", len(es), err, 300-191)
	}
}

// The goroutine collects every Interval until Stop, and not after it.
func TestCollectorStartStop(t *testing.T) {
	l := openLog(t, inmem.New(), Options{})
	writeN(t, l, 100)
	var redo, calls atomic.Uint64
	g := newCollector(t, l, CollectorOptions{Interval: time.Millisecond, Keep: 10, Redo: func() uint64 {
		calls.Add(1)
		return redo.Load()
	}})
	g.Stop() // before Start: nothing to stop
	g.Start()
	g.Start() // idempotent
	redo.Store(50)
	testutil.Eventually(t, waitTimeout, "the collector to truncate through 40", firstIndexIs(l, 41))
	g.Stop()
	g.Stop() // idempotent
	n := calls.Load()
	redo.Store(100)
	time.Sleep(20 * time.Millisecond)
	if calls.Load() != n || l.FirstIndex() != 41 {
		t.Fatalf("the collector ran after Stop: %d calls (had %d), first index %d", calls.Load(), n, l.FirstIndex())
	}
	// A stopped collector starts again.
	g.Start()
	testutil.Eventually(t, waitTimeout, "the restarted collector to truncate through 90", firstIndexIs(l, 91))
}

func firstIndexIs(l *Log, want uint64) func() error {
	return func() error {
		if got := l.FirstIndex(); got != want {
			return fmt.Errorf("first index %d, want %d", got, want)
		}
		return nil
	}
}
