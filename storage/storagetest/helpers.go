package storagetest

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// The helpers every subtest uses: each fails the test on an unexpected error.

func put(t *testing.T, b storage.Backend, key string, value []byte) {
	t.Helper()
	if err := b.Put(context.Background(), &storage.Entry{Key: key, Value: value}); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func get(t *testing.T, b storage.Backend, key string) *storage.Entry {
	t.Helper()
	e, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if e != nil && e.Key != key {
		t.Fatalf("Get(%q) returned an entry with key %q", key, e.Key)
	}
	return e
}

func wantValue(t *testing.T, b storage.Backend, key string, want []byte) {
	t.Helper()
	e := get(t, b, key)
	if e == nil {
		t.Fatalf("Get(%q) = nil, want value %q", key, want)
	}
	if !bytes.Equal(e.Value, want) {
		t.Fatalf("Get(%q) = %q, want %q", key, e.Value, want)
	}
}

func wantMissing(t *testing.T, b storage.Backend, key string) {
	t.Helper()
	if e := get(t, b, key); e != nil {
		t.Fatalf("Get(%q) = %q, want missing", key, e.Value)
	}
}

func list(t *testing.T, b storage.Backend, prefix string) []string {
	t.Helper()
	names, err := b.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return names
}

func wantList(t *testing.T, b storage.Backend, prefix string, want ...string) {
	t.Helper()
	got := list(t, b, prefix)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Fatalf("List(%q) = %q, want %q", prefix, got, want)
	}
}

func txn(t *testing.T, b storage.Transactional, ops ...*storage.TxnOp) {
	t.Helper()
	if err := b.Transaction(context.Background(), ops); err != nil {
		t.Fatalf("Transaction: %v", err)
	}
}

func putOp(key, value string) *storage.TxnOp {
	return &storage.TxnOp{Operation: storage.PutOperation, Entry: &storage.Entry{Key: key, Value: []byte(value)}}
}

func delOp(key string) *storage.TxnOp {
	return &storage.TxnOp{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: key}}
}
