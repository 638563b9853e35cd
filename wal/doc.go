// Package wal is Coffer's write-ahead log: every storage write of a replicated
// or local key commits in one storage transaction together with its WAL entry,
// so the log and the data can never disagree, whatever moment the process dies.
//
// # What it owns
//
//   - The WAL entry format (below) and the meta record at "wal/meta".
//   - Index assignment: indexes start at 1, are strictly increasing and
//     gap-free, and survive restarts.
//   - Group commit: one committer goroutine gathers the writes waiting at that
//     moment (at most Options.MaxBatch) into one storage transaction, so one
//     fsync serves many writers.
//   - The key space under "wal/": nothing else may write there; Write refuses it.
//   - The recent-entries cache (recent.go): the newest entries this process
//     committed (4,096, at most 4 MiB), their values slices of the encoding
//     written (the log's own, never written after the commit), which Read serves without a storage read: every reader of a fresh entry
//     (the shipper, the merkle follower) gets the same *Entry and never
//     modifies it.
//   - The entry check (SetEntryCheck): a function of its owner's, run on every
//     write's logged ops before it is queued, that may refuse it (a replication
//     primary refuses an entry no batch can carry: ErrEntryTooLarge).
//   - Garbage collection (Collector): every Interval (default 10s) it deletes
//     the entries up to min(what merkle recovery no longer needs, the shipped
//     index) less Keep (default 1,024). Its goroutine belongs to whoever calls
//     Start (the server); Stop waits for it.
//
// # What it must never do
//
//   - See plaintext semantics. It sits below the barrier: keys are storage paths,
//     values are ciphertext it copies and never interprets.
//   - Import nats, bus, barrier, core or anything above storage. The shipper that
//     publishes entries on the bus lives in primary/ and reads through Read and
//     WaitIndex.
//   - Know its readers. The Collector learns how far the merkle index's
//     recovery and the shipper still need the log from funcs its owner passes
//     (CollectorOptions.Redo and Shipped); wal imports neither merkle nor
//     primary.
//   - Reuse or skip an index. A failed storage transaction consumes no index (the
//     next batch reuses them); an index is published only after its transaction
//     committed.
//
// # How a write flows
//
//  1. The caller (the barrier) calls Put, Delete, Transaction or Write. The ops
//     are validated and classified (Replicated, Local, Ignored) and the entry
//     body is encoded in the caller's goroutine, without index or time yet.
//  2. The write is queued and the caller waits.
//  3. The committer takes every queued write (up to MaxBatch), gives each write
//     that holds a non-ignored op the next index, stamps index, time and CRC into
//     its entry, and commits ONE storage transaction holding, in queue order:
//     each write's ops, each write's entry at "wal/logs/%020d", and "wal/meta".
//  4. On success LastIndex advances, Notify channels close and every writer
//     returns its index. On failure every writer of the batch gets the error and
//     the indexes are reused by the next batch.
//
// A write whose context ends while it is still queued is withdrawn and returns
// ctx.Err(): it will never be applied. Once the committer has taken it, the
// writer waits for that transaction's outcome and reports it truthfully.
//
// # Entry format (version 1)
//
// These constants and layouts are part of the disk and wire format (entries are
// shipped to secondaries as they are) and must not be changed; a new layout
// takes a new version byte.
//
//	+---------+------------+------------+----------+----------- ... ---+---------+
//	| version | index      | time       | op count | op 1 ... op n     | crc32c  |
//	| 1 byte  | 8 bytes BE | 8 bytes BE | uvarint  |                   | 4 BE    |
//	+---------+------------+------------+----------+----------- ... ---+---------+
//
//	op:
//	+------+-------+---------+-----+---------+-------+
//	| kind | class | key len | key | val len | value |
//	| 1    | 1     | uvarint |     | uvarint |       |
//	+------+-------+---------+-----+---------+-------+
//
// The fields:
//
//   - version is 1.
//   - index is the WAL index; time the commit time in Unix nanoseconds (int64 as
//     two's complement).
//   - kind: 1 put, 2 delete (storage.Operation); a delete carries val len 0.
//   - class: 1 replicated, 2 local, 3 ignored (the log never writes ignored ops;
//     the codec accepts them).
//   - keys are non-empty and hold no NUL byte (storage.ValidateKey).
//   - every uvarint uses its shortest form, so an encoding is canonical: decoding
//     and re-encoding gives the same bytes.
//   - crc32c is CRC-32 (Castagnoli) of every preceding byte.
//
// An entry is stored at "wal/logs/" followed by its index as 20 decimal digits,
// so keys sort in index order.
//
// # Meta format (version 1), at "wal/meta"
//
//	+---------+------------+-----------------+---------+
//	| version | last index | truncated index | crc32c  |
//	| 1 byte  | 8 bytes BE | 8 bytes BE      | 4 BE    |
//	+---------+------------+-----------------+---------+
//
// last index is the highest index ever committed; truncated index the highest
// index removed by Truncate (0 when none). Entries truncated+1..last are stored.
// A missing meta record means an empty, never-written log.
package wal
