package bolt

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// A commit does not write the list of free pages: with many pages free
// (the WAL's truncated entries), a small write allocates a page or two,
// not the list again.
func TestCommitDoesNotWriteTheFreeList(t *testing.T) {
	for _, sync := range []bool{false, true} {
		t.Run(fmt.Sprintf("freelist_sync=%v", sync), func(t *testing.T) {
			ctx := context.Background()
			b, err := Open(Options{Path: filepath.Join(t.TempDir(), "coffer.db"), NoSync: true, FreelistSync: sync})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if ps := b.db.Info().PageSize; ps != 4096 {
				t.Skipf("pages of %d bytes: the page counts below assume 4 KiB", ps)
			}
			val := make([]byte, 8<<10)
			for i := range 2000 {
				if err := b.Put(ctx, &storage.Entry{Key: fmt.Sprintf("wal/logs/%06d", i), Value: val}); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 2000 {
				if err := b.Delete(ctx, fmt.Sprintf("wal/logs/%06d", i)); err != nil {
					t.Fatal(err)
				}
			}
			if free := b.db.Stats().FreePageN; free < 2000 {
				t.Fatalf("only %d pages free after the deletes", free)
			}
			pageAlloc := func() int64 { st := b.db.Stats(); return st.TxStats.GetPageAlloc() }
			before := pageAlloc()
			if err := b.Put(ctx, &storage.Entry{Key: "core/small", Value: []byte("x")}); err != nil {
				t.Fatal(err)
			}
			alloc := pageAlloc() - before
			pages := alloc / int64(b.db.Info().PageSize)
			if sync && pages < 8 {
				t.Fatalf("with the list synced a commit allocated only %d pages: the test does not see the list", pages)
			}
			if !sync && pages > 4 {
				t.Fatalf("a one-key commit allocated %d pages: the free list is written with it", pages)
			}
		})
	}
}

// A file written with the list synced opens without it, and back: an
// upgrade from a release that synced it, or an operator who turns it on.
func TestFreelistSyncCanBeTurnedEitherWay(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "coffer.db")
	for i, sync := range []bool{true, false, true} {
		b, err := Open(Options{Path: path, FreelistSync: sync})
		if err != nil {
			t.Fatalf("open %d (freelist sync %v): %v", i, sync, err)
		}
		for j := range i {
			e, err := b.Get(ctx, fmt.Sprintf("core/k%d", j))
			if err != nil || e == nil || string(e.Value) != "v" {
				b.Close()
				t.Fatalf("open %d (freelist sync %v): core/k%d = %v, %v", i, sync, j, e, err)
			}
		}
		if err := b.Put(ctx, &storage.Entry{Key: fmt.Sprintf("core/k%d", i), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
		if err := b.Delete(ctx, "core/none"); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
