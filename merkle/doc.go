// Package merkle is Coffer's merkle index over the replicated keys: the
// structure two clusters compare to find, in a few round trips, exactly the
// keys on which they differ (merkle sync), and the ARIES-style machinery that
// keeps it correct across crashes although its pages are flushed lazily.
// Recovery, reindex and check live here too (not in a separate recovery/
// package): they need the page format and the tree's internals.
//
// # What it owns
//
//   - The key space under "merkle/": "merkle/pages/<bucket, 4 hex digits>" and
//     "merkle/checkpoint". wal.DefaultClassify makes it Ignored: never logged,
//     never shipped.
//   - The tree, the page and checkpoint formats, and the sync RPC messages.
//   - The index's lifecycle on a server (Live): recovery, or a reindex when
//     recovery fails, at start; the flusher and Follower goroutines, started
//     and stopped together; the swap to a rebuilt index.
//
// # What it must never do
//
//   - See plaintext, or import bus, nats, barrier or core: it hashes keys and
//     ciphertext exactly as stored, and moves encoded messages through a Source.
//   - Read another key's value on an update. An update reads nothing at all.
//   - Truncate the WAL. It reports how far recovery needs it
//     (SafeTruncateIndex); wal.Collector, started by the server, truncates.
//   - Leave a goroutine running: the flusher and the Follower each have a Stop
//     that waits, and Live stops both.
//
// # The tree
//
// Fan-out 16, 4 interior levels, 65,536 leaf buckets. A key's bucket is the
// first 16 bits of SHA-256(key), its fingerprint the next 64 bits.
//
//	level 0            [root node]                  1 node   the root = its hash
//	level 1        [16 nodes]                      16
//	level 2       [256 nodes]                     256
//	level 3      [4,096 nodes]                  4,096   parents of the buckets
//	buckets   [65,536 leaf buckets]            65,536   at 1M keys ~15 items each
//
//	item hash   = SHA-256(0x03 | uvarint len(key) | key | ciphertext)[:16]
//	bucket hash = SHA-256(0x01 | count(8 BE) | (fingerprint(8 BE) | item hash(16)) per item, by fingerprint)
//	              or 32 zero bytes for an empty bucket
//	node hash   = SHA-256(0x02 | 16 child hashes), or zero when every child is zero
//
// Why this size: 65,536 buckets keep a bucket small at a million keys (a diff
// lists ~15 items per differing bucket), the interior holds 4,369 nodes (140
// KiB, sent whole down to level 2 in the first round), and in memory an item
// is 24 bytes (fingerprint and item hash; the key stays on its stored page):
// about 40 MiB of heap at 1,000,000 keys. More buckets would cost heap and a
// bigger first round; fewer would make listings long.
//
// An update (Apply, Put, Delete) finds the item by fingerprint in its bucket
// (binary search, no storage read, no old value needed), replaces it, and
// marks the bucket and its 4 ancestors stale. Root, Page and Serve recompute
// the stale hashes lazily: one bucket hash and 4 node hashes per touched
// path, shared by every update since the last read.
//
// # Pages on disk, flushing, checkpoint (ARIES)
//
// Only the buckets are stored, one page each; interior nodes are derived on
// load. A page holds every item of its bucket with its key:
//
//	+---------+-----------+------------+---------+------------------------+---------------------------+---------+
//	| version | bucket    | pageLSN    | count n | n × (fp 8 BE | vh 16)  | n × (uvarint len | key)   | crc32c  |
//	| 1 (=1)  | 4 BE      | 8 BE       | uvarint | sorted by fp, unique   | same order as the items   | 4 BE    |
//	+---------+-----------+------------+---------+------------------------+---------------------------+---------+
//
// pageLSN is the WAL index of the last update the page reflects; crc32c
// (Castagnoli) covers every preceding byte. An empty bucket has no page: a
// flush or a reindex that empties a bucket deletes its page, and an absent
// page is read as the empty bucket (its hash, zero, is computed, never
// stored) with pageLSN 0, so redo replays every op on it from the redo point.
// An empty or small store thus has a handful of pages, not 65,536: loading
// lists the page prefix (one List) and reads only the pages there.
//
//	checkpoint: | version 1 (=1) | fan-out 1 (=16) | depth 1 (=4) | redo point 8 BE | crc32c 4 BE |
//
// In memory each dirty bucket remembers recLSN (the first LSN that dirtied it
// since its last flush) and its pending keys (the keys changed since then: the
// stored page lacks them). The flusher goroutine (Start/Stop) flushes every
// FlushInterval at most FlushPages dirty pages, oldest recLSN first; a flush
// reads the stored page for the keys of the unchanged items, writes the new
// page and, in the same storage transaction, the checkpoint:
//
//	redo point R = min(recLSN of the pages still dirty, Applied+1)
//
// so the redo point only counts pages already durable. SafeTruncateIndex is
// R-1 of the durable checkpoint: the WAL up to it may be deleted.
//
// # Recovery
//
//  1. Read the checkpoint: R (no checkpoint: R = 1).
//  2. List the page prefix and load every stored page: items and pageLSN
//     (the keys are skipped). A bucket without a page is empty, pageLSN 0.
//  3. Read the WAL from R to its last index; apply each replicated op whose
//     entry index is greater than its page's pageLSN.
//
// Redo needs no old value: a page keys its items by fingerprint, so "key k now
// holds ciphertext v" (or "k is gone") is idempotent and replaces whatever the
// page held. Entries are applied atomically (a flush sees whole entries), so a
// page at pageLSN P reflects exactly the updates up to P. If the WAL no longer
// holds R, a page fails its CRC, or the geometry changed, Recover returns
// ErrReindexRequired and the caller runs Reindex: a fuzzy scan of the
// replicated keys followed by redo of the WAL written meanwhile, the page of
// every bucket holding items written with pageLSN = the last index, the stored
// page of every bucket now empty deleted (a List tells which exist), the
// checkpoint last (a crash midway leaves the old checkpoint, still correct for
// every page, rewritten, deleted or untouched). Check compares the
// index with such a recomputation at the same LSN, and every stored page with
// memory, in Vault's merkle_corruption_report shape.
//
// # Sync (diff)
//
// The secondary drives Diff against a Source (the primary's Serve over NATS):
//
//	round 1: request  known root + pages of levels 0,1,2 (273 pages)
//	         response root + applied; the pages only if the roots differ (~137 KiB)
//	         -> compare the 4,096 level-3 node hashes
//	round 2: pages (3, i) of the differing level-3 nodes (512 bytes each)
//	         -> compare bucket hashes
//	round 3: the differing buckets' items (value hash 16 + key each)
//	         -> added / changed / deleted keys, exactly
//	round 4: (the caller) fetch the values of added and changed keys
//
// Request (version 1):
//
//	| version 1 | flags 1 (bit 0: known root) | [root 32] | uvarint n | n × (level 1 | uvarint index) | uvarint m | m × uvarint bucket |
//
// Response (version 1):
//
//	| version 1 | root 32 | applied 8 BE | uvarint n | n × page | uvarint m | m × bucket |
//	page:   0 (every child empty) | 1 followed by 16 × hash 32
//	bucket: uvarint bucket | uvarint k | k × (value hash 16 | uvarint key len | key)
//
// Every uvarint is in its shortest form, so each encoding is canonical; every
// decoder checks the version byte first, bounds every count by the bytes left,
// and refuses a key listed under a bucket it does not hash to.
//
// # How the server wires it
//
//  1. At start: live := NewLive(store, log, classify, opts, logger) and
//     live.Start(ctx) (or Open, which does both): Recover, on any error
//     Reindex; then x.Start() and NewFollower(x, log).Start(). The Follower is
//     the index's single applier.
//  2. live.Index() is the index in service (nil while stopped). Reindex swaps
//     it, so other components hold a func returning it, not the pointer.
//  3. Status: x.RootHex() is merkle_root. The shipper's guard for a batch
//     ending at WAL index L is the root once x.Applied() == L; State returns
//     root and Applied together.
//  4. WAL GC: a wal.Collector with Redo = x.SafeTruncateIndex (and the
//     shipper's acknowledged index on a primary) truncates at most to their
//     minimum, less a margin.
//  5. RPC: the primary's handler answers x.ServeRPC(req); the secondary calls
//     Diff(x, source) and fetches the values.
//  6. sys/replication/reindex: live.Rebuild(ctx, opts) builds a new index
//     while the one in service serves (stages scanning, building,
//     wal-replay, commit, reported through a Progress), then swaps it in;
//     live.Reindex(ctx) (an activation's wipe) stops the index in service,
//     rebuilds it and starts the new one.
//  7. A narrower index: Options.Keep skips the WAL ops of keys it does not
//     keep (the Live's classify must make them Ignored for the scan), and
//     MemoryPages keeps the pages of such an index in memory while it reads
//     the data from the store: the primary's view of a paths filter.
//  8. Shutdown: stop the collector, then live.Close(ctx): it stops the
//     Follower, then the flusher, and flushes everything, so the next start
//     redoes nothing.
//
// # Why recovery is not a package of its own
//
// The design lists a recovery/ package for the ARIES-style redo. It is a file
// of this package instead (recovery.go, with Reindex and Check), because redo
// is part of the index rather than a client of it: it decodes the checkpoint
// and the pages, installs each bucket's items and pageLSN, and applies WAL ops
// below the public API under a per-page rule (an op is redone only past its
// page's pageLSN, not past Applied), while Reindex writes pages under the
// flusher's lock. A separate package would need merkle to export its page
// format, its buckets and an unchecked update path, the very invariants that
// make lazily flushed pages trustworthy, for a single caller that must change
// whenever they do (a new page version is a new redo). One package keeps the
// format unexported and the invariants in one place. The boundary that
// matters holds anyway: merkle never truncates the WAL, and wal, which does,
// learns the redo point through a func without importing merkle.
package merkle
