package wal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/internal/clock"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/telemetry"
	"github.com/rs/zerolog"
)

// DefaultMaxBatch is the default Options.MaxBatch.
const DefaultMaxBatch = 256

// truncateChunk is how many entries one Truncate storage transaction deletes, so
// that writers never wait behind one huge deletion.
const truncateChunk = 1024

// Errors of the log itself. Decoding errors are ErrCorrupt and ErrUnknownVersion.
var (
	// ErrClosed is returned by a Log used after Close. It wraps storage.ErrClosed.
	ErrClosed = fmt.Errorf("wal: log is closed (the server is shutting down or sealed): %w", storage.ErrClosed)
	// ErrReservedKey is returned for a write to a key under "wal/": that space
	// belongs to the log. It is a programming error in the caller.
	ErrReservedKey = errors.New("wal: keys under wal/ belong to the write-ahead log and cannot be written through it")
	// ErrTruncated is returned by Read when the entries asked for were already
	// removed by Truncate. A reader that needs them must resync another way (a
	// secondary falls back to merkle sync).
	ErrTruncated = errors.New("wal: entries already truncated")
	// ErrTruncateAhead is returned by Truncate asked to remove entries past LastIndex.
	ErrTruncateAhead = errors.New("wal: cannot truncate past the last index")
	// ErrTooManyOps refuses a write that, with its log entry and the log's
	// meta record, has more operations than the backend takes in one
	// transaction (Options.MaxOps): it is never split, nothing is applied.
	ErrTooManyOps = errors.New("wal: the write has more operations than the storage backend takes in one transaction")
	// ErrEntryTooLarge refuses a write whose log entry the log's reader
	// cannot carry (SetEntryCheck: a replication primary's shipper, bounded
	// by the bus's max_payload); nothing is applied.
	ErrEntryTooLarge = errors.New("wal: the write is larger than replication can ship in one message")
)

// Options configures a Log.
type Options struct {
	// MaxBatch is the most writes one storage transaction commits. Default 256;
	// 1 commits every write in its own transaction (for comparison only).
	MaxBatch int
	// Classify gives a key's replication class. Nil means DefaultClassify.
	Classify func(key string) Class
	// MaxOps caps the operations of one storage transaction (0: the
	// backend's storage.MaxOps, none for most backends). Group commit stays
	// under it; a single write over it is refused (ErrTooManyOps).
	MaxOps int
	// Shared: other processes write the same storage (the active node of an
	// HA cluster while this one is a standby). Open then skips its checks of
	// the log's ends, which another writer makes racy, and the log refuses
	// every write until BecomeWriter.
	Shared bool
}

// Validate reports a negative MaxBatch.
func (o *Options) Validate() error {
	if o.MaxBatch < 0 {
		return fmt.Errorf("wal: max batch %d is negative: leave it 0 for the default %d", o.MaxBatch, DefaultMaxBatch)
	}
	return nil
}

// Stats counts the committer's work since Open.
type Stats struct {
	// Batches is the number of storage transactions committed.
	Batches uint64
	// Writes is the number of writes committed (logged or all-ignored).
	Writes uint64
	// Failed is the number of storage transactions that failed.
	Failed uint64
}

// reqState is where a queued write stands; guarded by Log.mu.
type reqState uint8

const (
	queued    reqState = iota // waiting; the writer may still withdraw it
	taken                     // in the committer's hands; the writer waits for the outcome
	withdrawn                 // the writer's context ended first; never applied
)

// request is one Write waiting for the committer.
type request struct {
	ops   []*storage.TxnOp
	cost  int    // operations in the transaction: ops, and the log entry
	body  []byte // encoded entry without index, time and CRC; nil when every op is Ignored
	entry *Entry // the entry body encodes, its values slices of body (never written after the commit), for the recent-entries cache
	state reqState

	logEntry storage.Entry
	logOp    storage.TxnOp

	// Set by the committer before done is closed.
	index uint64
	err   error
	done  chan struct{}
}

