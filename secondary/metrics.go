package secondary

import (
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/telemetry"
)

// countApplied counts an applied batch and the key and value bytes of its ops.
func countApplied(b *replication.Batch) {
	n := 0
	for _, e := range b.Entries {
		for _, op := range e.Ops {
			n += len(op.Key) + len(op.Value)
		}
	}
	telemetry.IncrCounter(telemetry.NameBatchesApplied, 1)
	telemetry.IncrCounter(telemetry.NameBytesApplied, float64(n))
}
