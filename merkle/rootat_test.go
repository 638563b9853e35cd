package merkle

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
	"github.com/cofferhq/coffer/wal"
)

func putEntry(index uint64, key, value string) *wal.Entry {
	return &wal.Entry{Index: index, Ops: []wal.Op{{Kind: storage.PutOperation, Class: wal.Replicated, Key: key, Value: []byte(value)}}}
}

// RootAt gives the root at exactly the LSN asked for, even when later
// entries are applied before the caller reads it; past it, or passed by
// Put, it gives nothing.
func TestRootAt(t *testing.T) {
	x := newIndex(t, inmem.New())
	ref := newIndex(t, inmem.New())
	at2, at3 := x.RootAt(2), x.RootAt(3)
	for i := uint64(1); i <= 4; i++ {
		e := putEntry(i, fmt.Sprintf("logical/k%d", i), "v")
		if err := x.Apply(e); err != nil {
			t.Fatal(err)
		}
		if i <= 2 {
			if err := ref.Apply(e); err != nil {
				t.Fatal(err)
			}
		}
	}
	if r, ok := <-at2; !ok || !bytes.Equal(r, ref.Root()) || bytes.Equal(r, x.Root()) {
		t.Fatalf("RootAt(2) = %x, %v; want the root after entry 2, %x", r, ok, ref.Root())
	}
	if r, ok := <-at3; !ok || len(r) != HashSize {
		t.Fatalf("RootAt(3) = %x, %v", r, ok)
	}
	if r, ok := <-x.RootAt(4); !ok || !bytes.Equal(r, x.Root()) {
		t.Fatalf("RootAt(applied) = %x, %v; want the root now", r, ok)
	}
	if r, ok := <-x.RootAt(1); ok {
		t.Fatalf("RootAt(1) past it = %x; want closed", r)
	}
	// An entry the index does not follow (a local key) leaves the root at
	// 4 as it was: asked after it, RootAt(4) still answers.
	local := &wal.Entry{Index: 5, Ops: []wal.Op{{Kind: storage.PutOperation, Class: wal.Local, Key: "sys/token/t", Value: []byte("t")}}}
	if err := x.Apply(local); err != nil {
		t.Fatal(err)
	}
	if r, ok := <-x.RootAt(4); !ok || !bytes.Equal(r, x.Root()) {
		t.Fatalf("RootAt(4) after a local entry = %x, %v; want the root at 4", r, ok)
	}
	at5 := x.RootAt(6)
	if err := x.Put("logical/p", []byte("v"), 6); err != nil {
		t.Fatal(err)
	}
	if r, ok := <-at5; ok {
		t.Fatalf("RootAt(6) reached by Put = %x; want closed", r)
	}
	for range maxRootWaits + 1 {
		x.RootAt(100)
	}
	if len(x.rootWaits) != maxRootWaits {
		t.Fatalf("%d pending requests, want at most %d", len(x.rootWaits), maxRootWaits)
	}
}
