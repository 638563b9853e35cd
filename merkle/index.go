package merkle

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
	"github.com/rs/zerolog"
)

// Geometry of the tree. These constants are part of the disk and wire format
// (page ids, RPC page references, the root itself): do not change them. A new
// geometry takes new version bytes and a reindex.
const (
	// Fanout is the number of children of every interior node.
	Fanout = 16
	// Depth is the number of interior levels: level 0 is the root node, level
	// Depth-1 holds the parents of the buckets.
	Depth = 4
	// Buckets is the number of leaf buckets, Fanout^Depth = 65,536.
	Buckets = 1 << 16
	// HashSize is the size of every node hash.
	HashSize = 32
	// ValueHashSize is the size of an item's value hash.
	ValueHashSize = 16
)

// levelNodes[l] is the number of nodes at interior level l.
var levelNodes = [Depth]int{1, Fanout, Fanout * Fanout, Fanout * Fanout * Fanout}

// Hash domain tags, part of the format.
const (
	tagLeaf  = 0x01
	tagNode  = 0x02
	tagValue = 0x03
)

// Errors of the index. Decoding errors are ErrCorrupt and ErrUnknownVersion.
var (
	// ErrOutOfOrder is returned by Apply, Put and Delete for an LSN below the
	// last one applied: the caller must feed WAL entries in index order.
	ErrOutOfOrder = errors.New("merkle: update out of LSN order")
	// ErrReindexRequired is returned by Recover when the stored index cannot be
	// brought up to date by redo: the WAL no longer holds the entries past the
	// checkpoint, the geometry changed, or a page failed its checksum. Run
	// Reindex (sys/replication/reindex).
	ErrReindexRequired = errors.New("merkle: the stored index cannot be recovered, a reindex is required")
	// ErrBadRef is returned for a page level/index or a bucket outside the tree.
	ErrBadRef = errors.New("merkle: page or bucket reference outside the tree")
)

// Key layout in storage. merkle/ is Ignored by wal.DefaultClassify.
const (
	pagePrefix    = "merkle/pages/"
	checkpointKey = "merkle/checkpoint"
)

func pageKey(b uint32) string { return fmt.Sprintf("%s%04x", pagePrefix, b) }

// parseBucket is pageKey's inverse on a name listed under pagePrefix: the
// bucket of a page, or false for any other name.
func parseBucket(name string) (uint32, bool) {
	if len(name) != 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(name, 16, 16)
	if err != nil || pageKey(uint32(v)) != pagePrefix+name {
		return 0, false
	}
	return uint32(v), true
}

// keyHash returns the bucket and the 64-bit fingerprint of a key: the first 16
// bits and the next 64 bits of SHA-256(key).
func keyHash(key string) (uint32, uint64) {
	// Hashed from a buffer on the stack: []byte(key) escaped, an allocation
	// per key hashed, and a flush hashes every key of the pages it writes.
	var buf [128]byte
	var h [HashSize]byte
	if len(key) <= len(buf) {
		h = sha256.Sum256(append(buf[:0], key...))
	} else {
		h = sha256.Sum256([]byte(key))
	}
	return uint32(binary.BigEndian.Uint16(h[0:2])), binary.BigEndian.Uint64(h[2:10])
}

// BucketOf returns the leaf bucket of key.
func BucketOf(key string) uint32 {
	b, _ := keyHash(key)
	return b
}

// ValueHash returns the item hash of key holding value: the first 16 bytes of
// SHA-256(0x03 | uvarint(len key) | key | value).
func ValueHash(key string, value []byte) [ValueHashSize]byte {
	d := sha256.New()
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = tagValue
	n := binary.PutUvarint(hdr[1:], uint64(len(key)))
	d.Write(hdr[:1+n])
	d.Write([]byte(key))
	d.Write(value)
	var sum [HashSize]byte
	d.Sum(sum[:0])
	var out [ValueHashSize]byte
	copy(out[:], sum[:ValueHashSize])
	return out
}

// item is one key of a bucket in memory: 24 bytes, the key itself stays on disk.
type item struct {
	fp uint64
	vh [ValueHashSize]byte
}

// bucket is one leaf.
type bucket struct {
	items   []item // sorted by fp, unique
	pending []string
	hash    [HashSize]byte
	pageLSN uint64 // the LSN of the last update applied to this bucket
	recLSN  uint64 // the first LSN that dirtied it since its last flush; 0 = clean
	stale   bool   // hash must be recomputed
}

