package merkle

import (
	"fmt"
	"slices"
	"testing"

	"github.com/cofferhq/coffer/storage/inmem"
)

// dirtyIndex is an index with n keys put, one per LSN: most buckets dirty,
// each with the LSN of its first change.
func dirtyIndex(t testing.TB, n int) *Index {
	x := newIndex(t, inmem.New())
	x.noPending = true
	for i := 1; i <= n; i++ {
		if err := x.Put(fmt.Sprintf("logical/k%d", i), []byte{byte(i)}, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

// A flush round takes the oldest dirty buckets (recLSN, then bucket), and
// the redo point is the oldest recLSN left; when all fit, all, and the redo
// point is past the last applied LSN.
func TestOldestDirtyFirst(t *testing.T) {
	x := dirtyIndex(t, 5000)
	x.mu.Lock()
	defer x.mu.Unlock()
	var want []uint32
	for b := range x.dirty {
		want = append(want, b)
	}
	oldest := func(a, b uint32) int {
		if ra, rb := x.buckets[a].recLSN, x.buckets[b].recLSN; ra != rb {
			return int(ra) - int(rb)
		}
		return int(a) - int(b)
	}
	slices.SortFunc(want, oldest)
	for _, n := range []int{0, 1, 100, len(want) - 1} {
		ids, redo := x.oldestDirtyLocked(n)
		slices.SortFunc(ids, oldest)
		if !slices.Equal(ids, want[:n]) || redo != x.buckets[want[n]].recLSN {
			t.Fatalf("n=%d: %d ids (the oldest: %v), redo %d; want %d, redo %d", n, len(ids), slices.Equal(ids, want[:n]), redo, n, x.buckets[want[n]].recLSN)
		}
	}
	ids, redo := x.oldestDirtyLocked(len(want))
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) || redo != x.applied+1 {
		t.Fatalf("all fit: %d ids, redo %d; want every one of %d, redo %d", len(ids), redo, len(want), x.applied+1)
	}
}

// BenchmarkOldestDirty: choosing a flush round's 2,048 pages among the
// dirty buckets of 100,000 keys put (a secondary catching up).
func BenchmarkOldestDirty(b *testing.B) {
	x := dirtyIndex(b, 100000)
	b.ReportMetric(float64(len(x.dirty)), "dirty")
	for b.Loop() {
		x.mu.Lock()
		x.oldestDirtyLocked(2048)
		x.mu.Unlock()
	}
}
