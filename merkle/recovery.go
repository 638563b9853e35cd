package merkle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
	"github.com/rs/zerolog"
)

// redoBatch is how many WAL entries one Read returns during redo.
const redoBatch = 1024

// RecoveryStats reports what Recover did.
type RecoveryStats struct {
	// RedoPoint is the checkpoint's redo point: the first WAL index read.
	RedoPoint uint64
	// PagesLoaded is the number of stored pages read.
	PagesLoaded int
	// EntriesRead is the number of WAL entries read from the redo point.
	EntriesRead int
	// OpsRedone is the number of replicated ops applied (those past their
	// page's pageLSN); OpsSkipped those already reflected by their page.
	OpsRedone, OpsSkipped int
	// Duration is the time Recover took.
	Duration time.Duration
}

// Recover rebuilds the index after a restart or a crash, ARIES style: it reads
// the checkpoint (the redo point R), loads every stored page with its
// pageLSN, then reads the WAL from R to its last index and applies each
// replicated op whose entry index is past its page's pageLSN. Redo needs no
// old value: a page holds its bucket's items by key fingerprint, so applying
// "key now holds value V" (or "key is gone") is idempotent.
//
// It returns an error wrapping ErrReindexRequired when that cannot work (the
// WAL was truncated past R, a page is corrupt, the geometry changed): the
// caller then runs Reindex. The returned index is not started: call Start,
// and start a Follower from its Applied().
func Recover(ctx context.Context, store storage.Transactional, log *wal.Log, opts Options, logger zerolog.Logger) (*Index, RecoveryStats, error) {
	start := time.Now()
	var st RecoveryStats
	x, err := New(store, opts, logger)
	if err != nil {
		return nil, st, err
	}
	redo := uint64(1)
	cp, err := store.Get(ctx, checkpointKey)
	if err != nil {
		return nil, st, fmt.Errorf("recover merkle: read checkpoint: %w", err)
	}
	if cp != nil {
		if redo, err = decodeCheckpoint(cp.Value); err != nil {
			return nil, st, fmt.Errorf("recover merkle: %w (%w)", ErrReindexRequired, err)
		}
	}
	st.RedoPoint = redo
	if m, err := store.Get(ctx, rebuildMarkerKey); err != nil {
		return nil, st, fmt.Errorf("recover merkle: read the rebuild marker: %w", err)
	} else if m != nil {
		return nil, st, fmt.Errorf("recover merkle: %w: a reindex with skip_flush stopped before its pages were all written", ErrReindexRequired)
	}
	last := log.LastIndex()
	if redo > last+1 {
		return nil, st, fmt.Errorf("recover merkle: %w: redo point %d is past the WAL's last index %d", ErrReindexRequired, redo, last)
	}
	if redo <= last && redo < log.FirstIndex() {
		return nil, st, fmt.Errorf("recover merkle: %w: the WAL was truncated up to %d, recovery needs it from %d", ErrReindexRequired, log.FirstIndex()-1, redo)
	}
	stored, err := storedBuckets(ctx, store)
	if err != nil {
		return nil, st, fmt.Errorf("recover merkle: %w", err)
	}
	diskLSN := make([]uint64, Buckets) // an absent page is the empty page, pageLSN 0
	for i, b := range stored {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, st, err
			}
		}
		e, err := store.Get(ctx, pageKey(b))
		if err != nil {
			return nil, st, fmt.Errorf("recover merkle: read page %04x: %w", b, err)
		}
		if e == nil {
			continue
		}
		p, err := decodePage(e.Value, b, false)
		if err != nil {
			return nil, st, fmt.Errorf("recover merkle: page %04x: %w (%w)", b, ErrReindexRequired, err)
		}
		if p.lsn > last {
			return nil, st, fmt.Errorf("recover merkle: %w: page %04x reflects WAL index %d, past the WAL's last index %d (storage rolled back?)", ErrReindexRequired, b, p.lsn, last)
		}
		st.PagesLoaded++
		bk := &x.buckets[b]
		bk.items, bk.pageLSN = p.items, p.lsn
		diskLSN[b] = p.lsn
		x.keys += len(p.items)
		x.markStale(b)
	}
	x.applied, x.changed = redo-1, redo-1
	x.checkpoint = redo
	if cp == nil {
		x.checkpoint = 0
	}
	if err := x.redo(ctx, log, last, diskLSN, &st); err != nil {
		return nil, st, fmt.Errorf("recover merkle: %w", err)
	}
	x.refresh()
	st.Duration = time.Since(start)
	x.logger.Info().Uint64("redo_point", redo).Int("pages", st.PagesLoaded).Int("entries", st.EntriesRead).
		Int("ops_redone", st.OpsRedone).Dur("took", st.Duration).Msg("merkle index recovered")
	return x, st, nil
}

