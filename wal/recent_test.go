package wal

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
)

// An entry just committed is read from memory: the storage's copy is not
// read (here it was removed behind the log's back), and the entry holds
// its own values (the writer reuses its buffer once Write returns).
func TestReadServesRecentEntriesFromMemory(t *testing.T) {
	ctx := context.Background()
	b := inmem.New()
	l := openLog(t, b, Options{})
	val := []byte("first")
	idx, err := l.Write(ctx, []*storage.TxnOp{{Operation: storage.PutOperation, Entry: &storage.Entry{Key: "logical/a", Value: val}}})
	if err != nil {
		t.Fatal(err)
	}
	copy(val, "XXXXX")
	if err := b.Delete(ctx, logKey(idx)); err != nil {
		t.Fatal(err)
	}
	es, err := l.Read(ctx, 0, 1)
	if err != nil || len(es) != 1 || es[0].Index != idx || es[0].Time == 0 || string(es[0].Ops[0].Value) != "first" {
		t.Fatalf("Read = %+v, %v; want entry %d with its own value", es, err, idx)
	}
}

// Past what the cache holds, Read reads the storage: every entry comes
// back, the old ones decoded from storage, the new ones from memory.
func TestReadBeyondTheRecentEntries(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, inmem.New(), Options{})
	n := recentSlots + 100
	for i := 1; i <= n; i++ {
		if _, err := l.Write(ctx, []*storage.TxnOp{put(fmt.Sprintf("logical/%d", i), fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if l.recent.get(1) != nil || l.recent.get(uint64(n)) == nil {
		t.Fatalf("the cache holds %d..%d of %d entries", l.recent.lo, l.recent.hi, n)
	}
	es := readAll(t, l)
	if len(es) != n {
		t.Fatalf("read %d entries, want %d", len(es), n)
	}
	for i, e := range es {
		if e.Index != uint64(i+1) || string(e.Ops[0].Value) != fmt.Sprint(i+1) {
			t.Fatalf("entry %d = %+v", i+1, e)
		}
	}
}

// The cache keeps the newest entries, contiguous, within its slots and
// bytes; an entry that does not follow the newest starts it again.
func TestRecentBounds(t *testing.T) {
	var r recent
	r.resetLocked()
	big := bytes.Repeat([]byte{1}, 1<<20)
	for i := uint64(1); i <= 100; i++ {
		r.add(&Entry{Index: i, Ops: []Op{{Key: "k", Value: big}}})
	}
	if r.bytes > recentBytes || r.hi != 100 || r.hi-r.lo+1 != recentBytes/(1<<20+81) || r.get(r.lo-1) != nil || r.get(100) == nil {
		t.Fatalf("1 MiB entries: lo %d hi %d bytes %d", r.lo, r.hi, r.bytes)
	}
	r.add(&Entry{Index: 150})
	if r.lo != 150 || r.hi != 150 || r.get(100) != nil {
		t.Fatalf("after a gap: lo %d hi %d", r.lo, r.hi)
	}
	for i := uint64(151); i < 151+2*recentSlots; i++ {
		r.add(&Entry{Index: i})
	}
	if r.hi-r.lo+1 != recentSlots || r.get(r.hi) == nil {
		t.Fatalf("small entries: lo %d hi %d", r.lo, r.hi)
	}
	r.reset()
	if r.get(r.hi) != nil || r.bytes != 0 {
		t.Fatal("reset kept entries")
	}
}

// ReadLimit stops once the entries read hold maxBytes, after one at least.
func TestReadLimitBoundsBytes(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, inmem.New(), Options{})
	for i := range 10 {
		if _, err := l.Write(ctx, []*storage.TxnOp{put(fmt.Sprintf("logical/%d", i), string(make([]byte, 1000)))}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ max, want int }{{0, 10}, {1, 1}, {2500, 3}, {1 << 20, 10}} {
		es, err := l.ReadLimit(ctx, 0, 100, c.max)
		if err != nil || len(es) != c.want {
			t.Fatalf("ReadLimit(maxBytes %d) = %d entries, %v; want %d", c.max, len(es), err, c.want)
		}
	}
}

// The entry kept in memory shares the values of its encoding rather than
// copying them again (one copy of each value per write, not two), and reads
// back as the encoding decodes.
func TestKeptEntrySharesItsEncoding(t *testing.T) {
	ops := []Op{
		{Kind: storage.PutOperation, Class: Replicated, Key: "logical/a", Value: bytes.Repeat([]byte("v"), 300)},
		{Kind: storage.DeleteOperation, Class: Replicated, Key: "logical/b"},
		{Kind: storage.PutOperation, Class: Local, Key: "core/c", Value: []byte{}},
		{Kind: storage.PutOperation, Class: Replicated, Key: "logical/d", Value: []byte("last")},
	}
	body, kept := encodeOwned(ops)
	dec, err := DecodeEntry(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept.Ops) != len(ops) {
		t.Fatalf("kept %d ops, want %d", len(kept.Ops), len(ops))
	}
	for i, op := range kept.Ops {
		want := dec.Ops[i]
		if op.Kind != want.Kind || op.Class != want.Class || op.Key != want.Key || !bytes.Equal(op.Value, want.Value) {
			t.Fatalf("op %d = %+v, want %+v", i, op, want)
		}
		if op.Kind == storage.DeleteOperation && op.Value != nil {
			t.Fatalf("op %d: a delete keeps a value %q", i, op.Value)
		}
		if len(op.Value) > 0 {
			at := bytes.Index(body, want.Value)
			body[at] ^= 0xff
			if op.Value[0] != body[at] {
				t.Fatalf("op %d: its value is a copy, not a slice of the encoding", i)
			}
			body[at] ^= 0xff
		}
		if cap(op.Value) != len(op.Value) {
			t.Fatalf("op %d: an append to its value would write into the encoding (cap %d, len %d)", i, cap(op.Value), len(op.Value))
		}
	}
}
