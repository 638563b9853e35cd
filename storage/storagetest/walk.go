package storagetest

import (
	"context"
	"slices"
	"sort"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// storage.Walk relies on List's contract (sorted, one level, keys and folders
// of one name both listed) to visit keys in byte order: check it on this
// backend against sorting every key, from every resume point.
func testWalkInByteOrder(t *testing.T, b storage.Backend) {
	keys := []string{"a", "a-b", "a/x", "a/y/z", "a/y-", "a/y/zz", "a0", "a0/1", "b/c/d", "b/c-", "b/c", "c", "\x01", "\xff/z"}
	for _, k := range keys {
		put(t, b, k, []byte(k))
	}
	sort.Strings(keys)
	for _, after := range append([]string{""}, keys...) {
		var got []string
		if err := storage.Walk(context.Background(), b, "", after, func(k string) (bool, error) {
			got = append(got, k)
			return true, nil
		}); err != nil {
			t.Fatalf("Walk after %q: %v", after, err)
		}
		want := keys[sort.SearchStrings(keys, after):]
		if len(want) > 0 && want[0] == after {
			want = want[1:]
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Walk after %q = %q, want %q", after, got, want)
		}
	}
}
