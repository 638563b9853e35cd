package merkle

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
	"github.com/cofferhq/coffer/wal"
)

// counting is a real backend (inmem) that counts what the index asks of it
// and caps a transaction at max operations, as Consul does (128). failAfter
// > 0 makes every transaction after the first failAfter fail (a crash).
type counting struct {
	*inmem.Backend
	max int

	mu                 sync.Mutex
	txns, pageGets     int
	pagePuts, pageDels int
	pageLists          int
	failAfter          int
}

var errCrash = errors.New("crash")

func newCounting(max int) *counting { return &counting{Backend: inmem.New(), max: max} }

func (c *counting) MaxTransactionOps() int { return c.max }

func (c *counting) Get(ctx context.Context, key string) (*storage.Entry, error) {
	if strings.HasPrefix(key, pagePrefix) {
		c.mu.Lock()
		c.pageGets++
		c.mu.Unlock()
	}
	return c.Backend.Get(ctx, key)
}

func (c *counting) List(ctx context.Context, prefix string) ([]string, error) {
	if strings.HasPrefix(prefix, pagePrefix) {
		c.mu.Lock()
		c.pageLists++
		c.mu.Unlock()
	}
	return c.Backend.List(ctx, prefix)
}

func (c *counting) Transaction(ctx context.Context, ops []*storage.TxnOp) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(ops) > c.max {
		return errors.New("too many operations")
	}
	if c.failAfter > 0 && c.txns >= c.failAfter {
		return errCrash
	}
	c.txns++
	for _, op := range ops {
		if !strings.HasPrefix(op.Entry.Key, pagePrefix) {
			continue
		}
		if op.Operation == storage.PutOperation {
			c.pagePuts++
		} else {
			c.pageDels++
		}
	}
	return c.Backend.Transaction(ctx, ops)
}

func (c *counting) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.txns, c.pageGets, c.pagePuts, c.pageDels, c.pageLists = 0, 0, 0, 0, 0
}

// storedPages lists the buckets that have a page in storage.
func storedPages(t *testing.T, ctx context.Context, s storage.Backend) map[uint32]bool {
	t.Helper()
	names, err := s.List(ctx, pagePrefix)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint32]bool{}
	for _, n := range names {
		b, ok := parseBucket(n)
		if !ok {
			t.Fatalf("stored page %q is no bucket", n)
		}
		out[b] = true
	}
	return out
}

// nonEmpty lists the buckets of x that hold items.
func nonEmpty(x *Index) map[uint32]bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := map[uint32]bool{}
	for b := range x.buckets {
		if len(x.buckets[b].items) > 0 {
			out[uint32(b)] = true
		}
	}
	return out
}

func samePages(a, b map[uint32]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// putKeys writes keys through l, one entry each.
func putKeys(t *testing.T, ctx context.Context, l *wal.Log, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, err := l.Write(ctx, []*storage.TxnOp{{Operation: storage.PutOperation, Entry: &storage.Entry{Key: k, Value: []byte("v " + k)}}}); err != nil {
			t.Fatal(err)
		}
	}
}

func deleteKeys(t *testing.T, ctx context.Context, l *wal.Log, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, err := l.Write(ctx, []*storage.TxnOp{{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: k}}}); err != nil {
			t.Fatal(err)
		}
	}
}

// The first build of an empty or small store writes the pages that hold
// something and the checkpoint, in one transaction under Consul's cap, not
// 65,536 pages in 520; the next start reads only those pages back.
func TestFirstBuildWritesOnlyPagesThatHoldItems(t *testing.T) {
	ctx := context.Background()
	for _, n := range []int{0, 40} {
		s := newCounting(128)
		l := openLog(t, s)
		for i := range n {
			putKeys(t, ctx, l, keyName(i))
		}
		s.reset()
		x, err := Reindex(ctx, s, l, nil, Options{}, nop)
		if err != nil {
			t.Fatal(err)
		}
		want := nonEmpty(x)
		if s.txns != 1 || s.pagePuts != len(want) || s.pageDels != 0 {
			t.Fatalf("%d keys: reindex made %d transactions, %d page puts, %d page deletes; want 1, %d, 0",
				n, s.txns, s.pagePuts, s.pageDels, len(want))
		}
		if got := storedPages(t, ctx, s); !samePages(got, want) {
			t.Fatalf("%d keys: %d pages stored, %d buckets hold items", n, len(got), len(want))
		}
		if ref := reference(t, ctx, s, l); !bytes.Equal(x.Root(), ref.Root()) {
			t.Fatalf("%d keys: root %x, full recomputation %x", n, x.Root(), ref.Root())
		}
		s.reset()
		y, st, err := Recover(ctx, s, l, Options{}, nop)
		if err != nil {
			t.Fatal(err)
		}
		if s.pageGets != len(want) || st.PagesLoaded != len(want) {
			t.Fatalf("%d keys: recovery read %d pages (%d loaded), %d are stored", n, s.pageGets, st.PagesLoaded, len(want))
		}
		if !bytes.Equal(y.Root(), x.Root()) {
			t.Fatalf("%d keys: recovered root %x, built %x", n, y.Root(), x.Root())
		}
		s.reset()
		rep, err := y.Check(ctx, l, nil)
		if err != nil || !rep.Clean() {
			t.Fatalf("%d keys: check %+v %v", n, rep, err)
		}
		if s.pageGets != len(want) {
			t.Fatalf("%d keys: check read %d pages, %d are stored", n, s.pageGets, len(want))
		}
		l.Close()
	}
}

