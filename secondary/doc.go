// Package secondary is the secondary side of performance replication:
// activation, the durable consumer and applier, gap detection, the full sync
// and heartbeats. docs/replication.md is the contract.
//
// # Shape
//
// Decisions live in Machine, a pure state machine in etcd raft's RawNode
// style: the driver (Secondary) feeds it Events (Started, BatchArrived,
// BatchApplied, BatchRejected, ApplyFailed, SyncDone, HeartbeatOK/Failed,
// Revoked, Stopped) and carries out the Actions it returns (StartSync,
// StartStreaming, StopStreaming, ApplyBatch, Ack, Nak). machine_test.go
// scripts it without I/O.
//
// # How the lead drives it
//
//  1. Activate(ctx, cfg, token, busURL) checks the token, connects to the
//     primary's NATS (cfg.Bus, or a connection it opens and owns), sends the
//     activate request with a fresh X25519 key and returns the opened bundle.
//  2. The lead wipes its storage (Wipe, keeping wal/ and its identity) and
//     installs bundle.RootKey in its seal/barrier.
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
//     (ErrNotActivated): activate again with a new token.
//   - The durable consumer sec_<secondary id>.
//
// # What it must never do
//
//   - See plaintext or import barrier or core: it writes ciphertext exactly as
//     the primary stores it.
//   - Apply anything it has not verified: every message is opened (signature,
//     then GCM with the cluster id) before the machine sees it; a message that
//     fails is logged, acked and dropped.
//   - Write under wal/ or an Ignored key the primary sent.
//   - Destroy state on an error reply: a "revoked" answer stops replication
//     and is reported in Status, nothing is wiped.
package secondary
