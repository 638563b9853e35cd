package merkle

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
)

const benchKeys = 1_000_000

func benchValue(i, gen int) []byte {
	return fmt.Appendf(make([]byte, 0, 128), "vault:v1:%0100d:%d", i, gen)
}

var (
	bigOnce sync.Once
	bigIdx  *Index
)

// bigIndex is an in-memory index of 1,000,000 keys whose keys are pending
// (so bucket listings need no storage).
func bigIndex(b *testing.B) *Index {
	bigOnce.Do(func() {
		bigIdx = newIndex(b, nil)
		for i := range benchKeys {
			if err := bigIdx.Put(keyName(i), benchValue(i, 0), uint64(i+1)); err != nil {
				b.Fatal(err)
			}
		}
		bigIdx.Root()
	})
	return bigIdx
}

// cloneIndex deep-copies the in-memory state of x.
func cloneIndex(b *testing.B, x *Index) *Index {
	y := newIndex(b, nil)
	x.mu.Lock()
	defer x.mu.Unlock()
	x.refresh()
	for i := range x.buckets {
		y.buckets[i] = x.buckets[i]
		y.buckets[i].items = slices.Clone(x.buckets[i].items)
		y.buckets[i].pending = slices.Clone(x.buckets[i].pending)
	}
	for l := range Depth {
		copy(y.nodes[l], x.nodes[l])
	}
	y.applied, y.keys = x.applied, x.keys
	return y
}

// BenchmarkDiff1M: a secondary with 1,000,000 keys and d differences from its
// primary. Reports rounds, bytes exchanged, and the baseline of exchanging
// every key's hash (48 bytes a key).
func BenchmarkDiff1M(b *testing.B) {
	remote := bigIndex(b)
	for _, d := range []int{0, 10, 100, 10_000} {
		b.Run(fmt.Sprintf("diffs=%d", d), func(b *testing.B) {
			local := cloneIndex(b, remote)
			r := rand.New(rand.NewPCG(uint64(d), 9))
			lsn := local.Applied()
			for j := range d {
				lsn++
				i := r.IntN(benchKeys)
				switch j % 3 {
				case 0:
					_ = local.Put(keyName(i), benchValue(i, 1), lsn)
				case 1:
					_ = local.Delete(keyName(i), lsn)
				default:
					_ = local.Put(keyName(benchKeys+i), benchValue(i, 1), lsn)
				}
			}
			var res *DiffResult
			b.ResetTimer()
			for b.Loop() {
				var err error
				res, err = Diff(context.Background(), local, SourceFunc(remote.ServeRPC), DiffOptions{})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(res.Rounds), "rounds")
			b.ReportMetric(float64(res.Requests), "requests")
			b.ReportMetric(float64(res.BytesSent+res.BytesReceived)/1024, "KiB")
			b.ReportMetric(float64(res.Keys()), "keys")
			b.ReportMetric(float64(benchKeys*48)/(1<<20), "baseline-MiB")
		})
	}
}

// BenchmarkUpdate: one put into an index of 1,000,000 keys (in memory, no
// storage read), plus the root recomputation amortised per op.
func BenchmarkUpdate(b *testing.B) {
	x := cloneIndex(b, bigIndex(b))
	x.noPending = true
	r := rand.New(rand.NewPCG(1, 2))
	lsn := x.Applied()
	i := 0
	for b.Loop() {
		lsn++
		k := r.IntN(benchKeys)
		if err := x.Put(keyName(k), benchValue(k, i), lsn); err != nil {
			b.Fatal(err)
		}
		i++
		if i%100 == 0 {
			x.Root()
		}
	}
}

// BenchmarkHeap1M: heap held by a clean index of 1,000,000 keys (as after a
// flush or a recovery: no pending keys).
func BenchmarkHeap1M(b *testing.B) {
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		x := newIndex(b, nil)
		x.noPending = true
		for i := range benchKeys {
			_ = x.Put(keyName(i), benchValue(i, 0), uint64(i+1))
		}
		x.Root()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB")
		runtime.KeepAlive(x)
	}
}

// writeBulk writes keys [from, to) through l in writes of 500 puts and keeps x
// up to date.
func writeBulk(b *testing.B, l *wal.Log, x *Index, from, to, gen int) {
	ctx := context.Background()
	for i := from; i < to; i += 500 {
		ops := make([]*storage.TxnOp, 0, 500)
		for k := i; k < min(i+500, to); k++ {
			ops = append(ops, &storage.TxnOp{Operation: storage.PutOperation, Entry: &storage.Entry{Key: keyName(k), Value: benchValue(k, gen)}})
		}
		if _, err := l.Write(ctx, ops); err != nil {
			b.Fatal(err)
		}
	}
	for x.Applied() < l.LastIndex() {
		es, err := l.Read(ctx, x.Applied(), 1000)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range es {
			_ = x.Apply(e)
		}
	}
}

