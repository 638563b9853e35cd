package storagetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// Single-key behaviour: Get, Put and Delete on one key at a time.

func testGetMissing(t *testing.T, b storage.Backend) {
	wantMissing(t, b, "missing")
	put(t, b, "a/b", []byte("x"))
	// Neither a folder nor a sibling prefix is a key.
	wantMissing(t, b, "a")
	wantMissing(t, b, "a/")
	wantMissing(t, b, "a/b/c")
	wantMissing(t, b, "a/bc")
}

func testPutGet(t *testing.T, b storage.Backend) {
	put(t, b, "foo", []byte("bar"))
	wantValue(t, b, "foo", []byte("bar"))
	put(t, b, "foo/bar/baz", []byte("deep"))
	wantValue(t, b, "foo/bar/baz", []byte("deep"))
	wantValue(t, b, "foo", []byte("bar"))
}

func testOverwrite(t *testing.T, b storage.Backend) {
	put(t, b, "k", []byte("first, and longer than the second"))
	put(t, b, "k", []byte("second"))
	wantValue(t, b, "k", []byte("second"))
	wantList(t, b, "", "k")
}

func testEmptyValues(t *testing.T, b storage.Backend) {
	put(t, b, "empty", []byte{})
	put(t, b, "nil", nil)
	for _, k := range []string{"empty", "nil"} {
		e := get(t, b, k)
		if e == nil {
			t.Fatalf("Get(%q) = nil: a key stored with an empty value must exist", k)
		}
		if len(e.Value) != 0 {
			t.Fatalf("Get(%q) = %q, want empty", k, e.Value)
		}
	}
	wantList(t, b, "", "empty", "nil")
}

func testBinaryValues(t *testing.T, b storage.Backend) {
	all := make([]byte, 0, 512)
	for i := range 256 {
		all = append(all, byte(i))
	}
	for i := 255; i >= 0; i-- {
		all = append(all, byte(i))
	}
	values := map[string][]byte{
		"bin/all-bytes": all,
		"bin/nul":       {0},
		"bin/nuls":      {0, 0, 0, 0},
		"bin/ff":        {0xff, 0xfe, 0x00, 0x80},
		"bin/not-utf8":  {0xc3, 0x28, 0xa0, 0xa1},
	}
	for k, v := range values {
		put(t, b, k, v)
	}
	for k, v := range values {
		wantValue(t, b, k, v)
	}
}

func testLargeValue(t *testing.T, b storage.Backend) {
	v := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range v {
		v[i] = byte(r.UintN(256))
	}
	put(t, b, "large", v)
	wantValue(t, b, "large", v)
}

func testKeyShapes(t *testing.T, b storage.Backend) {
	keys := []string{
		"with space",
		"ünïcødé/ключ",
		"dots.and-dashes_and~tildes",
		"sys/token/id/" + strings.Repeat("h", 64),
		strings.Repeat("deep/", 20) + "leaf",
		"\xff\xfe",
		"%2F/escaped",
	}
	for i, k := range keys {
		put(t, b, k, []byte(fmt.Sprint(i)))
	}
	for i, k := range keys {
		wantValue(t, b, k, []byte(fmt.Sprint(i)))
	}
}

func testDelete(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	if err := b.Delete(ctx, "never-written"); err != nil {
		t.Fatalf("Delete of a missing key: %v, want nil", err)
	}
	put(t, b, "a", []byte("1"))
	put(t, b, "a/b", []byte("2"))
	put(t, b, "ab", []byte("3"))
	if err := b.Delete(ctx, "a"); err != nil {
		t.Fatalf("Delete(a): %v", err)
	}
	wantMissing(t, b, "a")
	wantValue(t, b, "a/b", []byte("2"))
	wantValue(t, b, "ab", []byte("3"))
	if err := b.Delete(ctx, "a"); err != nil {
		t.Fatalf("second Delete(a): %v, want nil", err)
	}
	// Deleting a folder name deletes nothing.
	if err := b.Delete(ctx, "a/"); err != nil {
		t.Fatalf("Delete(a/): %v", err)
	}
	wantValue(t, b, "a/b", []byte("2"))
	// A deleted key can be written again.
	put(t, b, "a", []byte("again"))
	wantValue(t, b, "a", []byte("again"))
}

func testInvalidKeys(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	for _, k := range []string{"", "nul\x00inside", "\x00"} {
		if _, err := b.Get(ctx, k); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Get(%q) error = %v, want ErrInvalidKey", k, err)
		}
		if err := b.Put(ctx, &storage.Entry{Key: k, Value: []byte("v")}); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Put(%q) error = %v, want ErrInvalidKey", k, err)
		}
		if err := b.Delete(ctx, k); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Delete(%q) error = %v, want ErrInvalidKey", k, err)
		}
	}
	if err := b.Put(ctx, nil); err == nil {
		t.Errorf("Put(nil) succeeded, want an error")
	}
	wantList(t, b, "")
}

func testValuesAreCopies(t *testing.T, b storage.Backend) {
	v := []byte("original")
	put(t, b, "k", v)
	copy(v, "XXXXXXXX")
	wantValue(t, b, "k", []byte("original"))

	e := get(t, b, "k")
	copy(e.Value, "YYYYYYYY")
	wantValue(t, b, "k", []byte("original"))

	// Two reads do not share memory either.
	e1, e2 := get(t, b, "k"), get(t, b, "k")
	e1.Value[0] = 'Z'
	if e2.Value[0] != 'o' {
		t.Fatalf("two Gets share their value: mutating one changed the other to %q", e2.Value)
	}

	names := list(t, b, "")
	names[0] = "mutated"
	wantList(t, b, "", "k")
}
