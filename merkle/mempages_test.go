package merkle

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
)

// A paths filter's view: a Live over MemoryPages with Options.Keep, built by
// a scan of the data store and following its WAL, has the root of an index
// of the kept keys alone; its pages never reach the data store, and it
// writes nothing else there.
func TestFilteredLiveOverMemoryPages(t *testing.T) {
	ctx, b, l := liveFixture(t)
	r := rand.New(rand.NewPCG(3, 3))
	keep := func(key string) bool { return !strings.HasPrefix(key, "logical/m3/") }
	classify := func(key string) wal.Class {
		c := wal.DefaultClassify(key)
		if c == wal.Replicated && !keep(key) {
			return wal.Ignored
		}
		return c
	}
	writeRandom(t, ctx, l, r, 200, 500)
	live := NewLive(MemoryPages(b), l, classify, Options{Keep: keep}, nop)
	if _, err := live.Reindex(ctx); err != nil {
		t.Fatal(err)
	}
	defer live.Stop()
	writeRandom(t, ctx, l, r, 200, 500) // followed from the WAL
	x := live.Index()
	if err := x.WaitApplied(ctx, l.LastIndex()); err != nil {
		t.Fatal(err)
	}
	ref := newIndex(t, MemoryPages(b))
	kept, dropped := 0, 0
	if err := Scan(ctx, b, nil, func(key string, value []byte) error {
		if !keep(key) {
			dropped++
			return nil
		}
		kept++
		return ref.Put(key, value, 1)
	}); err != nil {
		t.Fatal(err)
	}
	if kept == 0 || dropped == 0 {
		t.Fatalf("kept %d keys, dropped %d: the fixture does not exercise the filter", kept, dropped)
	}
	if !bytes.Equal(x.Root(), ref.Root()) {
		t.Fatalf("filtered root %x, an index of the kept keys alone %x", x.Root(), ref.Root())
	}
	if names, err := b.List(ctx, "merkle/"); err != nil || len(names) != 0 {
		t.Fatalf("the data store holds merkle keys %v (%v): the view's pages must stay in memory", names, err)
	}
	mp := MemoryPages(b)
	for _, err := range []error{
		mp.Put(ctx, &storage.Entry{Key: "logical/m1/x", Value: []byte("v")}),
		mp.Delete(ctx, "logical/m1/x"),
		mp.Transaction(ctx, []*storage.TxnOp{{Operation: storage.PutOperation, Entry: &storage.Entry{Key: "core/x"}}}),
	} {
		if err == nil || !strings.Contains(err.Error(), "pages only") {
			t.Fatalf("a write outside merkle/ through MemoryPages: %v", err)
		}
	}
}