// redo applies the WAL entries after x.applied up to upTo. With skip, an op is
// applied only when its entry index is past skip[bucket] (the stored pageLSN).
func (x *Index) redo(ctx context.Context, log *wal.Log, upTo uint64, skip []uint64, st *RecoveryStats) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	for x.applied < upTo {
		entries, err := log.Read(ctx, x.applied, int(min(upTo-x.applied, redoBatch)))
		if errors.Is(err, wal.ErrTruncated) {
			return fmt.Errorf("%w: %w", ErrReindexRequired, err)
		}
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			return fmt.Errorf("%w: WAL entry %d is missing", ErrReindexRequired, x.applied+1)
		}
		for _, e := range entries {
			if st != nil {
				st.EntriesRead++
			}
			for i := range e.Ops {
				op := &e.Ops[i]
				if !x.keeps(op) {
					continue
				}
				if skip != nil && e.Index <= skip[BucketOf(op.Key)] {
					if st != nil {
						st.OpsSkipped++
					}
					continue
				}
				if st != nil {
					st.OpsRedone++
				}
				x.update(op.Key, op.Value, op.Kind == storage.DeleteOperation, e.Index)
			}
			x.advance(e.Index)
		}
	}
	return nil
}

// Scan calls fn for every replicated key in store with its value, walking the
// key space with List. Folders whose prefix classifies as Ignored (wal/,
// merkle/, core/replication/) are skipped whole.
func Scan(ctx context.Context, store storage.Backend, classify func(string) wal.Class, fn func(key string, value []byte) error) error {
	if classify == nil {
		classify = wal.DefaultClassify
	}
	enter := func(folder string) bool { return classify(folder) != wal.Ignored }
	return storage.WalkFolders(ctx, store, "", "", enter, func(key string) (bool, error) {
		if classify(key) != wal.Replicated {
			return true, nil
		}
		e, err := store.Get(ctx, key)
		if err != nil {
			return false, fmt.Errorf("get %q: %w", key, err)
		}
		if e == nil {
			return true, nil // deleted since the List
		}
		return true, fn(key, e.Value)
	})
}

