package storage_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
)

// walkKeys collects what Walk visits.
func walkKeys(t *testing.T, b storage.Backend, prefix, after string) []string {
	t.Helper()
	var got []string
	if err := storage.Walk(context.Background(), b, prefix, after, func(k string) (bool, error) {
		got = append(got, k)
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// The walk lists one level at a time depth first; check it against the dumb
// oracle: every key sorted, filtered by "after". (Moved from primary, where
// the sync listing had its own copy of the walk.)
func TestWalkKeysOrderAgainstSort(t *testing.T) {
	ctx := context.Background()
	b := inmem.New()
	keys := []string{"a", "a-b", "a/x", "a/y/z", "a/y-", "a0", "b/c/d", "b/c-", "b/c", "c", "a/y/zz"}
	for _, k := range keys {
		if err := b.Put(ctx, &storage.Entry{Key: k, Value: []byte(k)}); err != nil {
			t.Fatal(err)
		}
	}
	sorted := append([]string(nil), keys...)
	sort.Strings(sorted)
	for _, after := range append([]string{""}, sorted...) {
		var got, want []string
		for _, k := range sorted {
			if k > after {
				want = append(want, k)
			}
		}
		if err := storage.Walk(ctx, b, "", after, func(k string) (bool, error) { got = append(got, k); return true, nil }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("after %q: %v, want %v", after, got, want)
		}
	}
}

// countingList counts List calls per prefix.
type countingList struct {
	storage.Backend
	lists map[string]int
	fail  string // List of this prefix fails ("": none)
}

var errList = errors.New("list failed")

func (c *countingList) List(ctx context.Context, prefix string) ([]string, error) {
	c.lists[prefix]++
	if c.fail != "" && prefix == c.fail {
		return nil, errList
	}
	return c.Backend.List(ctx, prefix)
}

func fill(t *testing.T, keys ...string) *countingList {
	t.Helper()
	b := inmem.New()
	for _, k := range keys {
		if err := b.Put(context.Background(), &storage.Entry{Key: k, Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	return &countingList{Backend: b, lists: map[string]int{}}
}

func TestWalkPrefixStopAndErrors(t *testing.T) {
	b := fill(t, "a/1", "a/b/2", "a/b/3", "c/4", "d")
	if got := walkKeys(t, b, "a/", ""); !slices.Equal(got, []string{"a/1", "a/b/2", "a/b/3"}) {
		t.Fatalf("under a/: %q", got)
	}
	// Resuming after a key lists no folder that sorts wholly before it.
	clear(b.lists)
	if got := walkKeys(t, b, "", "a/b/3"); !slices.Equal(got, []string{"c/4", "d"}) || b.lists["a/"] != 1 || b.lists["a/b/"] != 1 {
		t.Fatalf("after a/b/3: %q, lists %v", got, b.lists)
	}
	clear(b.lists)
	if got := walkKeys(t, b, "", "c/4"); !slices.Equal(got, []string{"d"}) || b.lists["a/"] != 0 {
		t.Fatalf("after c/4: %q, lists %v", got, b.lists)
	}

	// fn returning false stops at once; its error is returned as is.
	var seen []string
	err := storage.Walk(context.Background(), b, "", "", func(k string) (bool, error) {
		seen = append(seen, k)
		return len(seen) < 2, nil
	})
	if err != nil || !slices.Equal(seen, []string{"a/1", "a/b/2"}) {
		t.Fatalf("stop: %q, %v", seen, err)
	}
	errFn := errors.New("fn failed")
	if err := storage.Walk(context.Background(), b, "", "", func(string) (bool, error) { return true, errFn }); err != errFn {
		t.Fatalf("fn error: %v", err)
	}

	// A List error names its prefix and wraps the cause.
	b.fail = "a/b/"
	err = storage.Walk(context.Background(), b, "", "", func(string) (bool, error) { return true, nil })
	if !errors.Is(err, errList) || !strings.Contains(err.Error(), `"a/b/"`) {
		t.Fatalf("list error: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := storage.Walk(ctx, b, "", "", func(string) (bool, error) { return true, nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestWalkFoldersSkipsRefusedFolders(t *testing.T) {
	b := fill(t, "core/x", "wal/logs/1", "wal/logs/2", "wal", "z/wal/y")
	var got []string
	err := storage.WalkFolders(context.Background(), b, "", "", func(f string) bool { return f != "wal/" }, func(k string) (bool, error) {
		got = append(got, k)
		return true, nil
	})
	if err != nil || !slices.Equal(got, []string{"core/x", "wal", "z/wal/y"}) {
		t.Fatalf("got %q, %v", got, err)
	}
	if b.lists["wal/"] != 0 || b.lists["wal/logs/"] != 0 {
		t.Fatalf("listed a refused folder: %v", b.lists)
	}
}

// Deleting the visited key during the walk is allowed.
func TestWalkDeletingAsItGoes(t *testing.T) {
	ctx := context.Background()
	b := fill(t, "a/1", "a/b/2", "c")
	n := 0
	if err := storage.Walk(ctx, b, "", "", func(k string) (bool, error) {
		n++
		return true, b.Delete(ctx, k)
	}); err != nil || n != 3 {
		t.Fatalf("visited %d: %v", n, err)
	}
	if left := walkKeys(t, b, "", ""); len(left) != 0 {
		t.Fatalf("left %q", left)
	}
}
