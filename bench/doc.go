// Package bench owns the measurements of `coffer bench`: the load
// generators, the probes, the percentiles, and the NATS anchors that put a
// plain NATS figure beside every Coffer figure.
//
// # The measurements
//
// Run (run.go) starts a replication set itself (set.go: a primary and two
// performance secondaries, each a `coffer server` process on loopback, with
// inmem or bolt storage and the primary's NATS embedded) and measures, per
// storage: write throughput and the primary's CPU time per 1,000 writes with
// replication off and with two secondaries; replication lag at given write
// rates (load.go: an open-loop load plus a probe that writes a marker on the
// primary every 10 ms and polls each secondary until it serves it);
// forwarded against direct write latency; catch-up from a backlog
// (coffer.go: one secondary frozen while the primary writes, then the time
// until its last_remote_wal reaches the primary's last_wal); transit encrypt
// and decrypt per second on the primary and on a secondary, beside
// AES-256-GCM in process (transit.go). The CPU times
// come from /proc (cpu.go), stable where wall-clock figures on a shared
// machine are not.
//
// # The NATS anchors
//
// A Coffer figure alone says little: 1 ms of replication lag is good or bad
// only next to what the machine and the network allow. The anchors measure
// the same thing done by NATS alone, in the same process, on the same disk,
// so that the report can print both side by side:
//
//   - [Mirror] is the anchor of replication lag. A KV bucket on one embedded
//     JetStream server (the hub, standing for the primary) is mirrored to a
//     second embedded JetStream server (the leaf, standing for a secondary)
//     across a leafnode connection on loopback. A probe writes with
//     [Mirror.Put] and polls [Mirror.Has] until the leaf holds the key: the
//     time between is NATS's own replication lag.
//   - [ConsumeRate] is the anchor of catch-up: how fast an ordered consumer
//     reads back a stream already on disk, which bounds how fast a secondary
//     fed by JetStream could catch up.
//
// Both run nats-server in process with its defaults for storage and sync
// (file storage, fsync on its own interval), with its log suppressed. Every
// server and connection they start is stopped before they return
// (ConsumeRate) or by Close (Mirror); the store directories belong to the
// caller and are never removed.
//
// # What this package must never do
//
// It is never imported by the server's packages: it measures Coffer from the
// outside and nothing in production may depend on it. It never asserts times:
// no test or check here fails because something was slow; it reports the
// figures and leaves judging them to the reader.
package bench
