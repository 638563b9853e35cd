package core

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cofferhq/coffer/merkle"
	"github.com/cofferhq/coffer/wal"
)

// merkleState is the cluster's merkle index over its replicated keys (with
// the flusher and the follower that keep it current: merkle.Live) and the WAL
// garbage collector that truncates the log behind it. Both live below the
// barrier, start at the first unseal (when the mount table, and so each key's
// class, is known) and run until Close.
type merkleState struct {
	// mu serialises starting and stopping (merkle.Live has its own lock;
	// an activation stops the index through it directly).
	mu   sync.Mutex
	live *merkle.Live   // set by New
	gc   *wal.Collector // set at the first unseal
}

func (c *Core) merkleOptions() merkle.Options { return merkle.Options{} }

// initMerkle sets up the (stopped) index; New calls it once.
func (c *Core) initMerkle() {
	c.merkle.live = merkle.NewLive(c.phys, c.wal, c.classify, c.merkleOptions(), c.logger)
}

// startMerkle recovers or rebuilds the index and starts it (merkle.Live;
// a running index is left alone), then the WAL collector, once per process.
func (c *Core) startMerkle(ctx context.Context) error {
	c.merkle.mu.Lock()
	defer c.merkle.mu.Unlock()
	if err := c.merkle.live.Start(ctx); err != nil {
		return err
	}
	if c.merkle.gc == nil {
		gc, err := wal.NewCollector(c.wal, wal.CollectorOptions{Redo: c.merkleRedo, Shipped: c.shippedWAL}, c.logger)
		if err != nil {
			return err
		}
		c.merkle.gc = gc
		gc.Start()
	}
	return nil
}

// stopWALGC stops the collector and waits for it.
func (c *Core) stopWALGC() {
	c.merkle.mu.Lock()
	gc := c.merkle.gc
	c.merkle.gc = nil
	c.merkle.mu.Unlock()
	if gc != nil {
		gc.Stop()
	}
}

// stopMerkleLocked takes the index out of service; flush writes the dirty
// pages so the next start redoes nothing. Caller holds c.merkle.mu.
func (c *Core) stopMerkleLocked(ctx context.Context, flush bool) error {
	if flush {
		return c.merkle.live.Close(ctx)
	}
	c.merkle.live.Stop()
	return nil
}

// Merkle returns the live merkle index, or nil before the first unseal.
func (c *Core) Merkle() *merkle.Index { return c.merkle.live.Index() }

// ReindexMerkle rebuilds the index from a scan of the replicated keys and
// swaps it in (sys/replication/reindex).
func (c *Core) ReindexMerkle(ctx context.Context) error {
	c.merkle.mu.Lock()
	defer c.merkle.mu.Unlock()
	_, err := c.merkle.live.Reindex(ctx)
	return err
}

// RebuildMerkle is sys/replication/reindex's rebuild (merkle.Live.Rebuild):
// the index in service serves until the new one is swapped in. The caller
// runs it in a goroutine it stops (ctx) before Close.
func (c *Core) RebuildMerkle(ctx context.Context, opts merkle.RebuildOptions) (*merkle.RebuildResult, error) {
	return c.merkle.live.Rebuild(ctx, opts)
}

// LastMerkleReindex is when sys/replication/reindex last completed (zero:
// never recorded).
func (c *Core) LastMerkleReindex(ctx context.Context) time.Time {
	return c.merkle.live.LastReindex(ctx)
}

// MerkleCheck compares the index with a full recomputation (sys/replication/merkle-check).
func (c *Core) MerkleCheck(ctx context.Context) (*merkle.CheckReport, error) {
	x := c.Merkle()
	if x == nil {
		return nil, errors.New("the merkle index is not running yet: unseal first")
	}
	return x.Check(ctx, c.wal, c.classify)
}
