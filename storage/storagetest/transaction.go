package storagetest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/cofferhq/coffer/storage"
)

// Transactions, one at a time: all operations applied in order, or none.

func testTransactionMixed(t *testing.T, b storage.Transactional) {
	put(t, b, "old/1", []byte("o1"))
	put(t, b, "old/2", []byte("o2"))
	txn(t, b,
		putOp("new/1", "n1"),
		delOp("old/1"),
		putOp("old/2", "replaced"),
		delOp("never-existed"),
		putOp("new/2", "n2"),
	)
	wantValue(t, b, "new/1", []byte("n1"))
	wantValue(t, b, "new/2", []byte("n2"))
	wantMissing(t, b, "old/1")
	wantValue(t, b, "old/2", []byte("replaced"))
	wantList(t, b, "", "new/", "old/")
	wantList(t, b, "old/", "2")
}

func testTransactionLaterOpWins(t *testing.T, b storage.Transactional) {
	put(t, b, "existing", []byte("e"))
	txn(t, b,
		putOp("pd", "1"), delOp("pd"), // put then delete: gone
		delOp("dp"), putOp("dp", "2"), // delete then put: present
		putOp("pp", "first"), putOp("pp", "second"), // last put wins
		delOp("existing"), putOp("existing", "back"), delOp("existing"),
	)
	wantMissing(t, b, "pd")
	wantValue(t, b, "dp", []byte("2"))
	wantValue(t, b, "pp", []byte("second"))
	wantMissing(t, b, "existing")
	wantList(t, b, "", "dp", "pp")
}

func testTransactionEmpty(t *testing.T, b storage.Transactional) {
	put(t, b, "k", []byte("v"))
	txn(t, b)
	if err := b.Transaction(context.Background(), nil); err != nil {
		t.Fatalf("Transaction(nil): %v", err)
	}
	wantValue(t, b, "k", []byte("v"))
}

func testTransactionInvalid(t *testing.T, b storage.Transactional) {
	invalid := []struct {
		name string
		op   *storage.TxnOp
		want error
	}{
		{"nil op", nil, storage.ErrInvalidOperation},
		{"nil entry", &storage.TxnOp{Operation: storage.PutOperation}, storage.ErrInvalidOperation},
		{"zero operation", &storage.TxnOp{Entry: &storage.Entry{Key: "z", Value: []byte("v")}}, storage.ErrInvalidOperation},
		{"unknown operation", &storage.TxnOp{Operation: 99, Entry: &storage.Entry{Key: "z"}}, storage.ErrInvalidOperation},
		{"put empty key", putOp("", "v"), storage.ErrInvalidKey},
		{"delete empty key", delOp(""), storage.ErrInvalidKey},
		{"key with NUL", putOp("a\x00b", "v"), storage.ErrInvalidKey},
	}
	put(t, b, "keep", []byte("before"))
	put(t, b, "doomed", []byte("before"))
	valid := []*storage.TxnOp{putOp("keep", "after"), delOp("doomed"), putOp("fresh", "v")}
	for _, inv := range invalid {
		for pos := 0; pos <= len(valid); pos++ {
			ops := slices.Insert(slices.Clone(valid), pos, inv.op)
			err := b.Transaction(context.Background(), ops)
			if !errors.Is(err, inv.want) {
				t.Errorf("%s at position %d: error = %v, want %v", inv.name, pos, err, inv.want)
			}
			wantValue(t, b, "keep", []byte("before"))
			wantValue(t, b, "doomed", []byte("before"))
			wantMissing(t, b, "fresh")
		}
	}
	wantList(t, b, "", "doomed", "keep")
}

func testTransactionCopies(t *testing.T, b storage.Transactional) {
	v := []byte("original")
	op := &storage.TxnOp{Operation: storage.PutOperation, Entry: &storage.Entry{Key: "k", Value: v}}
	txn(t, b, op)
	copy(v, "XXXXXXXX")
	op.Entry.Key = "other"
	wantValue(t, b, "k", []byte("original"))
	wantMissing(t, b, "other")
}

func testTransactionCancelled(t *testing.T, b storage.Transactional) {
	put(t, b, "kept", []byte("v"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := b.Transaction(ctx, []*storage.TxnOp{putOp("new", "v"), delOp("kept")})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Transaction with a cancelled context: error = %v, want context.Canceled", err)
	}
	wantMissing(t, b, "new")
	wantValue(t, b, "kept", []byte("v"))
}
