package telemetry

import "strings"

// Names, in Vault's dotted form: Vault's where Vault has one (its telemetry
// reference), Coffer's own under "coffer.". Summaries are in milliseconds.
const (
	// Requests (core). NameHandleRequest and NameHandleLoginRequest time
	// every request; RouteName names the per-mount, per-operation summary.
	NameHandleRequest      = "vault.core.handle_request"       // summary
	NameHandleLoginRequest = "vault.core.handle_login_request" // summary

	// The WAL.
	NamePersistWALs = "vault.wal.persistWALs"          // summary: one group commit
	NameLastWAL     = "vault.replication.wal.last_wal" // gauge

	// The merkle index.
	NameFlushDirty         = "vault.merkle.flushDirty"           // summary
	NameFlushDirtyNumPages = "vault.merkle.flushDirty.num_pages" // gauge

	// The primary: its shipper and its RPC server.
	NameGuardFound          = "vault.logshipper.streamWALs.guard_found"   // counter: batches shipped with a merkle guard
	NameMissingGuard        = "vault.logshipper.streamWALs.missing_guard" // counter: batches shipped without
	NameRPCServerForward    = "vault.replication.rpc.server.forwarding_request"
	NameRPCServerPrefix     = "vault.replication.rpc.server."            // + <kind>_request: summaries
	NameBatchesShipped      = "coffer.replication.batches_shipped"       // counter
	NameBytesShipped        = "coffer.replication.bytes_shipped"         // counter: sealed batch bytes published
	NameLastShippedWAL      = "coffer.replication.wal.last_shipped"      // gauge
	NameSecondaryLagEntries = "coffer.replication.secondary.lag_entries" // gauge{secondary}: as the primary knows it
	NameSecondaryLagSeconds = "coffer.replication.secondary.lag_seconds" // gauge{secondary}: from its last heartbeat

	// A secondary: its applier, its syncs and its RPC client.
	NameLastRemoteWAL   = "vault.replication.fsm.last_remote_wal" // gauge
	NameMerkleDiff      = "vault.replication.merkleDiff"          // summary
	NameMerkleSync      = "vault.replication.merkleSync"          // summary
	NameRPCClientPrefix = "vault.replication.rpc.client."         // + forward, stream_wals...: summaries
	NameBatchesApplied  = "coffer.replication.batches_applied"    // counter
	NameBytesApplied    = "coffer.replication.bytes_applied"      // counter: sealed batch bytes applied
	NameResyncs         = "coffer.replication.resyncs"            // counter: merkle syncs begun
	NameLagEntries      = "coffer.replication.lag_entries"        // gauge: primary's last_wal - last_remote_wal
	NameLagSeconds      = "coffer.replication.lag_seconds"        // gauge: age of the last applied batch's commit
	NameForward         = "coffer.forwarder.forward"              // summary: a forwarded write until applied here

	// Vault's runtime gauges.
	NameRuntimeGoroutines  = "vault.runtime.num_goroutines"
	NameRuntimeAllocBytes  = "vault.runtime.alloc_bytes"
	NameRuntimeSysBytes    = "vault.runtime.sys_bytes"
	NameRuntimeHeapObjects = "vault.runtime.heap_objects"
	NameRuntimeMallocCount = "vault.runtime.malloc_count"
	NameRuntimeFreeCount   = "vault.runtime.free_count"
	NameRuntimeGCRuns      = "vault.runtime.total_gc_runs"
	NameRuntimeGCPauseNs   = "vault.runtime.total_gc_pause_ns"

	// NameDroppedSeries counts updates of series refused past MaxSeries.
	NameDroppedSeries = "coffer.telemetry.dropped_series"
)

// RouteName is Vault's per-mount request summary, vault.route.<op>.<mount>,
// the mount's path with "/" as "-" ("secret/" -> "secret-"). Only the mount:
// a path below it may name a secret.
func RouteName(operation, mount string) string {
	return "vault.route." + operation + "." + strings.ReplaceAll(mount, "/", "-")
}

// rpcNames maps Coffer's replication RPC methods to Vault's names of the
// same calls; a method without a Vault counterpart keeps its own name.
var rpcNames = map[string]struct{ server, client string }{
	"heartbeat": {"echo", "echo"},
	"forward":   {"forwarding_request", "forward"},
	"merkle":    {"sub_page_hashes_request", "sub_page_hashes"},
	"fetch":     {"fetch_keys_request", "fetch_keys"},
	"sync":      {"stream_wals_request", "stream_wals"},
	"activate":  {"bootstrap_request", "bootstrap"},
	"key":       {"auth_request", "register_auth"},
}

// RPCServerName is the primary's summary of one RPC method:
// vault.replication.rpc.server.<Vault's name>.
func RPCServerName(method string) string {
	if n, ok := rpcNames[method]; ok {
		return NameRPCServerPrefix + n.server
	}
	return NameRPCServerPrefix + method + "_request"
}

// RPCClientName is a secondary's summary of one RPC method:
// vault.replication.rpc.client.<Vault's name>.
func RPCClientName(method string) string {
	if n, ok := rpcNames[method]; ok {
		return NameRPCClientPrefix + n.client
	}
	return NameRPCClientPrefix + method
}
