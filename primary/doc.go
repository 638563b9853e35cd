// Package primary is the primary side of performance and DR replication: the
// set's generation claim (lease.go, decisions in claim.go), the WAL shipper,
// the secondary registry (activation tokens, revocation, key epochs, DR
// keys) and the RPC server secondaries call (activate, sync, heartbeat, key,
// forward, merkle, fetch). docs/replication.md is the contract.
//
// # What it owns
//
//   - The primary's replication state under Config.State (a barrier view the
//     caller provides, under core/replication/primary/): "state" holds JSON
//     {"v":1, cluster_id, signing_key, epoch, keys{epoch: key}, secondaries{id:
//     {state pending|active|revoked, jti, token_expires, activation_secret
//     (while pending), activated_by (the activating request's digest),
//     rpc_key, paths_filter {mode, paths}, ...}}};
//     "shipped" holds {"v":1,"index":N,"seq":S}, the last WAL index
//     JetStream acknowledged and the highest stream sequence seen, stored
//     lazily (every 64 batches or 1 s, and on Stop). StoredShipped reads it
//     without starting anything, for the WAL collector.
//   - The WAL stream COFFER_WAL_<cluster id>: Enable and Open provision it,
//     Disable deletes it. The shipper defends it (streamguard.go): it checks
//     the stream every 5 s and after a failed publish, and restores it when
//     missing, changed or displaced by another stream on its subject,
//     re-creating it past the highest sequence seen; Status counts repairs.
//   - The shipper goroutine: committed entries after the shipped index ->
//     batches (at most 512 entries, or 1 MiB of replicated ops and their
//     encoding, less when the server's max_payload is smaller; no linger:
//     what committed while the previous publish ran forms the next batch;
//     only replicated ops, but every entry counts in First..Last, so a batch
//     may carry none) -> SealBatchTagged (a tag per active secondary) with the current epoch -> PublishAck with
//     Nats-Msg-Id "<cluster id>-<first>-<last>-<HMAC tag>" (a key derived
//     from the signing key: nobody else can compute the id of a batch to
//     come), one batch in flight, retried with backoff (50 ms to 2 s) while
//     NATS is down, logged once per outage. A duplicate ack counts only when
//     the message it names reads back as this batch signed by this primary;
//     else the batch goes again under a fresh id. An ack from another stream
//     does not count.
//     Enable starts shipping at the WAL's last index: earlier entries reach a
//     new secondary through its full sync.
//   - Paths filters (filter.go): per distinct filter of a secondary not
//     revoked, a lane: a copy of every batch holding only the ops the
//     filter allows (replication.Filter, mounts resolved by Config.MountOf
//     and the decision kept per mount), sealed with replication.FilterKey on
//     replication.FilterSubject, published after the batch; a merkle index
//     of the allowed keys with in-memory pages (merkle.MemoryPages), built by
//     a scan when the lane starts (at start, or when a filter is written),
//     whose root guards the copies. A filtered secondary's sync, fetch,
//     merkle and key RPCs answer from its filter: allowed keys, the lane's
//     index, the filter's key, never the epoch's own. Writing a filter moves
//     to a new key epoch. WALFloor keeps the WAL the lanes still need.
//   - Guards: with Config.Merkle, before sealing a batch ending at L the
//     shipper waits (at most 2 s, and not again while a stalled index stays
//     stalled) for the index to apply L; if its Applied is then exactly L the
//     root goes with the batch as its guard, else the batch has none.
//   - merkle answers x.ServeRPC after letting the index catch up (at most
//     2 s) with the WAL committed when the request arrived, so the Applied it
//     reports is past every batch already published; fetch answers the stored
//     values of replicated keys only (anything else is reported absent).
//   - At start, when the WAL holds the stream's last batch of the stored
//     generation exactly, shipping resumes after it (walHolds): a crash
//     lost only the lazily stored shipped index, nothing went back in time.
//   - The set's generation claim: the KV bucket COFFER_GEN_<cluster id>, key
//     "primary", written by compare-and-set only. Nothing is shipped or
//     answered before the claim is held (whileHolding); a newer claim fences
//     the primary for good (stored in "state": it survives restarts) and its
//     writes are refused (Fenced). TakeOver starts a promoted DR secondary
//     from its copy of the primary state and claims the next generation.
//   - DR: with DR on ("state" dr, dr_keys), batches carry a DR section of
//     the local ops; DR secondaries get the DR key, local keys in sync and
//     fetch, and the primary state in their bundle and heartbeat replies.
//   - Activation tokens: ttl 30 m by default, at most Config.MaxTokenTTL
//     (24 h unless configured); a longer one is refused (ErrTokenTTL).
//   - The RPC handlers (activate.go, rpc.go), each a plain subscription of the
//     active node. activate (protocol 2) checks the request's MAC under the
//     pending token's activation secret and answers, signed with the signing
//     key and bound to the request's digest, the bundle sealed to the
//     request's X25519 key or a refusal; the same request again gets the same
//     answer. Every other request is sealed with the secondary's RPC key; a
//     revoked or unknown secondary gets a "revoked" / "unknown_secondary"
//     error signed for that request; a request that does not authenticate or
//     is a replay gets a plain (unauthenticated) error, which secondaries
//     ignore.
//
// # What it must never do
//
//   - See plaintext or import barrier or core: it moves ciphertext as stored
//     (Raw) and its own state through the view it is given. A forwarded write
//     reaches it opened from the secondary's sealed RPC but still encoded by
//     package forwarder: it hands the bytes to Config.Forward undecoded.
//   - Block a writer: entries wait in the WAL's storage while NATS is away.
//   - Truncate the WAL (wal.Collector does, reading the shipped index) or
//     write under wal/.
//
// Every goroutine it starts (the shipper; the RPC subscriptions through
// bus.Serve; each lane's flusher and Follower, through merkle.Live) ends in
// Stop, which waits for them.
package primary
