package secondary

import (
	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/wal"
)

// opened is one message of a group after verification: its authentic batch,
// or the event to report instead (ev non-nil).
type opened struct {
	msg   *bus.Msg
	batch *replication.Batch
	ev    Event
}

// runs cuts a group of opened messages, in stream order, into the units the
// machine handles one at a time: a message that is not an authentic batch
// alone, and runs of authentic batches that follow each other (one
// generation, each starting just after the previous one's last index). A
// run applied as one batch leaves the store as applying its batches one by
// one would, in one storage transaction. Only the last batch's guard is
// compared (a guard holds at its own batch's last index, which a run does
// not stop at): the primary guards almost every batch, so a secondary
// catching up still compares one per run, and one that keeps up every one.
func runs(items []opened) [][]opened {
	var out [][]opened
	for i, it := range items {
		if i > 0 && it.ev == nil {
			run := out[len(out)-1]
			prev := run[len(run)-1]
			if prev.ev == nil && it.batch.Generation == prev.batch.Generation && it.batch.First == prev.batch.Last+1 {
				out[len(out)-1] = append(run, it)
				continue
			}
		}
		out = append(out, []opened{it})
	}
	return out
}

// join makes one batch of a run: the range of all, their entries in order,
// the last one's guard.
func join(run []opened) *replication.Batch {
	if len(run) == 1 {
		return run[0].batch
	}
	first, last := run[0].batch, run[len(run)-1].batch
	n := 0
	for _, it := range run {
		n += len(it.batch.Entries)
	}
	j := &replication.Batch{
		ClusterID: last.ClusterID, Epoch: last.Epoch, Generation: last.Generation,
		First: first.First, Last: last.Last, Guard: last.Guard,
		Entries: make([]*wal.Entry, 0, n),
	}
	for _, it := range run {
		j.Entries = append(j.Entries, it.batch.Entries...)
	}
	return j
}
