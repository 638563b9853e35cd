package primary

import (
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/telemetry"
)

// countShipped counts a batch the WAL stream now holds, and whether it
// carried the merkle guard (Vault's logshipper.streamWALs.guard_found and
// missing_guard).
func countShipped(b *replication.Batch) {
	telemetry.IncrCounter(telemetry.NameBatchesShipped, 1)
	if len(b.Guard) > 0 {
		telemetry.IncrCounter(telemetry.NameGuardFound, 1)
	} else {
		telemetry.IncrCounter(telemetry.NameMissingGuard, 1)
	}
}
