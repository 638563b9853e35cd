package merkle

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
)

// The stages of a rebuild (Live.Rebuild), with Vault's names: they are the
// reindex_stage field of sys/replication/status.
const (
	// StageScanning lists the replicated keys (no value is read).
	StageScanning = "scanning"
	// StageBuilding reads every listed key and builds the new tree in memory
	// (Progress.Done of Progress.Total keys).
	StageBuilding = "building"
	// StageWALReplay applies the WAL written since the scan began.
	StageWALReplay = "wal-replay"
	// StageCommit takes the index in service out, writes the new pages (not
	// with SkipFlush) and puts the new index in service.
	StageCommit = "commit"
)

// reindexedKey holds when the index was last rebuilt: 8 bytes, unix seconds,
// big endian. merkle/ is Ignored: never logged nor replicated.
const reindexedKey = "merkle/reindexed"

// rebuildMarkerKey exists while a rebuild with SkipFlush has pages left to
// write: Recover refuses to use the stored pages while it does (they are the
// old ones), so a crash before the flusher wrote them all rebuilds the index
// at the next start instead of trusting them.
const rebuildMarkerKey = "merkle/rebuild-pending"

// MaxDiffKeys bounds the keys a RebuildDiff names.
const MaxDiffKeys = 20

// Progress is a running rebuild's stage and count, written by the rebuild
// and read by status; safe for concurrent use. The zero value is ready.
type Progress struct {
	mu          sync.Mutex
	stage       string
	done, total int
}

func (p *Progress) set(stage string, done, total int) {
	p.mu.Lock()
	p.stage, p.done, p.total = stage, done, total
	p.mu.Unlock()
}

// Snapshot returns the stage ("" before the first) and, while building, the
// keys read so far of those listed.
func (p *Progress) Snapshot() (stage string, done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stage, p.done, p.total
}

// RebuildOptions are sys/replication/reindex's parameters, as Live.Rebuild
// reads them.
type RebuildOptions struct {
	// Diff compares the rebuilt index with the one in service key by key
	// before the swap and reports what differed (RebuildResult.Diff): the
	// keys the old index had wrong. Slower: both trees are brought to the same
	// WAL index and every differing bucket is walked.
	Diff bool
	// SkipFlush puts the new index in service without writing its pages: the
	// flusher writes them in the background, and the tree is held only for
	// the swap. Until they are all written a marker key makes the next start
	// rebuild the index rather than load the old pages.
	SkipFlush bool
	// Progress, when set, receives the stage and the building count.
	Progress *Progress
}

// RebuildDiff is what a rebuild with Diff found: how the index it replaced
// differed from the data.
type RebuildDiff struct {
	// Missing counts keys in storage the old index did not hold; Changed
	// keys it held with another value; Stale the items it held for keys no
	// longer in storage.
	Missing int `json:"missing"`
	Changed int `json:"changed"`
	Stale   int `json:"stale"`
	// Keys names up to MaxDiffKeys of the missing and changed keys (never a
	// value).
	Keys []string `json:"keys"`
}

// Total is the number of differences.
func (d *RebuildDiff) Total() int { return d.Missing + d.Changed + d.Stale }

// RebuildResult describes a finished rebuild.
type RebuildResult struct {
	Root    string        // the new root, hex
	Keys    int           // replicated keys indexed
	Applied uint64        // the WAL index it reflected when put in service
	Pages   int           // pages written (or left to the flusher with SkipFlush)
	Diff    *RebuildDiff  // with RebuildOptions.Diff (nil without an index in service)
	Took    time.Duration // scanning to commit
	At      time.Time     // when it was put in service
}

// listReplicated lists the replicated keys of store, skipping Ignored folders
// whole (as Scan does), without reading a value.
func listReplicated(ctx context.Context, store storage.Backend, classify func(string) wal.Class) ([]string, error) {
	if classify == nil {
		classify = wal.DefaultClassify
	}
	enter := func(folder string) bool { return classify(folder) != wal.Ignored }
	var keys []string
	err := storage.WalkFolders(ctx, store, "", "", enter, func(key string) (bool, error) {
		if classify(key) == wal.Replicated {
			keys = append(keys, key)
		}
		return true, nil
	})
	return keys, err
}