func (b *bucket) find(fp uint64) (int, bool) {
	return slices.BinarySearchFunc(b.items, fp, func(it item, fp uint64) int {
		switch {
		case it.fp < fp:
			return -1
		case it.fp > fp:
			return 1
		}
		return 0
	})
}

// insertItem inserts it at i, growing a full slice by a quarter rather than
// append's doubling: the buckets hold every key's item (24 bytes) for as
// long as the process runs, and doubling left a third of that unused
// (74 MB held for 48 MB of items at 2,000,000 keys).
func insertItem(items []item, i int, it item) []item {
	if len(items) == cap(items) {
		grown := make([]item, len(items), len(items)+len(items)/4+2)
		copy(grown, items)
		items = grown
	}
	return slices.Insert(items, i, it)
}

func (b *bucket) addPending(key string) {
	for _, k := range b.pending {
		if k == key {
			return
		}
	}
	b.pending = append(b.pending, key)
}

func leafHash(items []item) [HashSize]byte {
	if len(items) == 0 {
		return [HashSize]byte{}
	}
	d := sha256.New()
	var buf [1 + 8 + ValueHashSize]byte
	buf[0] = tagLeaf
	binary.BigEndian.PutUint64(buf[1:9], uint64(len(items)))
	d.Write(buf[:9])
	for _, it := range items {
		binary.BigEndian.PutUint64(buf[:8], it.fp)
		copy(buf[8:], it.vh[:])
		d.Write(buf[:8+ValueHashSize])
	}
	var out [HashSize]byte
	d.Sum(out[:0])
	return out
}

// nodeHash hashes Fanout children; a node whose children are all zero (an
// empty subtree) hashes to zero.
func nodeHash(children [][HashSize]byte) [HashSize]byte {
	empty := true
	for i := range children {
		if children[i] != ([HashSize]byte{}) {
			empty = false
			break
		}
	}
	if empty {
		return [HashSize]byte{}
	}
	var buf [1 + Fanout*HashSize]byte
	buf[0] = tagNode
	for i := range children {
		copy(buf[1+i*HashSize:], children[i][:])
	}
	return sha256.Sum256(buf[:])
}

// Options configures an Index.
type Options struct {
	// FlushInterval is how often the flusher writes dirty pages. Default 200ms.
	FlushInterval time.Duration
	// FlushPages is the most dirty pages one flush writes, oldest recLSN first.
	// Default 2048.
	FlushPages int
	// OnFlush, when set, is called by the flusher goroutine after every round
	// (for metrics and tests). It must not call back into the flusher.
	OnFlush func(FlushStats)
	// Keep, when set, narrows the index to the replicated keys it keeps: WAL
	// ops on other keys are skipped by Apply and redo (a paths filter's view
	// on the primary; its Live's classify must agree for the scan). Nil keeps
	// every replicated key.
	Keep func(key string) bool
}

// Validate reports negative values.
func (o *Options) Validate() error {
	if o.FlushInterval < 0 || o.FlushPages < 0 {
		return fmt.Errorf("merkle: flush interval %s and flush pages %d must not be negative: leave them 0 for the defaults 200ms and 2048", o.FlushInterval, o.FlushPages)
	}
	return nil
}

func (o *Options) withDefaults() Options {
	r := *o
	if r.FlushInterval == 0 {
		r.FlushInterval = 200 * time.Millisecond
	}
	if r.FlushPages == 0 {
		r.FlushPages = 2048
	}
	return r
}

