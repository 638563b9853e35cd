package storagetest

import (
	"context"
	"slices"
	"sort"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// List: one level of names under a prefix, sorted, without duplicates.

func testListEmpty(t *testing.T, b storage.Backend) {
	wantList(t, b, "")
	wantList(t, b, "a/")
	wantList(t, b, "a")
}

// listKeys holds keys whose names sort around '/': '-' (0x2d) and '.' (0x2e)
// sort before it, '0' (0x30) right after it. A backend that skips a folder by
// seeking, or that sorts before cutting names, trips over them.
var listKeys = []string{
	"a",
	"a/b",
	"a/c/d",
	"a/c/e/f",
	"a/c0",
	"b-x",
	"b.x",
	"b/c",
	"b/c/d",
	"b0",
	"b0/z",
	"c",
	"c/",
}

func testListOneLevel(t *testing.T, b storage.Backend) {
	// Write in reverse so no backend gets sorted input for free.
	for i := len(listKeys) - 1; i >= 0; i-- {
		put(t, b, listKeys[i], []byte(listKeys[i]))
	}
	wantList(t, b, "", "a", "a/", "b-x", "b.x", "b/", "b0", "b0/", "c", "c/")
	wantList(t, b, "a/", "b", "c/", "c0")
	wantList(t, b, "a/c/", "d", "e/")
	wantList(t, b, "a/c/e/", "f")
	wantList(t, b, "b/", "c", "c/")
	wantList(t, b, "b0/", "z")
	wantList(t, b, "b/c/", "d")
	// "c/" is a key; listing under it holds nothing, since the key itself is not a name.
	wantList(t, b, "c/")
	wantList(t, b, "nothing/")
	wantList(t, b, "a/b/")

	for _, prefix := range []string{"", "a/", "b/", "a/c/"} {
		names := list(t, b, prefix)
		if !sort.StringsAreSorted(names) {
			t.Errorf("List(%q) = %q is not sorted", prefix, names)
		}
		if len(slices.Compact(slices.Clone(names))) != len(names) {
			t.Errorf("List(%q) = %q holds duplicates", prefix, names)
		}
	}
}

func testListPrefixWithoutSlash(t *testing.T, b storage.Backend) {
	for _, k := range listKeys {
		put(t, b, k, []byte(k))
	}
	// The prefix is a plain string prefix, as in Vault's physical backends.
	wantList(t, b, "b", "-x", ".x", "/", "0", "0/")
	wantList(t, b, "a/c", "/", "0")
	wantList(t, b, "a/b")
	wantList(t, b, "a/c/e", "/")
	wantList(t, b, "zz")
}

func testListAfterDelete(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	put(t, b, "f/x/1", []byte("1"))
	put(t, b, "f/x/2", []byte("2"))
	put(t, b, "f/y", []byte("3"))
	wantList(t, b, "f/", "x/", "y")
	if err := b.Delete(ctx, "f/x/1"); err != nil {
		t.Fatal(err)
	}
	wantList(t, b, "f/", "x/", "y")
	if err := b.Delete(ctx, "f/x/2"); err != nil {
		t.Fatal(err)
	}
	wantList(t, b, "f/", "y")
	if err := b.Delete(ctx, "f/y"); err != nil {
		t.Fatal(err)
	}
	wantList(t, b, "f/")
	wantList(t, b, "")
}