// BenchmarkRecovery1M: 1,000,000 keys on bolt, every page flushed, then 40
// writes of 500 keys (20,000 keys) applied but not flushed, and a crash:
// Recover against a full Reindex.
func BenchmarkRecovery1M(b *testing.B) {
	ctx := context.Background()
	st, _ := tempBolt(b)
	defer st.Close()
	l := openLog(b, st)
	defer l.Close()
	x := newIndex(b, st)
	writeBulk(b, l, x, 0, benchKeys, 0)
	if _, err := x.Flush(ctx, 0); err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 7))
	start := r.IntN(benchKeys - 20_000)
	writeBulk(b, l, x, start, start+20_000, 1) // dirty, never flushed: the crash
	want := x.Root()
	b.Run("recover", func(b *testing.B) {
		for b.Loop() {
			y, rs, err := Recover(ctx, st, l, Options{}, nop)
			if err != nil {
				b.Fatal(err)
			}
			if string(y.Root()) != string(want) {
				b.Fatal("recovered root differs")
			}
			b.ReportMetric(float64(rs.OpsRedone), "ops-redone")
		}
	})
	b.Run("reindex", func(b *testing.B) {
		for b.Loop() {
			y, err := Reindex(ctx, st, l, nil, Options{}, nop)
			if err != nil {
				b.Fatal(err)
			}
			if string(y.Root()) != string(want) {
				b.Fatal("reindexed root differs")
			}
		}
	})
}

// BenchmarkWriteThroughput: concurrent writers on a wal.Log over bolt with
// fsync, each write one 128-byte put of one of 100,000 keys. "none" has no
// index; "async" updates the index through a Follower and flushes pages from
// the flusher goroutine; "inline" writes the touched page inside the write's
// own storage transaction (a read of the stored page, the merge, the put).
func BenchmarkWriteThroughput(b *testing.B) {
	for _, mode := range []string{"none", "async", "inline"} {
		b.Run(mode, func(b *testing.B) {
			st, path := tempBolt(b)
			st.Close()
			st = openBolt(b, path, false)
			defer st.Close()
			l := openLog(b, st)
			defer l.Close()
			x := newIndex(b, st)
			var f *Follower
			if mode != "none" {
				f = NewFollower(x, l, nop)
				f.Start()
				defer f.Stop()
			}
			if mode == "async" {
				x.Start()
				defer x.Stop()
			}
			var n atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					i := int(n.Add(1))
					k := keyName(i % 100_000)
					ops := []*storage.TxnOp{{Operation: storage.PutOperation, Entry: &storage.Entry{Key: k, Value: benchValue(i, i)}}}
					if mode == "inline" {
						ops = append(ops, inlinePageOp(b, x, k, ops[0].Entry.Value))
					}
					if _, err := l.Write(ctx, ops); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
		})
	}
}

// inlinePageOp builds the page of key's bucket as it will be after the write:
// the stored page's keys merged with the in-memory items and this key.
func inlinePageOp(b *testing.B, x *Index, key string, value []byte) *storage.TxnOp {
	bk, fp := keyHash(key)
	x.mu.Lock()
	items := slices.Clone(x.buckets[bk].items)
	pending := slices.Clone(x.buckets[bk].pending)
	x.mu.Unlock()
	tmp := bucket{items: items}
	if i, ok := tmp.find(fp); ok {
		tmp.items[i].vh = ValueHash(key, value)
	} else {
		tmp.items = slices.Insert(tmp.items, i, item{fp: fp, vh: ValueHash(key, value)})
	}
	pending = append(pending, key)
	x.flushMu.Lock()
	keys, err := x.bucketKeys(context.Background(), bk, tmp.items, pending, false)
	x.flushMu.Unlock()
	if err != nil {
		// The follower may not have applied a racing write yet: fall back to
		// the keys we know (the cost measured is the same read + put).
		keys = make([]string, len(tmp.items))
	}
	return &storage.TxnOp{Operation: storage.PutOperation, Entry: &storage.Entry{Key: pageKey(bk), Value: encodePage(bk, 0, tmp.items, keys)}}
}
