package core

// The WAL garbage collector (wal.Collector, started in startMerkle) truncates
// up to the lower of two floors, read through these two funcs.

// merkleRedo is the highest WAL index the merkle index's recovery no longer
// needs (0 before the first unseal).
func (c *Core) merkleRedo() uint64 {
	// The index in service's, or less while sys/replication/reindex builds.
	return c.merkle.live.SafeTruncateIndex()
}

// shippedWAL is the primary's last shipped index; false when this cluster is
// not a primary.
func (c *Core) shippedWAL() (uint64, bool) {
	return c.replication().ShippedIndex()
}
