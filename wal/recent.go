package wal

import "sync"

// The recent-entries cache: the last entries this process committed,
// decoded, so that Read serves them without a storage read and a decode.
// Every reader of a fresh entry (the shipper, the merkle follower, a lane's
// follower) reads it within milliseconds of its commit; a reader behind by
// more than the cache holds reads the storage as before.
const (
	recentSlots = 4096    // entries kept at most
	recentBytes = 4 << 20 // and at most this many bytes of keys and values:
	// 0.4 s of writes at 5,000/s of 1 KiB (the shipper and the follower
	// read within milliseconds), or two of a catching-up secondary's runs.
	// Each MiB more raised a catching-up secondary's peak heap by two or
	// three (32 MiB: +76 MiB), and 8 MiB left it at the 256 MiB line.
)

// recent is a ring of the newest committed entries, indexes lo..hi
// contiguous (empty when hi < lo, or lo is 0: the zero value). Entries are shared by every reader:
// nobody modifies an *Entry that Read returned (wal.Entry's contract).
type recent struct {
	mu     sync.RWMutex
	ring   [recentSlots]*Entry
	lo, hi uint64
	bytes  int
}

func entryBytes(e *Entry) int {
	n := 64
	for i := range e.Ops {
		n += len(e.Ops[i].Key) + len(e.Ops[i].Value) + 16
	}
	return n
}

// add appends e, which must follow hi (else the cache starts again at e).
func (r *recent) add(e *Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lo == 0 || r.hi < r.lo || e.Index != r.hi+1 { // empty (the zero value too), or a gap
		r.resetLocked()
		r.lo = e.Index
	}
	r.hi = e.Index
	r.bytes += entryBytes(e)
	for r.lo < r.hi && (r.hi-r.lo+1 > recentSlots || r.bytes > recentBytes) {
		r.dropLocked() // before e takes its slot: the oldest may hold it
	}
	r.ring[e.Index%recentSlots] = e
}

func (r *recent) dropLocked() {
	slot := &r.ring[r.lo%recentSlots]
	r.bytes -= entryBytes(*slot)
	*slot = nil
	r.lo++
}

// get returns the entry of index, nil when not cached.
func (r *recent) get(index uint64) *Entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if index < r.lo || index > r.hi {
		return nil
	}
	return r.ring[index%recentSlots]
}

// reset empties the cache: the log's idea of its entries changed other
// than by its own commit (a failed transaction, a reload).
func (r *recent) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resetLocked()
}

func (r *recent) resetLocked() {
	clear(r.ring[:])
	r.lo, r.hi, r.bytes = 1, 0, 0
}
