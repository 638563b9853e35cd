package merkle

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// Rebuild (sys/replication/reindex) swaps in an index equal to a full
// recomputation, reports its stages, records when it ran, and with Diff names
// the key the old index had wrong: one written below the WAL, so the index in
// service never saw it.
func TestLiveRebuildDiffsAndSwaps(t *testing.T) {
	ctx, b, l := liveFixture(t)
	r := rand.New(rand.NewPCG(20, 20))
	live, err := Open(ctx, b, l, nil, Options{}, nop)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close(ctx)
	writeRandom(t, ctx, l, r, 300, 2000)
	old := caughtUp(t, ctx, live, b, l)
	if !live.LastReindex(ctx).IsZero() {
		t.Fatal("a reindex time before any reindex")
	}
	// Below the WAL: the index in service keeps the old value's hash.
	k := keyName(7)
	if err := b.Put(ctx, &storage.Entry{Key: k, Value: []byte("written below the index")}); err != nil {
		t.Fatal(err)
	}
	p := &Progress{}
	var mu sync.Mutex
	var stages []string
	done := make(chan struct{})
	go func() { // what status sees: the stages in order
		defer close(done)
		for {
			st, _, _ := p.Snapshot()
			mu.Lock()
			if st != "" && (len(stages) == 0 || stages[len(stages)-1] != st) {
				stages = append(stages, st)
			}
			n := len(stages)
			mu.Unlock()
			if st == StageCommit || n > 4 {
				return
			}
		}
	}()
	res, err := live.Rebuild(ctx, RebuildOptions{Diff: true, Progress: p})
	if err != nil {
		t.Fatal(err)
	}
	<-done
	x := caughtUp(t, ctx, live, b, l)
	if x == old || res.Root != x.RootHex() || res.Keys != x.Stats().Keys {
		t.Fatalf("result %+v, index in service %s", res, x.RootHex())
	}
	if res.Diff == nil || res.Diff.Changed+res.Diff.Missing != 1 || !slices.Contains(res.Diff.Keys, k) {
		t.Fatalf("diff %+v: want %s changed (or missing)", res.Diff, k)
	}
	mu.Lock()
	if stages[len(stages)-1] != StageCommit {
		t.Fatalf("stages seen %v: want them to end at %s", stages, StageCommit)
	}
	mu.Unlock()
	if _, done, total := p.Snapshot(); total != 0 || done != 0 {
		t.Fatalf("commit reports %d of %d", done, total)
	}
	if live.LastReindex(ctx).IsZero() {
		t.Fatal("no reindex time recorded")
	}
	writeRandom(t, ctx, l, r, 50, 2000)
	caughtUp(t, ctx, live, b, l)
	// Recorded in storage: a new Live reads it.
	if NewLive(b, l, nil, Options{}, nop).LastReindex(ctx).IsZero() {
		t.Fatal("the reindex time is not stored")
	}
}

// SkipFlush leaves the pages to the flusher behind a marker: until they are
// written, recovery refuses the old pages; once the flusher wrote them, the
// marker is gone and a restart recovers the rebuilt index.
func TestLiveRebuildSkipFlush(t *testing.T) {
	ctx, b, l := liveFixture(t)
	r := rand.New(rand.NewPCG(21, 21))
	live, err := Open(ctx, b, l, nil, Options{FlushPages: 64}, nop)
	if err != nil {
		t.Fatal(err)
	}
	writeRandom(t, ctx, l, r, 400, 3000)
	caughtUp(t, ctx, live, b, l)
	live.Index().Stop() // hold the flusher: the marker must be observable
	res, err := live.Rebuild(ctx, RebuildOptions{SkipFlush: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pages == 0 {
		t.Fatal("no pages left to the flusher")
	}
	if e, err := b.Get(ctx, rebuildMarkerKey); err != nil || e == nil {
		t.Fatalf("no rebuild marker after a skip_flush rebuild: %v", err)
	}
	if _, _, err := Recover(ctx, b, l, Options{}, nop); !errors.Is(err, ErrReindexRequired) {
		t.Fatalf("recover with the marker stored: %v, want ErrReindexRequired", err)
	}
	x := caughtUp(t, ctx, live, b, l)
	if st, err := x.Flush(ctx, 0); err != nil || st.Dirty != 0 {
		t.Fatalf("flush: %+v %v", st, err)
	}
	if e, _ := b.Get(ctx, rebuildMarkerKey); e != nil {
		t.Fatal("the marker outlived the flush of the rebuilt pages")
	}
	root := x.Root()
	if err := live.Close(ctx); err != nil {
		t.Fatal(err)
	}
	y, _, err := Recover(ctx, b, l, Options{}, nop)
	if err != nil || !bytes.Equal(y.Root(), root) {
		t.Fatalf("recover after the flush: %v, root %x want %x", err, y.Root(), root)
	}
}

// A cancelled Rebuild swaps nothing in and holds no WAL; one on a stopped
// Live puts its index in service.
func TestLiveRebuildCancelled(t *testing.T) {
	ctx, b, l := liveFixture(t)
	r := rand.New(rand.NewPCG(22, 22))
	live, err := Open(ctx, b, l, nil, Options{}, nop)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close(ctx)
	writeRandom(t, ctx, l, r, 100, 500)
	old := caughtUp(t, ctx, live, b, l)
	canceled, stop := context.WithCancel(ctx)
	stop()
	if _, err := live.Rebuild(canceled, RebuildOptions{}); err == nil || live.Index() != old {
		t.Fatalf("a cancelled rebuild: %v; the index in service changed", err)
	}
	if live.SafeTruncateIndex() != old.SafeTruncateIndex() {
		t.Fatal("the WAL hold outlived the rebuild")
	}
	p := &Progress{}
	live.Stop()
	if _, err := live.Rebuild(ctx, RebuildOptions{Progress: p}); err != nil || live.Index() == nil {
		t.Fatalf("rebuild of a stopped Live: %v", err)
	}
	caughtUp(t, ctx, live, b, l)
}