// Log is the write-ahead log over a storage.Transactional. It is itself a
// storage.Transactional: Get and List pass through, Put, Delete and Transaction
// go through the log. Close stops its committer; it does not close the backend.
type Log struct {
	b        storage.Transactional
	logger   zerolog.Logger
	maxBatch int
	maxOps   int // 0: no cap on the operations of a transaction
	classify atomic.Pointer[func(string) Class]
	check    atomic.Pointer[func([]Op) error] // SetEntryCheck's; nil: none

	// mu guards the queue and closed.
	mu     sync.Mutex
	queue  []*request
	closed bool
	wake   chan struct{} // capacity 1: a write was queued or Close was called
	done   chan struct{} // closed when the committer has returned

	// commitMu serialises every storage transaction that writes wal/meta
	// (the committer's batches and Truncate) and guards the fields below it.
	commitMu  sync.Mutex
	recent    recent // the newest committed entries, for Read
	last      uint64
	truncated uint64
	resync    bool // a transaction failed: reread wal/meta before the next one
	txn       []*storage.TxnOp
	// readOnly refuses every write (an HA standby: another process writes
	// the storage). Set and cleared under commitMu; read without it for a
	// fast refusal.
	readOnly atomic.Bool

	batch []*request // reused by the committer goroutine only

	// Published copies of last and truncated for lock-free readers.
	lastPub      atomic.Uint64
	truncatedPub atomic.Uint64
	isClosed     atomic.Bool

	nmu      sync.Mutex
	notifyCh chan struct{}

	batches, writes, failed atomic.Uint64
}

var _ storage.Transactional = (*Log)(nil)

// Open reads wal/meta from b and starts the committer. Close the Log before the backend.
func Open(ctx context.Context, b storage.Transactional, opts Options, logger zerolog.Logger) (*Log, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.MaxBatch == 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.MaxOps == 0 {
		opts.MaxOps = storage.MaxOps(b)
	}
	m, err := loadMeta(ctx, b)
	if err != nil {
		return nil, err
	}
	if !opts.Shared {
		if err := checkEnds(ctx, b, m); err != nil {
			return nil, err
		}
	}
	l := &Log{
		b:         b,
		logger:    logger.With().Str("component", "wal").Logger(),
		maxBatch:  opts.MaxBatch,
		maxOps:    opts.MaxOps,
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		last:      m.last,
		truncated: m.truncated,
		notifyCh:  make(chan struct{}),
	}
	l.SetClassifier(opts.Classify)
	l.readOnly.Store(opts.Shared)
	l.lastPub.Store(m.last)
	l.truncatedPub.Store(m.truncated)
	go l.run()
	l.logger.Info().Uint64("last_index", m.last).Uint64("first_index", m.truncated+1).Int("max_batch", l.maxBatch).Msg("wal opened")
	return l, nil
}

// checkEnds: the meta record commits with every entry, so it can only
// disagree with the entries if something else wrote under wal/. Check both
// ends cheaply.
func checkEnds(ctx context.Context, b storage.Backend, m meta) error {
	if after, err := b.Get(ctx, logKey(m.last+1)); err != nil {
		return fmt.Errorf("open wal: read entry %d: %w", m.last+1, err)
	} else if after != nil {
		return fmt.Errorf("open wal: %w: entry %d exists past the last index %d in wal/meta", ErrCorrupt, m.last+1, m.last)
	}
	if m.last > m.truncated {
		if e, err := b.Get(ctx, logKey(m.last)); err != nil {
			return fmt.Errorf("open wal: read entry %d: %w", m.last, err)
		} else if e == nil {
			return fmt.Errorf("open wal: %w: last entry %d named by wal/meta is missing", ErrCorrupt, m.last)
		}
	}
	return nil
}

// errReadOnly refuses a write on a log that is not this process's to write.
func errReadOnly() error {
	return fmt.Errorf("wal: %w: this node does not write the log (a standby); the active node does", storage.ErrNotActive)
}

// BecomeWriter makes this process the log's writer (an HA node becoming
// active, once it holds its cluster's lock): it rereads wal/meta, checks
// that the stored entries end where it says (what Open checks, for a log
// opened Shared), and then accepts writes, continuing the stored log.
func (l *Log) BecomeWriter(ctx context.Context) error {
	l.commitMu.Lock()
	defer l.commitMu.Unlock()
	m, err := loadMeta(ctx, l.b)
	if err != nil {
		return err
	}
	if err := checkEnds(ctx, l.b, m); err != nil {
		return err
	}
	l.adoptLocked(m)
	l.readOnly.Store(false)
	return nil
}

