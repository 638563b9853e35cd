package storagetest

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// The backend's life around the calls: a cancelled context refuses the write,
// and a closed backend refuses everything.

func testCancelledContext(t *testing.T, b storage.Backend) {
	put(t, b, "kept", []byte("v"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Put(ctx, &storage.Entry{Key: "new", Value: []byte("v")}); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context: error = %v, want context.Canceled", err)
	}
	if err := b.Delete(ctx, "kept"); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a cancelled context: error = %v, want context.Canceled", err)
	}
	wantMissing(t, b, "new")
	wantValue(t, b, "kept", []byte("v"))
}

func testClose(t *testing.T, b storage.Backend) {
	c, ok := b.(io.Closer)
	if !ok {
		t.Skipf("%T is not an io.Closer", b)
	}
	put(t, b, "k", []byte("v"))
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := context.Background()
	if _, err := b.Get(ctx, "k"); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Get after Close: error = %v, want ErrClosed", err)
	}
	if err := b.Put(ctx, &storage.Entry{Key: "k", Value: []byte("v")}); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Put after Close: error = %v, want ErrClosed", err)
	}
	if err := b.Delete(ctx, "k"); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Delete after Close: error = %v, want ErrClosed", err)
	}
	if _, err := b.List(ctx, ""); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("List after Close: error = %v, want ErrClosed", err)
	}
	if tb, ok := b.(storage.Transactional); ok {
		if err := tb.Transaction(ctx, []*storage.TxnOp{putOp("k", "v")}); !errors.Is(err, storage.ErrClosed) {
			t.Errorf("Transaction after Close: error = %v, want ErrClosed", err)
		}
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v, want nil (Close must be idempotent)", err)
	}
}