// A reindex over stored pages deletes the pages of buckets now empty and
// rewrites the others; a crash in the middle of it leaves pages that the old
// checkpoint still recovers, and a second reindex finishes the job.
func TestReindexDeletesPagesThatBecameEmpty(t *testing.T) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(11, 11))
	s := newCounting(8) // 7 pages and the checkpoint a transaction: many chunks
	l := openLog(t, s)
	writeRandom(t, ctx, l, r, 300, 400)
	x := newIndex(t, s)
	catchUp(t, ctx, x, l)
	if _, err := x.Flush(ctx, 0); err != nil {
		t.Fatal(err)
	}
	before := storedPages(t, ctx, s)
	if !samePages(before, nonEmpty(x)) {
		t.Fatal("after a flush the stored pages are not the non-empty buckets")
	}
	// Empty half of the stored buckets, behind the index's back (it is
	// stopped, as a reindex requires), and write some new keys.
	var gone []string
	err := Scan(ctx, s, nil, func(key string, _ []byte) error {
		if BucketOf(key)%2 == 0 {
			gone = append(gone, key)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	deleteKeys(t, ctx, l, gone...)
	putKeys(t, ctx, l, "logical/m9/new/a", "logical/m9/new/b", "logical/m9/new/c")

	for _, failAfter := range []int{3, 17, 0} {
		now := storedPages(t, ctx, s)
		s.reset()
		s.failAfter = failAfter
		y, err := Reindex(ctx, s, l, nil, Options{}, nop)
		if failAfter > 0 {
			if !errors.Is(err, errCrash) {
				t.Fatalf("reindex crashing after %d transactions: %v", failAfter, err)
			}
			// The old checkpoint is in force: recovery over a mix of old and
			// new pages, and old pages of emptied buckets, is still right.
			z, _, err := Recover(ctx, s, l, Options{}, nop)
			if err != nil {
				t.Fatalf("recover after a reindex crashed after %d transactions: %v", failAfter, err)
			}
			if ref := reference(t, ctx, s, l); !bytes.Equal(z.Root(), ref.Root()) {
				t.Fatalf("recover after a reindex crashed after %d transactions: root %x, want %x", failAfter, z.Root(), ref.Root())
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		want := nonEmpty(y)
		stale, staleBefore := 0, 0
		for b := range now {
			if !want[b] {
				stale++
			}
		}
		for b := range before {
			if !want[b] {
				staleBefore++
			}
		}
		if staleBefore == 0 || stale == 0 {
			t.Fatalf("%d buckets became empty, %d of their pages left after the crashed reindexes: the test proves nothing", staleBefore, stale)
		}
		if got := storedPages(t, ctx, s); !samePages(got, want) {
			t.Fatalf("after reindex %d pages are stored, %d buckets hold items", len(got), len(want))
		}
		if s.pagePuts != len(want) || s.pageDels != stale {
			t.Fatalf("reindex put %d pages and deleted %d; %d hold items, %d became empty", s.pagePuts, s.pageDels, len(want), stale)
		}
		z, st, err := Recover(ctx, s, l, Options{}, nop)
		if err != nil || st.OpsRedone != 0 || !bytes.Equal(z.Root(), y.Root()) {
			t.Fatalf("recover after reindex: %v, %+v, root %x, want %x", err, st, z.Root(), y.Root())
		}
		if rep, err := z.Check(ctx, l, nil); err != nil || !rep.Clean() {
			t.Fatalf("check after reindex: %+v %v", rep, err)
		}
	}
	l.Close()
}

// A page whose bucket becomes empty is deleted by the flush that empties it;
// a crash while the checkpoint is still before the deletes redoes them over
// the absent page as over the empty page, and the root is a full
// recomputation's.
func TestRecoverOverAPageThatBecameEmpty(t *testing.T) {
	ctx := context.Background()
	s := newCounting(128)
	l := openLog(t, s)
	x := newIndex(t, s)
	k := keyName(1)
	b := BucketOf(k)
	k2 := ""
	for i := 2; k2 == ""; i++ {
		if BucketOf(keyName(i)) == b {
			k2 = keyName(i)
		}
	}
	other := keyName(3)
	putKeys(t, ctx, l, k) // 1
	catchUp(t, ctx, x, l)
	if _, err := x.Flush(ctx, 0); err != nil {
		t.Fatal(err)
	}
	putKeys(t, ctx, l, k2)    // 2: b dirty from 2
	putKeys(t, ctx, l, other) // 3: other's bucket dirty from 3
	deleteKeys(t, ctx, l, k)  // 4
	deleteKeys(t, ctx, l, k2) // 5: b is empty
	catchUp(t, ctx, x, l)
	// The oldest dirty page, b's, is flushed (deleted); other's stays dirty.
	if st, err := x.Flush(ctx, 1); err != nil || st.Pages != 1 || st.RedoPoint != 3 {
		t.Fatalf("flush of the oldest page: %+v %v", st, err)
	}
	if e, err := s.Get(ctx, pageKey(b)); err != nil || e != nil {
		t.Fatalf("the page of the emptied bucket is still stored (%v)", err)
	}
	// Crash: x is dropped unflushed.
	y, st, err := Recover(ctx, s, l, Options{}, nop)
	if err != nil {
		t.Fatal(err)
	}
	if st.RedoPoint != 3 || st.OpsRedone != 3 {
		t.Fatalf("recovery %+v: want redo from 3 and its 3 ops redone over the absent page", st)
	}
	if ref := reference(t, ctx, s, l); !bytes.Equal(y.Root(), ref.Root()) || !bytes.Equal(y.Root(), x.Root()) {
		t.Fatalf("recovered root %x, index %x, full recomputation %x", y.Root(), x.Root(), ref.Root())
	}
	if nonEmpty(y)[b] {
		t.Fatal("the emptied bucket holds items after recovery")
	}
	l.Close()
}

// storeContents is the replicated keys of s with their values.
func storeContents(t *testing.T, ctx context.Context, s storage.Backend) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	if err := Scan(ctx, s, nil, func(k string, v []byte) error { m[k] = v; return nil }); err != nil {
		t.Fatal(err)
	}
	return m
}

// Two indexes loaded from sparse pages (most buckets have none) diff exactly
// as a full-scan oracle says: an absent page is the empty bucket, whose hash
// (zero) is computed, not read; an empty index's root is zero.
func TestDiffBetweenIndexesLoadedFromSparsePages(t *testing.T) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(12, 12))
	open := func(s *counting, l *wal.Log) *Index {
		t.Helper()
		if _, err := Reindex(ctx, s, l, nil, Options{}, nop); err != nil {
			t.Fatal(err)
		}
		x, _, err := Recover(ctx, s, l, Options{}, nop)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	ps, ss := newCounting(128), newCounting(128)
	pl, sl := openLog(t, ps), openLog(t, ss)
	defer pl.Close()
	defer sl.Close()
	if x := open(ss, sl); !bytes.Equal(x.Root(), make([]byte, HashSize)) {
		t.Fatalf("an empty index's root is %x, want zero", x.Root())
	}
	writeRandom(t, ctx, pl, r, 60, 80)
	writeRandom(t, ctx, sl, r, 60, 80)
	px, sx := open(ps, pl), open(ss, sl)
	if n := len(storedPages(t, ctx, ps)); n == 0 || n > 80 {
		t.Fatalf("%d pages stored for at most 80 keys", n)
	}
	got, err := Diff(ctx, sx, SourceFunc(px.ServeRPC), DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a, c, d := oracleDiff(storeContents(t, ctx, ss), storeContents(t, ctx, ps))
	if !slices.Equal(got.Added, a) || !slices.Equal(got.Changed, c) || !slices.Equal(got.Deleted, d) || len(a)+len(c)+len(d) == 0 {
		t.Fatalf("diff found added %d changed %d deleted %d, oracle %d %d %d", len(got.Added), len(got.Changed), len(got.Deleted), len(a), len(c), len(d))
	}
}

// A bucket's items grow by a quarter when full, never doubling: what the
// index holds stays close to 24 bytes a key.
func TestBucketItemsGrowByAQuarter(t *testing.T) {
	var items []item
	for n := 1; n <= 2000; n++ {
		items = insertItem(items, len(items), item{fp: uint64(n)})
		if limit := n + n/4 + 2; cap(items) > limit {
			t.Fatalf("%d items held in a capacity of %d, more than %d", n, cap(items), limit)
		}
	}
	for i, it := range items {
		if it.fp != uint64(i+1) {
			t.Fatalf("item %d holds %d", i, it.fp)
		}
	}
}

// Hashing a key allocates nothing: a flush hashes every key of the pages
// it writes.
func TestKeyHashDoesNotAllocate(t *testing.T) {
	key := "logical/8f0e2b9a-1c3d-4e5f-a6b7-c8d9e0f1a2b3/backlog/123456"
	if n := testing.AllocsPerRun(100, func() { keyHash(key) }); n != 0 {
		t.Fatalf("keyHash allocates %v times a call", n)
	}
}