// StopWriting makes the log refuse every write from now on (an HA node
// turning standby); a commit in flight finishes first.
func (l *Log) StopWriting() {
	l.commitMu.Lock()
	defer l.commitMu.Unlock()
	l.readOnly.Store(true)
	// Another node writes the log from now on, possibly at indexes this one
	// cached (a split brain): read them from storage.
	l.recent.reset()
}

func loadMeta(ctx context.Context, b storage.Backend) (meta, error) {
	e, err := b.Get(ctx, metaKey)
	if err != nil {
		return meta{}, fmt.Errorf("wal: read %s: %w", metaKey, err)
	}
	if e == nil {
		return meta{}, nil
	}
	m, err := decodeMeta(e.Value)
	if err != nil {
		return meta{}, fmt.Errorf("wal: read %s: %w", metaKey, err)
	}
	return m, nil
}

// SetEntryCheck sets a check of every write's logged ops (the ops not
// Ignored), run before the write is queued: an error refuses the write,
// nothing applied, and Write returns it (it should wrap ErrEntryTooLarge).
// It replaces the check set before; the returned clear removes this check
// only if it is still the one set (an owner that stops late cannot remove
// its successor's). Writes already queued are not checked again.
func (l *Log) SetEntryCheck(check func(ops []Op) error) (clear func()) {
	p := &check
	l.check.Store(p)
	return func() { l.check.CompareAndSwap(p, nil) }
}

// SetClassifier replaces the classifier for writes that start after it returns
// (nil restores DefaultClassify). Safe to call concurrently with writes.
func (l *Log) SetClassifier(classify func(string) Class) {
	if classify == nil {
		classify = DefaultClassify
	}
	l.classify.Store(&classify)
}

// Get reads through to the backend.
func (l *Log) Get(ctx context.Context, key string) (*storage.Entry, error) {
	return l.b.Get(ctx, key)
}

// List reads through to the backend.
func (l *Log) List(ctx context.Context, prefix string) ([]string, error) {
	return l.b.List(ctx, prefix)
}

// Put writes one entry through the log.
func (l *Log) Put(ctx context.Context, entry *storage.Entry) error {
	_, err := l.Write(ctx, []*storage.TxnOp{{Operation: storage.PutOperation, Entry: entry}})
	return err
}

// Delete deletes one key through the log.
func (l *Log) Delete(ctx context.Context, key string) error {
	_, err := l.Write(ctx, []*storage.TxnOp{{Operation: storage.DeleteOperation, Entry: &storage.Entry{Key: key}}})
	return err
}

// MaxTransactionOps is how many operations one Write may hold under the
// backend's cap (storage.OpLimiter): the cap less the log entry and the meta
// record; 0 when the backend has none.
func (l *Log) MaxTransactionOps() int {
	if l.maxOps <= 2 {
		return 0
	}
	return l.maxOps - 2
}

// Transaction commits ops atomically with their WAL entry.
func (l *Log) Transaction(ctx context.Context, ops []*storage.TxnOp) error {
	_, err := l.Write(ctx, ops)
	return err
}

