// The collector against the real reader of its Redo floor. An external test
// package: wal itself never imports merkle, its tests may.
package wal_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/cofferhq/coffer/merkle"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
	"github.com/cofferhq/coffer/wal"
	"github.com/rs/zerolog"
)

// The collector truncates the WAL up to what merkle recovery no longer needs
// (minus the margin), and recovery from the truncated WAL still rebuilds the
// same index.
func TestWALGCKeepsWhatRecoveryNeeds(t *testing.T) {
	ctx := context.Background()
	logger := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	store := inmem.New()
	log, err := wal.Open(ctx, store, wal.Options{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	live, err := merkle.Open(ctx, store, log, nil, merkle.Options{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close(ctx)
	gc, err := wal.NewCollector(log, wal.CollectorOptions{Redo: func() uint64 { return live.Index().SafeTruncateIndex() }}, logger)
	if err != nil {
		t.Fatal(err)
	}
	const keep = wal.DefaultCollectKeep
	for i := range 3000 {
		if err := log.Put(ctx, &storage.Entry{Key: fmt.Sprintf("logical/test/k%04d", i), Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	x := live.Index()
	if err := x.WaitApplied(ctx, log.LastIndex()); err != nil {
		t.Fatal(err)
	}
	// Before a full flush the redo point holds the collector back.
	if floor, err := gc.Collect(ctx); err != nil || (floor > 0 && floor+keep > x.SafeTruncateIndex()) {
		t.Fatalf("collect before a full flush: floor %d, safe %d, %v", floor, x.SafeTruncateIndex(), err)
	}
	if _, err := x.Flush(ctx, 0); err != nil {
		t.Fatal(err)
	}
	safe := x.SafeTruncateIndex()
	floor, err := gc.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if floor == 0 || floor+keep != safe || log.FirstIndex() != floor+1 {
		t.Fatalf("after a full flush: floor %d, safe %d, first index %d; want floor = safe - %d", floor, safe, log.FirstIndex(), keep)
	}
	root := x.RootHex()
	// Recovery from the flushed pages and the truncated WAL gives the same index.
	rx, _, err := merkle.Recover(ctx, store, log, merkle.Options{}, zerolog.Nop())
	if err != nil {
		t.Fatalf("recover after WAL GC: %v", err)
	}
	if rx.RootHex() != root {
		t.Fatalf("recovered root %s, want %s", rx.RootHex(), root)
	}
}
