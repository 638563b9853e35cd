package merkle

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/bolt"
	"github.com/cofferhq/coffer/wal"
)

// reference is a full recomputation of the index from storage and the WAL.
func reference(t *testing.T, ctx context.Context, store storage.Transactional, l *wal.Log) *Index {
	t.Helper()
	ref, err := build(ctx, store, l, nil, false, Options{}, nop)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// caughtUp waits for the running index to apply the whole log and checks it
// against a full recomputation.
func caughtUp(t *testing.T, ctx context.Context, live *Live, store storage.Transactional, l *wal.Log) *Index {
	t.Helper()
	x := live.Index()
	if x == nil {
		t.Fatal("no index in service")
	}
	if err := x.WaitApplied(ctx, l.LastIndex()); err != nil {
		t.Fatal(err)
	}
	if ref := reference(t, ctx, store, l); !bytes.Equal(x.Root(), ref.Root()) {
		t.Fatalf("root %x, a full recomputation gives %x", x.Root(), ref.Root())
	}
	return x
}

// runners returns the done channels of the index's two goroutines.
func runners(t *testing.T, live *Live) (follower, flusher <-chan struct{}) {
	t.Helper()
	live.mu.Lock()
	defer live.mu.Unlock()
	if live.x == nil {
		t.Fatal("no index in service")
	}
	live.x.runMu.Lock()
	defer live.x.runMu.Unlock()
	follower, flusher = live.follower.Done(), live.x.done
	if follower == nil || flusher == nil {
		t.Fatal("the follower or the flusher is not running")
	}
	return follower, flusher
}

func mustBeClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	default:
		t.Fatalf("the %s still runs", what)
	}
}