// build scans store and redoes the WAL written meanwhile: the result reflects
// exactly WAL index log.LastIndex() at the end. A fuzzy scan is enough: every
// write after the scan began is in the WAL with its whole value, so replaying
// them in order fixes every key the scan saw in an intermediate state.
func build(ctx context.Context, store storage.Transactional, log *wal.Log, classify func(string) wal.Class, keepKeys bool, opts Options, logger zerolog.Logger) (*Index, error) {
	x, err := New(store, opts, logger)
	if err != nil {
		return nil, err
	}
	x.noPending = !keepKeys
	l0 := log.LastIndex()
	x.applied, x.changed = l0, l0
	err = Scan(ctx, store, classify, func(key string, value []byte) error {
		x.update(key, value, false, l0)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	if err := x.redo(ctx, log, log.LastIndex(), nil, nil); err != nil {
		return nil, fmt.Errorf("redo after scan: %w", err)
	}
	for b := range x.dirty {
		x.buckets[b].recLSN = 0
	}
	clear(x.dirty)
	x.refresh()
	return x, nil
}

// Reindex rebuilds the index from a full scan of the replicated keys plus the
// WAL written during the scan, writes the page of every bucket that holds
// items (pageLSN = the last WAL index it reflects), deletes the stored page of
// every bucket now empty, then writes the checkpoint, and returns the new
// index, clean. An empty bucket has no page, so an empty or small store
// writes a handful of pages, not 65,536. Stop the old index (and its
// Follower) first; writes may continue: start a Follower on the new index
// from its Applied(). A crash in the middle leaves the previous checkpoint in
// force, which stays correct for every page: a rewritten page reflects its
// bucket at the last index, a deleted one its empty bucket at that index, and
// an absent page counts as empty with pageLSN 0, whose redo replays every op
// past the checkpoint.
func Reindex(ctx context.Context, store storage.Transactional, log *wal.Log, classify func(string) wal.Class, opts Options, logger zerolog.Logger) (*Index, error) {
	x, err := build(ctx, store, log, classify, true, opts, logger)
	if err != nil {
		return nil, fmt.Errorf("reindex merkle: %w", err)
	}
	if _, _, err := x.writeAllPages(ctx, store); err != nil {
		return nil, fmt.Errorf("reindex merkle: %w", err)
	}
	return x, nil
}

func firstOr(ids []uint32) uint32 {
	if len(ids) == 0 {
		return 0
	}
	return ids[0]
}

// storedBuckets lists the buckets that have a page in store, in order: one
// List of the page prefix, so that loading reads only the pages that exist
// (an empty bucket has none). A name there that is no page is skipped.
func storedBuckets(ctx context.Context, store storage.Backend) ([]uint32, error) {
	names, err := store.List(ctx, pagePrefix)
	if err != nil {
		return nil, fmt.Errorf("list pages: %w", err)
	}
	out := make([]uint32, 0, len(names))
	for _, n := range names {
		if b, ok := parseBucket(n); ok {
			out = append(out, b)
		}
	}
	slices.Sort(out)
	return out, nil
}

// CheckReport is the value of Vault's "merkle_corruption_report" in the
// response of sys/replication/merkle-check, with Vault's field names.
type CheckReport struct {
	// CorruptedRoot is true when the root differs from a full recomputation.
	CorruptedRoot bool `json:"corrupted_root"`
	// CorruptedTreeMap holds one entry per tree: "1" is the replicated tree
	// (Coffer keeps no local tree: performance replication does not need it).
	CorruptedTreeMap map[string]TreeReport `json:"corrupted_tree_map"`
	// LastCorruptionCheckEpoch is when the check ran (RFC 3339).
	LastCorruptionCheckEpoch string `json:"last_corruption_check_epoch"`
}

// TreeReport describes one tree of a CheckReport.
type TreeReport struct {
	// CorruptedIndexTuplesMap is keyed by the index of a level-3 page (the
	// parent of 16 buckets) in decimal; only pages with a finding appear.
	CorruptedIndexTuplesMap map[string]PageReport `json:"corrupted_index_tuples_map"`
	// CorruptedSubtreeRoot is true when this tree's root differs from the
	// recomputation.
	CorruptedSubtreeRoot bool `json:"corrupted_subtree_root"`
	// RootHash is this tree's root in hex (as the index holds it).
	RootHash string `json:"root_hash"`
	// TreeType is "replicated".
	TreeType string `json:"tree_type"`
}

// PageReport is one level-3 page of a TreeReport.
type PageReport struct {
	// Corrupted is true when a stored copy of one of its buckets is unreadable
	// or disagrees with memory.
	Corrupted bool `json:"corrupted"`
	// Subpages lists the buckets (0-15 under the page) that differ from the
	// recomputation or whose stored copy is bad.
	Subpages []int `json:"subpages"`
}

// Clean reports whether the check found nothing.
func (r *CheckReport) Clean() bool {
	if r.CorruptedRoot {
		return false
	}
	for _, t := range r.CorruptedTreeMap {
		if t.CorruptedSubtreeRoot || len(t.CorruptedIndexTuplesMap) > 0 {
			return false
		}
	}
	return true
}

// Check compares the index with a full recomputation (scan + WAL redo to the
// same LSN) and reads every stored page: an unreadable page (checksum), or a
// clean page whose stored items differ from memory, is reported too. Writes
// may continue; the comparison is made at one LSN.
func (x *Index) Check(ctx context.Context, log *wal.Log, classify func(string) wal.Class) (*CheckReport, error) {
	ref, err := build(ctx, x.store, log, classify, false, x.opts, x.logger)
	if err != nil {
		return nil, fmt.Errorf("merkle check: %w", err)
	}
	rep := &CheckReport{LastCorruptionCheckEpoch: time.Now().UTC().Format(time.RFC3339Nano)}
	tree := TreeReport{CorruptedIndexTuplesMap: map[string]PageReport{}, TreeType: "replicated"}
	mark := func(b uint32, corrupted bool) {
		k := strconv.Itoa(int(b / Fanout))
		pr := tree.CorruptedIndexTuplesMap[k]
		pr.Corrupted = pr.Corrupted || corrupted
		sub := int(b % Fanout)
		if !slices.Contains(pr.Subpages, sub) {
			pr.Subpages = append(pr.Subpages, sub)
			slices.Sort(pr.Subpages)
		}
		tree.CorruptedIndexTuplesMap[k] = pr
	}

	// Bring the reference and the index to one LSN.
	compared := false
	for range 10 {
		target := x.Applied()
		if ref.applied > target {
			if err := x.WaitApplied(ctx, ref.applied); err != nil {
				return nil, fmt.Errorf("merkle check: %w", err)
			}
			continue
		}
		if err := ref.redo(ctx, log, target, nil, nil); err != nil {
			return nil, fmt.Errorf("merkle check: %w", err)
		}
		x.mu.Lock()
		if x.applied == ref.applied {
			x.refresh()
			ref.refresh()
			rep.CorruptedRoot = x.nodes[0][0] != ref.nodes[0][0]
			tree.CorruptedSubtreeRoot = rep.CorruptedRoot
			tree.RootHash = fmt.Sprintf("%x", x.nodes[0][0])
			for b := range uint32(Buckets) {
				if x.buckets[b].hash != ref.buckets[b].hash {
					mark(b, false)
				}
			}
			compared = true
		}
		x.mu.Unlock()
		if compared {
			break
		}
	}
	if !compared {
		return nil, fmt.Errorf("merkle check: the index kept moving: retry under a lighter write load")
	}

	// The stored pages, stable under flushMu; an absent page is the empty page.
	x.flushMu.Lock()
	defer x.flushMu.Unlock()
	stored, err := storedBuckets(ctx, x.store)
	if err != nil {
		return nil, fmt.Errorf("merkle check: %w", err)
	}
	for b := range uint32(Buckets) {
		var e *storage.Entry
		if len(stored) > 0 && stored[0] == b {
			stored = stored[1:]
			if e, err = x.store.Get(ctx, pageKey(b)); err != nil {
				return nil, fmt.Errorf("merkle check: read page %04x: %w", b, err)
			}
		}
		x.mu.Lock()
		bk := &x.buckets[b]
		_, dirty := x.dirty[b]
		bad := false
		switch {
		case e == nil:
			bad = !dirty && len(bk.items) > 0
		default:
			p, err := decodePage(e.Value, b, true)
			if err != nil {
				bad = true
			} else if !dirty && (p.lsn != bk.pageLSN || !equalItems(p.items, bk.items)) {
				bad = true
			}
		}
		x.mu.Unlock()
		if bad {
			mark(b, true)
		}
	}
	rep.CorruptedTreeMap = map[string]TreeReport{"1": tree}
	return rep, nil
}

func equalItems(a, b []item) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