// buildTracked is build (with every key kept) in two passes, reporting
// progress: list the keys, then read each one, then redo the WAL written
// since the listing began. The result reflects the WAL's last index at the
// end of the replay.
func buildTracked(ctx context.Context, l *Live, l0 uint64, p *Progress) (*Index, error) {
	x, err := New(l.store, l.opts, l.indexLogger())
	if err != nil {
		return nil, err
	}
	x.applied, x.changed = l0, l0
	p.set(StageScanning, 0, 0)
	keys, err := listReplicated(ctx, l.store, l.classify)
	if err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	for i, k := range keys {
		if i%256 == 0 {
			p.set(StageBuilding, i, len(keys))
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		e, err := l.store.Get(ctx, k)
		if err != nil {
			return nil, fmt.Errorf("build: get %q: %w", k, err)
		}
		if e != nil { // else deleted since the listing: the WAL says so too
			x.update(k, e.Value, false, l0)
		}
	}
	p.set(StageBuilding, len(keys), len(keys))
	p.set(StageWALReplay, 0, 0)
	if err := x.redo(ctx, l.log, l.log.LastIndex(), nil, nil); err != nil {
		return nil, fmt.Errorf("wal replay: %w", err)
	}
	return x, nil
}

// writeAllPages writes the page of every bucket that holds items (pageLSN =
// the index's applied LSN), deletes the stored page of every bucket now
// empty, then the checkpoint, in transactions the store accepts, and leaves
// x clean. Every item's key must be pending (a fresh build). It returns the
// pages written and deleted.
func (x *Index) writeAllPages(ctx context.Context, store storage.Transactional) (pages, deleted int, err error) {
	x.flushMu.Lock()
	defer x.flushMu.Unlock()
	x.mu.Lock()
	defer x.mu.Unlock()
	ids, err := x.bucketsToWrite(ctx, store)
	if err != nil {
		return 0, 0, err
	}
	l1 := x.applied
	chunk := int(chunkOf(store))
	for c := 0; ; c += chunk {
		part := ids[c:min(c+chunk, len(ids))]
		ops := make([]*storage.TxnOp, 0, len(part)+1)
		for _, b := range part {
			bk := &x.buckets[b]
			if len(bk.items) == 0 {
				ops = append(ops, &storage.TxnOp{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: pageKey(b)}})
				deleted++
				continue
			}
			keys, err := x.bucketKeys(ctx, b, bk.items, bk.pending, true)
			if err != nil {
				return pages, deleted, err
			}
			bk.pageLSN = l1
			ops = append(ops, &storage.TxnOp{Operation: storage.PutOperation,
				Entry: &storage.Entry{Key: pageKey(b), Value: encodePage(b, l1, bk.items, keys)}})
			bk.pending = nil
			pages++
		}
		done := c+chunk >= len(ids)
		if done {
			ops = append(ops, &storage.TxnOp{Operation: storage.PutOperation,
				Entry: &storage.Entry{Key: checkpointKey, Value: encodeCheckpoint(l1 + 1)}},
				&storage.TxnOp{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: rebuildMarkerKey}})
		}
		if err := store.Transaction(ctx, ops); err != nil {
			return pages, deleted, fmt.Errorf("write %d pages from %04x: %w", len(part), firstOr(part), err)
		}
		if done {
			break
		}
	}
	for b := range x.dirty {
		x.buckets[b].recLSN = 0
	}
	clear(x.dirty)
	x.noPending = false
	x.cpMu.Lock()
	x.checkpoint = l1 + 1
	x.cpMu.Unlock()
	x.logger.Info().Int("keys", x.keys).Uint64("applied", l1).Int("pages", pages).Int("stale_pages_deleted", deleted).
		Msg("merkle index rebuilt")
	return pages, deleted, nil
}