// Open recovers from the pages and the WAL, follows new writes, and after a
// Close (which flushes) a Start redoes exactly what was written meanwhile.
func TestOpenRecoversAndFollows(t *testing.T) {
	ctx, b, l := liveFixture(t)
	r := rand.New(rand.NewPCG(7, 7))
	writeRandom(t, ctx, l, r, 200, 1000)

	live, err := Open(ctx, b, l, nil, Options{}, nop)
	if err != nil {
		t.Fatal(err)
	}
	// No checkpoint yet: recovery redoes the WAL from its first entry.
	if rep := live.Report(); !rep.Recovered || rep.RecoverErr != nil || rep.Recovery.RedoPoint != 1 {
		t.Fatalf("first open: %+v", rep)
	}
	writeRandom(t, ctx, l, r, 200, 1000) // applied by the Follower
	x := caughtUp(t, ctx, live, b, l)
	if err := live.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if live.Index() != nil {
		t.Fatal("Index after Close is not nil")
	}
	closedAt := l.LastIndex()
	writeRandom(t, ctx, l, r, 100, 1000) // no index runs: the next Start redoes these
	if err := live.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rep := live.Report()
	if !rep.Recovered || rep.Recovery.RedoPoint != closedAt+1 || rep.Recovery.EntriesRead != int(l.LastIndex()-closedAt) || rep.Recovery.OpsRedone == 0 {
		t.Fatalf("start after close at %d (last %d): %+v", closedAt, l.LastIndex(), rep)
	}
	if y := caughtUp(t, ctx, live, b, l); y == x {
		t.Fatal("Start after Close returned the closed index")
	}
	if err := live.Start(ctx); err != nil { // running: nothing to do
		t.Fatal(err)
	}
	writeRandom(t, ctx, l, r, 50, 1000)
	caughtUp(t, ctx, live, b, l)
	if err := live.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// A page that fails its checksum makes Open fall back to a reindex, which
// rewrites the pages.
func TestOpenReindexesCorruptPages(t *testing.T) {
	ctx, b, l := liveFixture(t)
	r := rand.New(rand.NewPCG(8, 8))
	writeRandom(t, ctx, l, r, 300, 1000)
	live, err := Open(ctx, b, l, nil, Options{}, nop)
	if err != nil {
		t.Fatal(err)
	}
	caughtUp(t, ctx, live, b, l)
	if err := live.Close(ctx); err != nil {
		t.Fatal(err)
	}
	pages, err := b.List(ctx, pagePrefix)
	if err != nil || len(pages) == 0 {
		t.Fatalf("stored pages %d, %v", len(pages), err)
	}
	e, err := b.Get(ctx, pagePrefix+pages[len(pages)/2])
	if err != nil || e == nil {
		t.Fatalf("read page: %v", err)
	}
	e.Value[len(e.Value)-1] ^= 0xff
	if err := b.Put(ctx, e); err != nil {
		t.Fatal(err)
	}

	live, err = Open(ctx, b, l, nil, Options{}, nop)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close(ctx)
	if rep := live.Report(); rep.Recovered || !errors.Is(rep.RecoverErr, ErrReindexRequired) {
		t.Fatalf("open over a corrupt page: %+v", rep)
	}
	x := caughtUp(t, ctx, live, b, l)
	rep, err := x.Check(ctx, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean() {
		t.Fatalf("check after the fallback reindex: %+v", rep)
	}
}

// Stop and Close end the Follower and the flusher and wait for them; Close
// flushes, Stop does not; both are idempotent and Start brings an index back.
func TestLiveOwnsItsGoroutines(t *testing.T) {
	ctx, b, l := liveFixture(t)
	r := rand.New(rand.NewPCG(9, 9))
	var flushes atomic.Int64
	opts := Options{FlushInterval: time.Millisecond, FlushPages: 10, OnFlush: func(FlushStats) { flushes.Add(1) }}
	live, err := Open(ctx, b, l, nil, opts, nop)
	if err != nil {
		t.Fatal(err)
	}
	for flushes.Load() == 0 {
		if ctx.Err() != nil {
			t.Fatal("the flusher never ran")
		}
		time.Sleep(time.Millisecond)
	}
	writeRandom(t, ctx, l, r, 100, 1000)
	x := caughtUp(t, ctx, live, b, l)
	follower, flusher := runners(t, live)

	live.Stop()
	live.Stop()
	mustBeClosed(t, "follower", follower)
	mustBeClosed(t, "flusher", flusher)
	if live.Index() != nil {
		t.Fatal("Index after Stop is not nil")
	}
	applied, n := x.Applied(), flushes.Load()
	writeRandom(t, ctx, l, r, 50, 1000)
	time.Sleep(20 * time.Millisecond)
	if x.Applied() != applied || flushes.Load() != n {
		t.Fatalf("after Stop: applied %d -> %d, flushes %d -> %d", applied, x.Applied(), n, flushes.Load())
	}

	if err := live.Start(ctx); err != nil {
		t.Fatal(err)
	}
	writeRandom(t, ctx, l, r, 50, 1000)
	y := caughtUp(t, ctx, live, b, l)
	follower, flusher = runners(t, live)
	if err := live.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := live.Close(ctx); err != nil {
		t.Fatal(err)
	}
	mustBeClosed(t, "follower", follower)
	mustBeClosed(t, "flusher", flusher)
	if st := y.Stats(); st.DirtyPages != 0 || y.SafeTruncateIndex() != l.LastIndex() {
		t.Fatalf("Close left %d dirty pages, safe truncate index %d of %d", st.DirtyPages, y.SafeTruncateIndex(), l.LastIndex())
	}
}

// Reindex swaps a rebuilt index in: the old one stops, the new one follows
// the WAL; on a stopped Live it starts one; a failed reindex leaves none.
func TestLiveReindexSwaps(t *testing.T) {
	ctx, b, l := liveFixture(t)
	r := rand.New(rand.NewPCG(10, 10))
	live, err := Open(ctx, b, l, nil, Options{}, nop)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close(ctx)
	writeRandom(t, ctx, l, r, 200, 1000)
	old := caughtUp(t, ctx, live, b, l)
	follower, flusher := runners(t, live)

	x, err := live.Reindex(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if x == old || live.Index() != x {
		t.Fatal("Reindex did not put a new index in service")
	}
	mustBeClosed(t, "old follower", follower)
	mustBeClosed(t, "old flusher", flusher)
	if !bytes.Equal(x.Root(), old.Root()) || x.Applied() != old.Applied() {
		t.Fatalf("rebuilt root %x at %d, old %x at %d", x.Root(), x.Applied(), old.Root(), old.Applied())
	}
	applied := old.Applied()
	writeRandom(t, ctx, l, r, 100, 1000)
	caughtUp(t, ctx, live, b, l)
	if old.Applied() != applied {
		t.Fatal("the replaced index still follows the WAL")
	}

	live.Stop()
	if x, err = live.Reindex(ctx); err != nil || live.Index() != x {
		t.Fatalf("reindex of a stopped Live: %v", err)
	}
	writeRandom(t, ctx, l, r, 50, 1000)
	caughtUp(t, ctx, live, b, l)

	canceled, stop := context.WithCancel(ctx)
	stop()
	if _, err := live.Reindex(canceled); err == nil || live.Index() != nil {
		t.Fatalf("a failed reindex: %v, index %p", err, live.Index())
	}
	if err := live.Start(ctx); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, ctx, live, b, l)
}

// liveFixture is the setup of the Live tests: a deadline, a bolt file and
// its WAL, closed at cleanup.
func liveFixture(t *testing.T) (context.Context, *bolt.Backend, *wal.Log) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	b, _ := tempBolt(t)
	t.Cleanup(func() { _ = b.Close() })
	l := openLog(t, b)
	t.Cleanup(func() { _ = l.Close() })
	return ctx, b, l
}