// Index is the merkle index over the replicated keys. Every method is safe for
// concurrent use; Apply, Put and Delete must be called in LSN order (one
// applier: the Follower on the primary, the applier on a secondary).
type Index struct {
	store  storage.Transactional
	opts   Options
	logger zerolog.Logger

	// mu guards the tree and every field below it.
	mu      sync.Mutex
	buckets []bucket
	nodes   [Depth][][HashSize]byte
	staleN  [Depth][]bool
	staleL  [Depth + 1][]uint32 // stale node ids per level; level Depth = buckets
	dirty   map[uint32]struct{}
	applied uint64
	keys    int
	// noPending: keys are not kept (an index built only to be compared, by Check).
	noPending bool
	applyCh   chan struct{} // closed and replaced when applied advances
	rootWaits []rootWait    // RootAt's pending requests
	// changed is the LSN of the last update that changed the tree (the
	// root at any LSN from it to applied is the current one).
	changed uint64

	// rebuildLSN: a rebuild with SkipFlush left the buckets it covers dirty
	// since this LSN, and its marker stays stored until they are flushed
	// (leaveToFlusher); 0 otherwise. Guarded by mu.
	rebuildLSN uint64

	// flushMu serialises flushes and bucket listings (which read pages).
	flushMu    sync.Mutex
	checkpoint uint64 // the redo point durable in storage; guarded by flushMu and cpMu
	cpMu       sync.Mutex

	// The flusher goroutine.
	runMu  sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns an empty index writing its pages to store (the raw backend or
// the wal.Log: merkle/ keys are Ignored and never logged). An index for a
// store that already holds data comes from Recover or Reindex instead.
func New(store storage.Transactional, opts Options, logger zerolog.Logger) (*Index, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	x := &Index{
		store:   store,
		opts:    opts.withDefaults(),
		logger:  logger.With().Str("component", "merkle").Logger(),
		buckets: make([]bucket, Buckets),
		dirty:   make(map[uint32]struct{}),
		applyCh: make(chan struct{}),
	}
	for l := range Depth {
		x.nodes[l] = make([][HashSize]byte, levelNodes[l])
		x.staleN[l] = make([]bool, levelNodes[l])
	}
	return x, nil
}

// markStale marks bucket b and its ancestors for recomputation. Caller holds mu.
func (x *Index) markStale(b uint32) {
	bk := &x.buckets[b]
	if bk.stale {
		return
	}
	bk.stale = true
	x.staleL[Depth] = append(x.staleL[Depth], b)
	id := b
	for l := Depth - 1; l >= 0; l-- {
		id /= Fanout
		if x.staleN[l][id] {
			return
		}
		x.staleN[l][id] = true
		x.staleL[l] = append(x.staleL[l], id)
	}
}

// refresh recomputes every stale hash, bottom up. Caller holds mu.
func (x *Index) refresh() {
	for _, b := range x.staleL[Depth] {
		bk := &x.buckets[b]
		bk.hash = leafHash(bk.items)
		bk.stale = false
	}
	x.staleL[Depth] = x.staleL[Depth][:0]
	var kids [Fanout][HashSize]byte
	for l := Depth - 1; l >= 0; l-- {
		for _, id := range x.staleL[l] {
			if l == Depth-1 {
				for i := range Fanout {
					kids[i] = x.buckets[id*Fanout+uint32(i)].hash
				}
			} else {
				copy(kids[:], x.nodes[l+1][id*Fanout:id*Fanout+Fanout])
			}
			x.nodes[l][id] = nodeHash(kids[:])
			x.staleN[l][id] = false
		}
		x.staleL[l] = x.staleL[l][:0]
	}
}

// update applies one put (del false) or delete to the in-memory tree. Caller
// holds mu and has checked the LSN order.
func (x *Index) update(key string, value []byte, del bool, lsn uint64) {
	b, fp := keyHash(key)
	bk := &x.buckets[b]
	i, found := bk.find(fp)
	switch {
	case del && !found:
		return
	case del:
		bk.items = slices.Delete(bk.items, i, i+1)
		x.keys--
	default:
		vh := ValueHash(key, value)
		if found {
			if bk.items[i].vh == vh {
				return
			}
			bk.items[i].vh = vh
		} else {
			bk.items = insertItem(bk.items, i, item{fp: fp, vh: vh})
			x.keys++
		}
	}
	bk.pageLSN = lsn
	x.changed = lsn
	if bk.recLSN == 0 {
		bk.recLSN = lsn
		x.dirty[b] = struct{}{}
	}
	if !x.noPending {
		bk.addPending(key)
	}
	x.markStale(b)
}

func (x *Index) advance(lsn uint64) {
	if lsn > x.applied {
		x.applied = lsn
		close(x.applyCh)
		x.applyCh = make(chan struct{})
	}
}

// Apply applies the replicated ops of one WAL entry, atomically with respect
// to Root and the flusher, and advances Applied to e.Index. An entry at or
// below Applied is skipped (re-delivery is harmless); local ops are ignored.
func (x *Index) Apply(e *wal.Entry) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e.Index <= x.applied {
		return nil
	}
	for i := range e.Ops {
		op := &e.Ops[i]
		if !x.keeps(op) {
			continue
		}
		x.update(op.Key, op.Value, op.Kind == storage.DeleteOperation, e.Index)
	}
	x.advance(e.Index)
	if len(x.rootWaits) > 0 {
		x.serveRootWaits(true)
	}
	return nil
}

// keeps reports whether the index follows op: a replicated op that
// Options.Keep, when set, keeps.
func (x *Index) keeps(op *wal.Op) bool {
	return op.Class == wal.Replicated && (x.opts.Keep == nil || x.opts.Keep(op.Key))
}

// Put records key holding value (its stored ciphertext) at WAL index lsn.
// Several updates may share one lsn; a lower lsn than Applied is refused.
func (x *Index) Put(key string, value []byte, lsn uint64) error {
	return x.set(key, value, false, lsn)
}

// Delete records the deletion of key at WAL index lsn.
func (x *Index) Delete(key string, lsn uint64) error {
	return x.set(key, nil, true, lsn)
}

func (x *Index) set(key string, value []byte, del bool, lsn uint64) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if lsn < x.applied || lsn == 0 {
		return fmt.Errorf("%w: lsn %d, applied %d", ErrOutOfOrder, lsn, x.applied)
	}
	x.update(key, value, del, lsn)
	x.advance(lsn)
	if len(x.rootWaits) > 0 {
		x.serveRootWaits(false) // several updates may share lsn: no root here
	}
	return nil
}

