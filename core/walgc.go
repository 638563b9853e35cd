package core

import (
	"context"
	"time"
)

// WAL garbage collection. An entry may go once nothing needs it:
//   - the merkle index's recovery (its durable redo point: SafeTruncateIndex),
//   - the shipper, on a primary (entries not yet acknowledged by JetStream).
//
// walGCKeep more entries are kept as a margin for operators reading the log.
// Secondaries apply from the stream, not from their own WAL, and resync from
// the merkle index, so the primary's floor is the only cross-cluster one.
const (
	walGCInterval = 10 * time.Second
	walGCKeep     = 1024
)

// walGCFloor is the highest index that may be truncated now (0: none).
func (c *Core) walGCFloor() uint64 {
	x := c.Merkle()
	if x == nil {
		return 0
	}
	floor := x.SafeTruncateIndex()
	if shipped, ok := c.replication().ShippedIndex(); ok {
		floor = min(floor, shipped)
	}
	if floor <= walGCKeep {
		return 0
	}
	return floor - walGCKeep
}

// collectWAL truncates the WAL up to walGCFloor; it returns the new floor.
func (c *Core) collectWAL(ctx context.Context) (uint64, error) {
	floor := c.walGCFloor()
	if floor == 0 || floor < c.wal.FirstIndex() {
		return 0, nil
	}
	return floor, c.wal.Truncate(ctx, floor)
}

// runWALGC collects every walGCInterval until stop is closed.
func (c *Core) runWALGC(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(walGCInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), walGCInterval)
		if floor, err := c.collectWAL(ctx); err != nil {
			c.logger.Warn().Err(err).Msg("WAL garbage collection failed; retrying next interval")
		} else if floor > 0 {
			c.logger.Debug().Uint64("through", floor).Msg("WAL entries collected")
		}
		cancel()
	}
}
