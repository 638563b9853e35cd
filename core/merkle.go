package core

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/merkle"
)

// merkleState is the cluster's merkle index over its replicated keys and
// the follower that feeds it from the WAL. It lives below the barrier (it
// hashes ciphertext), starts at the first unseal (when the mount table, and
// so each key's class, is known) and runs until Close.
type merkleState struct {
	mu       sync.Mutex
	x        *merkle.Index
	follower *merkle.Follower
	// gcStop and gcDone own the WAL garbage collector (walgc.go), started
	// with the index and stopped at Close.
	gcStop chan struct{}
	gcDone chan struct{}
}

func (c *Core) merkleOptions() merkle.Options { return merkle.Options{} }

// startMerkle recovers the index (ARIES redo from its checkpoint) or, when
// its pages cannot be trusted, rebuilds it, then starts its flusher and its
// follower. It runs once per process.
func (c *Core) startMerkle(ctx context.Context) error {
	c.merkle.mu.Lock()
	defer c.merkle.mu.Unlock()
	if c.merkle.x != nil {
		return nil
	}
	logger := c.logger.With().Str("component", "merkle").Logger()
	x, stats, err := merkle.Recover(ctx, c.phys, c.wal, c.merkleOptions(), logger)
	if err != nil {
		logger.Warn().Err(err).Msg("merkle index cannot be recovered from its pages; rebuilding it from storage")
		if x, err = merkle.Reindex(ctx, c.phys, c.wal, c.classify, c.merkleOptions(), logger); err != nil {
			return fmt.Errorf("rebuild the merkle index: %w", err)
		}
	} else {
		logger.Info().Interface("recovery", stats).Msg("merkle index recovered")
	}
	c.installMerkleLocked(x)
	if c.merkle.gcStop == nil {
		c.merkle.gcStop, c.merkle.gcDone = make(chan struct{}), make(chan struct{})
		go c.runWALGC(c.merkle.gcStop, c.merkle.gcDone)
	}
	return nil
}

// stopWALGC stops the collector and waits for it.
func (c *Core) stopWALGC() {
	c.merkle.mu.Lock()
	stop, done := c.merkle.gcStop, c.merkle.gcDone
	c.merkle.gcStop, c.merkle.gcDone = nil, nil
	c.merkle.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

func (c *Core) installMerkleLocked(x *merkle.Index) {
	x.Start()
	f := merkle.NewFollower(x, c.wal, c.logger)
	f.Start()
	c.merkle.x, c.merkle.follower = x, f
}

// stopMerkleLocked stops the follower and the flusher; flush writes the
// dirty pages so the next start redoes nothing.
func (c *Core) stopMerkleLocked(ctx context.Context, flush bool) error {
	if c.merkle.x == nil {
		return nil
	}
	c.merkle.follower.Stop()
	var err error
	if flush {
		err = c.merkle.x.Close(ctx)
	} else {
		c.merkle.x.Stop()
	}
	c.merkle.x, c.merkle.follower = nil, nil
	return err
}

// Merkle returns the live merkle index, or nil before the first unseal.
func (c *Core) Merkle() *merkle.Index {
	c.merkle.mu.Lock()
	defer c.merkle.mu.Unlock()
	return c.merkle.x
}

// ReindexMerkle rebuilds the index from a scan of the replicated keys and
// swaps it in (sys/replication/reindex).
func (c *Core) ReindexMerkle(ctx context.Context) error {
	c.merkle.mu.Lock()
	defer c.merkle.mu.Unlock()
	if err := c.stopMerkleLocked(ctx, false); err != nil {
		return err
	}
	x, err := merkle.Reindex(ctx, c.phys, c.wal, c.classify, c.merkleOptions(), c.logger.With().Str("component", "merkle").Logger())
	if err != nil {
		return fmt.Errorf("reindex: %w", err)
	}
	c.installMerkleLocked(x)
	c.logger.Info().Str("root", x.RootHex()).Msg("merkle index rebuilt")
	return nil
}

// MerkleCheck compares the index with a full recomputation (sys/replication/merkle-check).
func (c *Core) MerkleCheck(ctx context.Context) (*merkle.CheckReport, error) {
	x := c.Merkle()
	if x == nil {
		return nil, errors.New("the merkle index is not running yet: unseal first")
	}
	return x.Check(ctx, c.wal, c.classify)
}

func (s *systemBackend) merkleEndpoints(ctx context.Context, req *logical.Request, p string) (*logical.Response, error) {
	if req.Operation != logical.UpdateOperation && req.Operation != logical.CreateOperation {
		return nil, logical.ErrUnsupportedOperation
	}
	switch p {
	case "replication/merkle-check":
		rep, err := s.c.MerkleCheck(ctx)
		if err != nil {
			return nil, err
		}
		b, err := jsonMap(rep)
		if err != nil {
			return nil, err
		}
		return &logical.Response{Data: map[string]any{"merkle_corruption_report": b}}, nil
	case "replication/reindex":
		if err := s.c.ReindexMerkle(ctx); err != nil {
			return nil, err
		}
		return &logical.Response{Data: map[string]any{"merkle_root": s.c.Merkle().RootHex()}}, nil
	}
	return nil, logical.ErrUnsupportedPath
}
