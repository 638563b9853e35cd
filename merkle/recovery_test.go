package merkle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
	"github.com/cofferhq/coffer/wal"
)

// writeRandom makes n writes through l: puts and deletes of replicated keys
// from a space of keySpace, with local and ignored keys mixed in.
func writeRandom(t *testing.T, ctx context.Context, l *wal.Log, r *rand.Rand, n, keySpace int) {
	t.Helper()
	for range n {
		var ops []*storage.TxnOp
		for range 1 + r.IntN(3) {
			k := keyName(r.IntN(keySpace))
			if r.IntN(5) == 0 {
				ops = append(ops, &storage.TxnOp{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: k}})
			} else {
				ops = append(ops, &storage.TxnOp{Operation: storage.PutOperation, Entry: &storage.Entry{Key: k, Value: randValue(r)}})
			}
		}
		if r.IntN(4) == 0 {
			ops = append(ops, &storage.TxnOp{Operation: storage.PutOperation, Entry: &storage.Entry{Key: "sys/token/t" + keyName(r.IntN(100)), Value: []byte("tok")}})
		}
		if _, err := l.Write(ctx, ops); err != nil {
			t.Fatal(err)
		}
	}
}

// catchUp applies every entry of l past x.Applied, as the Follower does.
func catchUp(t *testing.T, ctx context.Context, x *Index, l *wal.Log) {
	t.Helper()
	for x.Applied() < l.LastIndex() {
		es, err := l.Read(ctx, x.Applied(), 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if err := x.Apply(e); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestRecoveryAfterCrash writes through a wal.Log on bolt, updates the index,
// flushes a random share of pages, and "crashes" at random points: the index is
// dropped unflushed, the WAL is maybe truncated to SafeTruncateIndex, the bolt
// file is reopened, Recover runs and must equal a full recomputation.
func TestRecoveryAfterCrash(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	ctx := context.Background()
	b, path := tempBolt(t)
	l := openLog(t, b)
	x := newIndex(t, b)
	const rounds = 24
	var total RecoveryStats
	defer func() { t.Logf("over %d rounds: %+v", rounds, total) }()
	for round := range rounds {
		writeRandom(t, ctx, l, r, 50+r.IntN(400), 2000)
		// The index lags the WAL at a random point: entries committed but not yet
		// applied when the process dies are redone too.
		for x.Applied() < l.LastIndex() {
			es, err := l.Read(ctx, x.Applied(), 1+r.IntN(64))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				if err := x.Apply(e); err != nil {
					t.Fatal(err)
				}
			}
			if r.IntN(6) == 0 {
				if _, err := x.Flush(ctx, r.IntN(300)); err != nil {
					t.Fatal(err)
				}
			}
			if r.IntN(10) == 0 {
				break
			}
		}
		if r.IntN(3) == 0 {
			if err := l.Truncate(ctx, min(x.SafeTruncateIndex(), l.LastIndex())); err != nil {
				t.Fatal(err)
			}
		}
		// Crash: drop x without flushing; reopen storage.
		x = nil
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		b = openBolt(t, path, true)
		l = openLog(t, b)
		var st RecoveryStats
		var err error
		x, st, err = Recover(ctx, b, l, Options{}, nop)
		if err != nil {
			t.Fatalf("seed %d round %d: recover: %v", seed, round, err)
		}
		total.PagesLoaded += st.PagesLoaded
		total.EntriesRead += st.EntriesRead
		total.OpsRedone += st.OpsRedone
		total.OpsSkipped += st.OpsSkipped
		ref, err := build(ctx, b, l, nil, false, Options{}, nop)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x.Root(), ref.Root()) || x.Applied() != l.LastIndex() {
			t.Fatalf("seed %d round %d: recovered root %x at %d, recomputed %x at %d (stats %+v)",
				seed, round, x.Root(), x.Applied(), ref.Root(), l.LastIndex(), st)
		}
		if x.Stats().Keys != ref.Stats().Keys {
			t.Fatalf("seed %d round %d: %d keys recovered, %d recomputed", seed, round, x.Stats().Keys, ref.Stats().Keys)
		}
	}
	// The last recovered index, flushed, is clean for Check.
	if _, err := x.Flush(ctx, 0); err != nil {
		t.Fatal(err)
	}
	rep, err := x.Check(ctx, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean() {
		t.Fatalf("check after recovery: %+v", rep)
	}
	l.Close()
	b.Close()
}

func TestCorruptPageReportedByCheckMendedByReindex(t *testing.T) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 3))
	b, _ := tempBolt(t)
	defer b.Close()
	l := openLog(t, b)
	defer l.Close()
	x := newIndex(t, b)
	writeRandom(t, ctx, l, r, 500, 1000)
	catchUp(t, ctx, x, l)
	if _, err := x.Flush(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if rep, err := x.Check(ctx, l, nil); err != nil || !rep.Clean() {
		t.Fatalf("check before corruption: %+v %v", rep, err)
	}
	// Flip a byte of a stored page through the raw backend.
	victim := BucketOf(keyName(42))
	for len(x.buckets[victim].items) == 0 {
		victim++
	}
	e, err := b.Get(ctx, pageKey(victim))
	if err != nil || e == nil {
		t.Fatalf("page %04x: %v %v", victim, e, err)
	}
	e.Value[len(e.Value)/2] ^= 0x40
	if err := b.Put(ctx, e); err != nil {
		t.Fatal(err)
	}
	rep, err := x.Check(ctx, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	pr, ok := rep.CorruptedTreeMap["1"].CorruptedIndexTuplesMap[itoa(int(victim/Fanout))]
	if rep.Clean() || !ok || !pr.Corrupted || len(pr.Subpages) != 1 || pr.Subpages[0] != int(victim%Fanout) {
		js, _ := json.Marshal(rep)
		t.Fatalf("check did not report page %04x: %s", victim, js)
	}
	if _, _, err := Recover(ctx, b, l, Options{}, nop); !errors.Is(err, ErrReindexRequired) {
		t.Fatalf("recover over a corrupt page: %v, want ErrReindexRequired", err)
	}
	y, err := Reindex(ctx, b, l, nil, Options{}, nop)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(y.Root(), x.Root()) {
		t.Fatalf("reindexed root %x, index root %x", y.Root(), x.Root())
	}
	if rep, err := y.Check(ctx, l, nil); err != nil || !rep.Clean() {
		t.Fatalf("check after reindex: %+v %v", rep, err)
	}
	z, _, err := Recover(ctx, b, l, Options{}, nop)
	if err != nil || !bytes.Equal(z.Root(), x.Root()) {
		t.Fatalf("recover after reindex: %v", err)
	}
}

// TestCheckFindsWrongMemory: an index that missed an update is reported.
func TestCheckFindsWrongMemory(t *testing.T) {
	ctx := context.Background()
	s := inmem.New()
	l := openLog(t, s)
	defer l.Close()
	x := newIndex(t, s)
	writeRandom(t, ctx, l, rand.New(rand.NewPCG(4, 4)), 100, 300)
	catchUp(t, ctx, x, l)
	x.mu.Lock()
	x.update(keyName(7), []byte("not what storage holds"), false, x.applied)
	x.mu.Unlock()
	rep, err := x.Check(ctx, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.CorruptedRoot || rep.Clean() {
		t.Fatalf("check missed a wrong item: %+v", rep)
	}
}

func TestRecoverRefusesTruncatedWAL(t *testing.T) {
	ctx := context.Background()
	s := inmem.New()
	l := openLog(t, s)
	defer l.Close()
	writeRandom(t, ctx, l, rand.New(rand.NewPCG(5, 5)), 50, 100)
	// No checkpoint at all, and the WAL lost its head: the index cannot be redone.
	if err := l.Truncate(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Recover(ctx, s, l, Options{}, nop); !errors.Is(err, ErrReindexRequired) {
		t.Fatalf("recover: %v, want ErrReindexRequired", err)
	}
	y, err := Reindex(ctx, s, l, nil, Options{}, nop)
	if err != nil {
		t.Fatal(err)
	}
	if y.SafeTruncateIndex() != l.LastIndex() {
		t.Fatalf("safe truncate %d after reindex, want %d", y.SafeTruncateIndex(), l.LastIndex())
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
