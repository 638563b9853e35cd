// Package secondary is the secondary side of performance replication:
// activation, the durable consumer and applier, gap detection, merkle sync
// (or the full listing without an index), guard checks and heartbeats.
// docs/replication.md is the contract.
//
// # Shape
//
// Decisions live in Machine (machine.go), a pure state machine in etcd raft's
// RawNode style; the driver (Secondary) observes, classifies and reports, and
// carries out the Actions the machine returns, in order (exec in driver.go).
//
//	events (facts)                              actions (effects)
//	Started, Stopped, Revoked                   StartStreaming, StopStreaming
//	BatchArrived, BatchApplied{Guard},          ApplyBatch, Ack, Nak, CheckGuard
//	  BatchRejected, ApplyFailed, GuardMismatch
//	SyncAttempt{Index}, DiffStarted,            StartSync{Floor}, RunDiff, FetchDiff,
//	  DiffCompared{RemoteApplied}, DiffDone,      RunListing{Fallback}, RetrySync{Attempt}
//	  ListingStarted, SyncFailed{Cause}, SyncDone
//	HeartbeatOK, HeartbeatFailed, FilterChanged   DropConsumer, RunAside{Acts}
//
// The machine decides: replay, gap or apply for each batch (a run of batches
// that follow each other, joined by the driver: group.go); whether a guard
// is checked; which sync method an attempt uses; whether a failed diff gives
// way to the full listing (the local index behind or needing a reindex, the
// primary without an index, merkle RPCs unanswered while heartbeats are: a
// primary from before merkle sync) or the sync retries; whether the diff's
// resume point is at or above the floor (StartSync.Floor: the stream position
// already consumed); and when to stream. The driver reports the facts: where
// an index stands, what a diff found, its errors classified by Cause, and the
// phase it entered (DiffStarted, DiffDone, ListingStarted). The files:
//
//	secondary.go  lifecycle: Config, Activate, Open, Start, Stop, Status
//	activate.go   the activation exchange (protocol 2): MACed request, signed answer
//	machine.go    the Machine, its Events, Actions and Causes
//	driver.go     exec, the consume handler: verify, apply, ack
//	guard.go      the guard checker: compares guards off the apply path,
//	              against the local index's root at each batch's write
//	group.go      runs: the batches of a delivered group applied as one
//	sync.go       sync attempts: diff, fetch, full listing, retries
//	rpc.go        authenticated RPCs, heartbeats, Forward, WaitRemoteWAL;
//	              what a heartbeat's answer starts (a resync) runs on a
//	              goroutine of its own (execAside), so heartbeats go on
//	state.go      the persisted state (replication.StateRecord) and Wipe
//	loop.go       the merkle-sync loop detector, a pure type (tested by
//	              testdata/loop/loop.txt): consecutive resyncs that streaming
//	              does not settle (a guard matching) are counted, shown in
//	              Status, logged once at the threshold, and each resync past
//	              it waits first (30 s doubling to 10 min)
//	loop_driver.go  its effects: the wait before StartSync, the log, settling
//	metrics.go    the gauges and counters this package reports (telemetry)
//
// Paths filter: the bundle, then each heartbeat's answer, name the filter
// the primary applies to this secondary (its ID is stored in the secret
// state). The durable consumer reads that filter's subject
// (replication.FilterSubject), or the WAL subject without one. A change
// (FilterChanged) drops the consumer (DropConsumer), resyncs (after the
// running sync, if any), then streams on the new subject; the drop and the
// resync run aside (RunAside: a sync may run on the consumer's goroutine,
// which cannot wait for its own consumer to stop).
//
// Status: Connected is true while the primary answered within two heartbeat
// intervals; Lag is replication.LagOf of the primary's commit time of the
// newest entry applied here (batches carry each entry's commit time).
//
// machine_test.go and the scripts in testdata/*.txt (script_test.go, etcd
// raft's datadriven style; -rewrite regenerates the expected output) drive the
// machine by hand, without I/O.
//
// # Sync
//
// On activation, a gap, or a guard mismatch (after applying a guarded batch,
// once the local index applied that write, the local root differs from the
// guard), with a local merkle index (Config.Merkle):
//
//	merkle-diff   wait for the local index to apply the local WAL; merkle.Diff
//	              against the primary's index over the "merkle" RPC
//	merkle-sync   fetch the added and changed keys' values ("fetch", pages of
//	              about 1 MiB), delete the deleted keys, each page one WAL
//	              write (the Follower updates the local index); progress in
//	              Status.SyncKeysDone of SyncTotalKeys; last_remote_wal = the
//	              primary index's Applied at round 1 (RemoteApplied)
//	stream-wals   batches up to it are skipped, later ones re-applied
//
// Without an index, or when the local index cannot serve (behind its WAL,
// needing a reindex), or the primary has none (CodeNoMerkle) or does not serve
// merkle, or its index lags the stream position already consumed: state
// "sync", the full listing. Guards of batches ending before the sync's
// GuardFrom (the primary's WAL index after the last fetched value) are not
// compared: the sync may have written values newer than them. A failed attempt
// is retried with backoff (internal/backoff: 250 ms doubling to 5 s) until it
// succeeds, the secondary stops, or the primary answers "revoked".
//
// # How the lead drives it
//
//  1. Redeem(ctx, cfg, claims, busURL) (or Activate, which parses the token
//     and runs Redeem then Resume) connects to the
//     primary's NATS (cfg.Bus, or a connection it opens and owns), sends the
//     activation request (its id, the token's jti, a fresh X25519 key and a
//     nonce, MACed with the token's activation secret: never the token), and
//     returns a Redemption once the primary's signed answer to that request
//     arrives. It fails only on the primary's signed refusal or at its
//     deadline: forged answers are ignored, so the caller wipes only for the
//     real primary. Resume opens the Redemption's bundle (now, or after a
//     restart) and returns the Secondary, not started.
//  2. The lead wipes its storage (Wipe, keeping wal/ and its identity) and
//     installs bundle.RootKey in its seal/barrier. Wipe deletes the merkle
//     pages too: the lead rebuilds the index (merkle.Reindex) before Start.
//  3. Start runs the first full sync (which brings core/keyring: OnApplied
//     tells the lead to reload it), stores the secret state in cfg.State, then
//     streams. After a restart, Open + Start resume from the stored state.
//
// # What it owns
//
//   - cfg.StateKey (raw, class Ignored, default core/replication/secondary/state):
//     {"v":1,"last_remote_wal":N}, written in the same WAL write (one storage
//     transaction) as every applied batch and the last step of every sync.
//   - cfg.State "state" (a barrier view: it holds keys): the bundle minus the
//     root key, the bus URL, and the replication keys by epoch. It is written
//     once the first full sync ends, because before it the barrier has no
//     keyring; a crash before that leaves the cluster not activated
//     (ErrNotActivated). The lead keeps what it needs to start again without
//     the token: Redeem's Redemption, which Resume opens (replmode stores it
//     encrypted in its activation record).
//   - The durable consumer sec_<secondary id>.
//
// # What it must never do
//
//   - See plaintext or import barrier or core: it writes ciphertext exactly as
//     the primary stores it, and carries a forwarded write (Forward) only as
//     the bytes package forwarder encoded, sealed with its RPC key.
//   - Apply anything it has not verified: every message is opened (signature,
//     then GCM with the cluster id) before the machine sees it; a message that
//     fails is logged, acked and dropped.
//   - Write under wal/ or an Ignored key the primary sent, or a local key
//     unless it is a DR secondary (Config.DR).
//   - Apply a batch of an older generation than the newest seen, or continue a
//     position across generations: a newer generation forgets the position
//     and syncs (machine.go).
//   - Act on a reply it has not authenticated. Every RPC waits past replies
//     that do not open as the primary's answer to that request (sealed with
//     the RPC key, or signed with the signing key for its digest): garbage,
//     replays and forged errors from strangers on the bus. Only an
//     authenticated "revoked" (replication.IsRevoked) stops replication,
//     the one terminal state; it is reported in Status and nothing is wiped.
package secondary
