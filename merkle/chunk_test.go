package merkle

import (
	"context"
	"testing"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
)

type capped struct {
	*inmem.Backend
	max int
}

func (c capped) MaxTransactionOps() int { return c.max }

func (c capped) Transaction(ctx context.Context, ops []*storage.TxnOp) error {
	return c.Backend.Transaction(ctx, ops)
}

// A flush's or a reindex's chunk of pages, with its checkpoint, fits the
// backend's cap on the operations of a transaction (Consul: 128).
func TestChunkFitsTheBackendsOpCap(t *testing.T) {
	if n := chunkOf(inmem.New()); n != flushChunk {
		t.Fatalf("no cap: chunk %d, want %d", n, flushChunk)
	}
	if n := chunkOf(capped{inmem.New(), 128}); n != 127 {
		t.Fatalf("a cap of 128: chunk %d, want 127 (and the checkpoint)", n)
	}
}