// Write commits ops in one storage transaction together with one WAL entry
// holding the ops whose key is not Ignored, and returns that entry's index (0
// when every op is Ignored or ops is empty).
//
// It returns ctx.Err() only when the write was withdrawn before the committer
// took it: then it is not and never will be applied. Once taken, Write waits for
// the storage transaction and reports its outcome, even if ctx has ended.
// ops and their entries must not be modified until Write returns.
func (l *Log) Write(ctx context.Context, ops []*storage.TxnOp) (uint64, error) {
	if len(ops) == 0 {
		return 0, nil
	}
	if err := storage.ValidateOps(ops); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if l.readOnly.Load() {
		return 0, errReadOnly()
	}
	classify := *l.classify.Load()
	var logged []Op
	for _, op := range ops {
		key := op.Entry.Key
		if strings.HasPrefix(key, reservedPrefix) {
			return 0, fmt.Errorf("%w: %q", ErrReservedKey, key)
		}
		c := classify(key)
		if !c.valid() {
			return 0, fmt.Errorf("wal: classifier returned %s for key %q: this is a bug in the caller's classifier", c, key)
		}
		if c == Ignored {
			continue
		}
		o := Op{Kind: op.Operation, Class: c, Key: key}
		if op.Operation == storage.PutOperation {
			o.Value = op.Entry.Value
		}
		logged = append(logged, o)
	}
	if chk := l.check.Load(); chk != nil && len(logged) > 0 {
		if err := (*chk)(logged); err != nil {
			return 0, err
		}
	}
	r := &request{ops: ops, cost: len(ops), done: make(chan struct{})}
	if len(logged) > 0 {
		r.body, r.entry = encodeOwned(logged)
		r.cost++
	}
	if l.maxOps > 0 && r.cost+1 > l.maxOps { // +1: the meta record
		return 0, fmt.Errorf("%w: %d operations with the log's own, the backend takes %d: write fewer keys at once", ErrTooManyOps, r.cost+1, l.maxOps)
	}

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return 0, ErrClosed
	}
	l.queue = append(l.queue, r)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}

	select {
	case <-r.done:
		return r.index, r.err
	case <-ctx.Done():
	}
	l.mu.Lock()
	if r.state == queued {
		r.state = withdrawn
		l.mu.Unlock()
		return 0, ctx.Err()
	}
	l.mu.Unlock()
	<-r.done
	return r.index, r.err
}

// run is the committer goroutine. It drains the queue even after Close, so
// every write accepted before Close gets an outcome.
func (l *Log) run() {
	defer close(l.done)
	for {
		l.mu.Lock()
		batch := l.batch[:0]
		n, cost := 0, 1 // the meta record
		for n < len(l.queue) && len(batch) < l.maxBatch {
			r := l.queue[n]
			if r.state != withdrawn && l.maxOps > 0 && len(batch) > 0 && cost+r.cost > l.maxOps {
				break // the next transaction takes it
			}
			n++
			if r.state == withdrawn {
				continue
			}
			r.state = taken
			batch = append(batch, r)
			cost += r.cost
		}
		rest := copy(l.queue, l.queue[n:])
		clear(l.queue[rest:])
		l.queue = l.queue[:rest]
		closed := l.closed
		l.mu.Unlock()

		if len(batch) > 0 {
			l.commit(batch)
			clear(batch)
			l.batch = batch[:0]
			continue
		}
		if closed {
			return
		}
		<-l.wake
	}
}

// commit writes one batch in one storage transaction and answers its writers.
func (l *Log) commit(batch []*request) {
	defer telemetry.MeasureSince(telemetry.NamePersistWALs, time.Now())
	l.commitMu.Lock()
	defer l.commitMu.Unlock()
	ctx := context.Background()

	err := l.resyncLocked(ctx)
	if err == nil && l.readOnly.Load() {
		err = errReadOnly() // queued before StopWriting
	}
	next := l.last
	now := clock.Now().UnixNano() // stored and shipped: the wall clock (internal/clock)
	if err == nil {
		txn := l.txn[:0]
		for _, r := range batch {
			txn = append(txn, r.ops...)
			if r.body == nil {
				continue
			}
			next++
			r.index = next
			sealEntry(r.body, next, now)
			r.logEntry = storage.Entry{Key: logKey(next), Value: r.body}
			r.logOp = storage.TxnOp{Operation: storage.PutOperation, Entry: &r.logEntry}
			txn = append(txn, &r.logOp)
		}
		if next != l.last {
			txn = append(txn, &storage.TxnOp{Operation: storage.PutOperation,
				Entry: &storage.Entry{Key: metaKey, Value: encodeMeta(meta{last: next, truncated: l.truncated})}})
		}
		err = l.b.Transaction(ctx, txn)
		clear(txn)
		l.txn = txn[:0]
		if err != nil {
			l.resync = true
			err = fmt.Errorf("wal: commit %d writes (indexes %d-%d): %w", len(batch), l.last+1, next, err)
		}
	}
	if err != nil {
		l.recent.reset()
		l.failed.Add(1)
		l.logger.Error().Err(err).Int("writes", len(batch)).Msg("wal batch failed; its writers get the error and its indexes will be reused")
		for _, r := range batch {
			r.index, r.err = 0, err
			close(r.done)
		}
		return
	}
	for _, r := range batch {
		if r.entry != nil {
			r.entry.Index, r.entry.Time = r.index, now
			l.recent.add(r.entry)
		}
	}
	advanced := next != l.last
	l.last = next
	l.lastPub.Store(next)
	l.batches.Add(1)
	l.writes.Add(uint64(len(batch)))
	for _, r := range batch {
		close(r.done)
	}
	if advanced {
		l.notifyAll()
	}
}