// Root returns the root hash (32 bytes; all zero for an empty index).
func (x *Index) Root() []byte {
	r, _ := x.State()
	return r
}

// RootHex returns the root in hex, as the status API shows merkle_root.
func (x *Index) RootHex() string { return hex.EncodeToString(x.Root()) }

// State returns the root and the LSN it reflects, read together.
func (x *Index) State() ([]byte, uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.refresh()
	r := x.nodes[0][0]
	return r[:], x.applied
}

// Applied is the highest LSN applied.
func (x *Index) Applied() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.applied
}

// WaitApplied returns once Applied() >= lsn, or ctx.Err().
func (x *Index) WaitApplied(ctx context.Context, lsn uint64) error {
	for {
		x.mu.Lock()
		ch, ok := x.applyCh, x.applied >= lsn
		x.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Page returns the Fanout child hashes of interior node (level, index):
// level 0 index 0 is the root node; the children of a level Depth-1 node are
// buckets.
func (x *Index) Page(level int, index uint32) ([Fanout][HashSize]byte, error) {
	var out [Fanout][HashSize]byte
	if level < 0 || level >= Depth || int(index) >= levelNodes[level] {
		return out, fmt.Errorf("%w: page %d/%d", ErrBadRef, level, index)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.refresh()
	x.pageLocked(level, index, &out)
	return out, nil
}

func (x *Index) pageLocked(level int, index uint32, out *[Fanout][HashSize]byte) {
	if level == Depth-1 {
		for i := range Fanout {
			out[i] = x.buckets[index*Fanout+uint32(i)].hash
		}
		return
	}
	copy(out[:], x.nodes[level+1][index*Fanout:index*Fanout+Fanout])
}

// Stats describes the index.
type Stats struct {
	Keys        int    // replicated keys indexed
	DirtyPages  int    // buckets changed since their last flush
	PendingKeys int    // keys held in memory until their bucket is flushed
	Applied     uint64 // highest LSN applied
	RedoPoint   uint64 // the durable checkpoint's redo point (0: none yet)
}

// Stats returns the current counters.
func (x *Index) Stats() Stats {
	x.mu.Lock()
	s := Stats{Keys: x.keys, DirtyPages: len(x.dirty), Applied: x.applied}
	for b := range x.dirty {
		s.PendingKeys += len(x.buckets[b].pending)
	}
	x.mu.Unlock()
	x.cpMu.Lock()
	s.RedoPoint = x.checkpoint
	x.cpMu.Unlock()
	return s
}

// SafeTruncateIndex is the highest WAL index recovery no longer needs: the
// durable redo point minus one. WAL entries up to it may be truncated (as far
// as the merkle index is concerned; the shipper has its own floor).
func (x *Index) SafeTruncateIndex() uint64 {
	x.cpMu.Lock()
	defer x.cpMu.Unlock()
	if x.checkpoint == 0 {
		return 0
	}
	return x.checkpoint - 1
}