// bucketsToWrite lists, in order, the buckets a full write covers: those
// holding items and those whose stored page is stale (the bucket is empty
// now). Caller holds mu.
func (x *Index) bucketsToWrite(ctx context.Context, store storage.Backend) ([]uint32, error) {
	stored, err := storedBuckets(ctx, store)
	if err != nil {
		return nil, err
	}
	ids := make([]uint32, 0, len(stored))
	for b := range uint32(Buckets) {
		if len(stored) > 0 && stored[0] == b {
			stored = stored[1:]
		} else if len(x.buckets[b].items) == 0 {
			continue
		}
		ids = append(ids, b)
	}
	return ids, nil
}

// leaveToFlusher is writeAllPages for SkipFlush: it writes the marker, then
// marks every bucket a full write covers dirty since the index's applied
// LSN, so the flusher writes (or deletes) their pages; the checkpoint it
// writes stays at or below that LSN until they are all written, and the
// flush that writes the last of them deletes the marker. It returns the
// pages left to write.
func (x *Index) leaveToFlusher(ctx context.Context, store storage.Transactional) (int, error) {
	x.flushMu.Lock()
	defer x.flushMu.Unlock()
	x.mu.Lock()
	defer x.mu.Unlock()
	ids, err := x.bucketsToWrite(ctx, store)
	if err != nil {
		return 0, err
	}
	if err := store.Put(ctx, &storage.Entry{Key: rebuildMarkerKey, Value: binary.BigEndian.AppendUint64(nil, x.applied)}); err != nil {
		return 0, fmt.Errorf("write the rebuild marker: %w", err)
	}
	lsn := max(x.applied, 1)
	for _, b := range ids {
		x.buckets[b].recLSN = lsn
		x.dirty[b] = struct{}{}
	}
	x.rebuildLSN = lsn
	x.noPending = false
	return len(ids), nil
}

// diffIndexes compares old with x (both at the same applied LSN, neither
// changing) bucket by bucket.
func diffIndexes(old, x *Index) *RebuildDiff {
	old.mu.Lock()
	defer old.mu.Unlock()
	x.mu.Lock()
	defer x.mu.Unlock()
	old.refresh()
	x.refresh()
	d := &RebuildDiff{}
	name := func(bk *bucket, fp uint64) {
		if len(d.Keys) >= MaxDiffKeys {
			return
		}
		for _, k := range bk.pending {
			if _, f := keyHash(k); f == fp {
				d.Keys = append(d.Keys, k)
				return
			}
		}
	}
	for b := range uint32(Buckets) {
		ob, nb := &old.buckets[b], &x.buckets[b]
		if ob.hash == nb.hash {
			continue
		}
		i, j := 0, 0
		for i < len(ob.items) || j < len(nb.items) {
			switch {
			case j == len(nb.items) || (i < len(ob.items) && ob.items[i].fp < nb.items[j].fp):
				d.Stale++
				i++
			case i == len(ob.items) || nb.items[j].fp < ob.items[i].fp:
				d.Missing++
				name(nb, nb.items[j].fp)
				j++
			default:
				if ob.items[i].vh != nb.items[j].vh {
					d.Changed++
					name(nb, nb.items[j].fp)
				}
				i++
				j++
			}
		}
	}
	slices.Sort(d.Keys)
	return d
}

// readReindexed returns when the index was last rebuilt (zero: never, or
// before this was recorded).
func readReindexed(ctx context.Context, store storage.Backend) time.Time {
	e, err := store.Get(ctx, reindexedKey)
	if err != nil || e == nil || len(e.Value) != 8 {
		return time.Time{}
	}
	return time.Unix(int64(binary.BigEndian.Uint64(e.Value)), 0).UTC()
}

func writeReindexed(ctx context.Context, store storage.Backend, at time.Time) error {
	return store.Put(ctx, &storage.Entry{Key: reindexedKey, Value: binary.BigEndian.AppendUint64(nil, uint64(at.Unix()))})
}