// resyncLocked rereads wal/meta after a failed transaction: a backend whose
// failure was ambiguous (the commit landed after all) must not make the log
// reuse an index. Caller holds commitMu.
func (l *Log) resyncLocked(ctx context.Context) error {
	if !l.resync {
		return nil
	}
	m, err := loadMeta(ctx, l.b)
	if err != nil {
		return fmt.Errorf("wal: recheck after a failed commit: %w", err)
	}
	if m.last != l.last || m.truncated != l.truncated {
		l.logger.Warn().Uint64("memory_last", l.last).Uint64("stored_last", m.last).
			Msg("wal meta changed by a transaction reported as failed; adopting the stored index")
		l.last, l.truncated = m.last, m.truncated
		l.recent.reset()
		l.lastPub.Store(m.last)
		l.truncatedPub.Store(m.truncated)
		l.notifyAll()
	}
	l.resync = false
	return nil
}

// Reload rereads wal/meta: on a node of a cluster whose active node is
// another process writing the same storage (HA), the log's idea of its last
// and first index follows what that node committed. A standby calls it to see
// how far the active has gone; a node becoming active calls it before its
// first write, so that it continues the stored log instead of reusing an
// index. It returns the stored last index.
func (l *Log) Reload(ctx context.Context) (uint64, error) {
	l.commitMu.Lock()
	defer l.commitMu.Unlock()
	m, err := loadMeta(ctx, l.b)
	if err != nil {
		return 0, err
	}
	l.adoptLocked(m)
	return m.last, nil
}

// adoptLocked takes m as the log's state. Caller holds commitMu.
func (l *Log) adoptLocked(m meta) {
	changed := m.last != l.last
	if changed {
		l.recent.reset()
	}
	l.last, l.truncated, l.resync = m.last, m.truncated, false
	l.lastPub.Store(m.last)
	l.truncatedPub.Store(m.truncated)
	if changed {
		l.notifyAll()
	}
}

func (l *Log) notifyAll() {
	l.nmu.Lock()
	close(l.notifyCh)
	l.notifyCh = make(chan struct{})
	l.nmu.Unlock()
}

// Close refuses new writes, lets the committer finish the writes already
// queued, and waits for it. It does not close the backend. Idempotent.
func (l *Log) Close() error {
	l.mu.Lock()
	already := l.closed
	l.closed = true
	l.mu.Unlock()
	if already {
		<-l.done
		return nil
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
	<-l.done
	l.isClosed.Store(true)
	// The committer has returned, so nobody replaces notifyCh any more: leave it closed.
	l.nmu.Lock()
	close(l.notifyCh)
	l.nmu.Unlock()
	l.logger.Info().Uint64("last_index", l.LastIndex()).Msg("wal closed")
	return nil
}

// LastIndex is the index of the last committed entry (0 for an empty log).
func (l *Log) LastIndex() uint64 { return l.lastPub.Load() }

// FirstIndex is the index of the oldest stored entry; LastIndex()+1 when the log
// holds none (never written, or truncated up to LastIndex).
func (l *Log) FirstIndex() uint64 { return l.truncatedPub.Load() + 1 }

// Stats returns the committer's counters.
func (l *Log) Stats() Stats {
	return Stats{Batches: l.batches.Load(), Writes: l.writes.Load(), Failed: l.failed.Load()}
}
