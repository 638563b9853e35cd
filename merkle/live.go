package merkle

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
	"github.com/rs/zerolog"
)

// Live is the merkle index of a running server together with the two
// goroutines that keep it current: its flusher and the Follower that feeds it
// from the WAL. It owns that lifecycle:
//
//  1. Start (or Open) recovers the index from its pages and the WAL (Recover)
//     or, when that fails for any reason, rebuilds it (Reindex); then it starts
//     the flusher and a Follower from the index's Applied().
//  2. Index returns the index in service; Reindex swaps in a rebuilt one.
//  3. Stop ends both goroutines without flushing; Close ends them and flushes
//     every dirty page, so the next Start redoes nothing. Either leaves Index
//     nil until the next Start or Reindex.
//
// Every method is safe for concurrent use. Start, Reindex, Stop and Close hold
// one lock for their whole run, so Index waits while the index is being
// recovered, rebuilt or stopped rather than return one that is going away.
type Live struct {
	store    storage.Transactional
	log      *wal.Log
	classify func(string) wal.Class
	opts     Options
	logger   zerolog.Logger

	mu       sync.Mutex
	x        *Index    // nil while stopped
	follower *Follower // runs exactly when x is set
	report   OpenReport
	// gen counts the changes of the index in service (Start, Stop, Close,
	// Reindex, Rebuild): a Rebuild swaps in only if none came while it built.
	gen uint64

	// hold is 1 + the WAL index a running Rebuild started at (0: none); the
	// WAL past it is kept (SafeTruncateIndex).
	hold atomic.Uint64
	// reindexed is when a Rebuild last completed, once read from storage.
	reindexedMu   sync.Mutex
	reindexed     time.Time
	reindexedRead bool
}

// OpenReport says how the last Start brought the index up.
type OpenReport struct {
	// Recovered is true when Recover brought the stored index up to date, false
	// when it failed and Reindex rebuilt the index.
	Recovered bool
	// Recovery is what Recover did, or got to before it failed.
	Recovery RecoveryStats
	// RecoverErr is why Recover failed (nil when Recovered). It wraps
	// ErrReindexRequired when the pages or the WAL could not be used.
	RecoverErr error
}

// NewLive returns a stopped Live: nothing is read or started until Start.
// store holds the pages (the raw backend or the wal.Log), log is the WAL the
// Follower applies, classify tells the replicated keys for a reindex (nil:
// wal.DefaultClassify), and logger is the server's logger.
func NewLive(store storage.Transactional, log *wal.Log, classify func(string) wal.Class, opts Options, logger zerolog.Logger) *Live {
	return &Live{store: store, log: log, classify: classify, opts: opts, logger: logger}
}

// Open is NewLive followed by Start: it returns a running index or the
// reason none could be brought up.
func Open(ctx context.Context, store storage.Transactional, log *wal.Log, classify func(string) wal.Class, opts Options, logger zerolog.Logger) (*Live, error) {
	l := NewLive(store, log, classify, opts, logger)
	if err := l.Start(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// Start brings the index up unless it runs already: Recover, or Reindex when
// Recover fails, then the flusher and the Follower. After Stop or Close it
// recovers again from storage.
func (l *Live) Start(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.x != nil {
		return nil
	}
	if err := l.opts.Validate(); err != nil {
		return err
	}
	logger := l.indexLogger()
	x, stats, err := Recover(ctx, l.store, l.log, l.opts, logger)
	report := OpenReport{Recovered: err == nil, Recovery: stats, RecoverErr: err}
	if err != nil {
		logger.Warn().Err(err).Msg("merkle index cannot be recovered from its pages; rebuilding it from storage")
		if x, err = Reindex(ctx, l.store, l.log, l.classify, l.opts, logger); err != nil {
			return fmt.Errorf("rebuild the merkle index: %w", err)
		}
	} else {
		logger.Info().Interface("recovery", stats).Msg("merkle index recovered")
	}
	l.report = report
	l.installLocked(x)
	return nil
}

// Index returns the index in service, or nil while stopped. A caller that
// keeps it across a Reindex holds the old, stopped index: call Index again.
func (l *Live) Index() *Index {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.x
}

// Report says how the last Start brought the index up.
func (l *Live) Report() OpenReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.report
}

// Reindex stops the index in service (without flushing: its pages are about
// to be rewritten), rebuilds it from a scan of the replicated keys (see the
// package function Reindex), and puts the new one in service with its own
// flusher and Follower. It works on a stopped Live too. On error no index
// runs (Index returns nil) until the next Start or Reindex.
func (l *Live) Reindex(ctx context.Context) (*Index, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.stopLocked(ctx, false)
	x, err := Reindex(ctx, l.store, l.log, l.classify, l.opts, l.indexLogger())
	if err != nil {
		return nil, fmt.Errorf("reindex: %w", err)
	}
	l.installLocked(x)
	l.logger.Info().Str("root", x.RootHex()).Msg("merkle index rebuilt")
	return x, nil
}

// Stop stops the Follower and the flusher and waits for both; it does not
// flush. Idempotent.
func (l *Live) Stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.stopLocked(context.Background(), false)
}

// Close stops the Follower and the flusher, waits for both, and flushes every
// dirty page and the checkpoint, so the next Start redoes nothing.
// Idempotent; the index is out of service even when the flush fails.
func (l *Live) Close(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stopLocked(ctx, true)
}

// indexLogger is the logger handed to Recover and Reindex.
func (l *Live) indexLogger() zerolog.Logger {
	return l.logger.With().Str("component", "merkle").Logger()
}

// installLocked puts x in service: its flusher, then a Follower from its
// Applied(). Caller holds mu and has stopped the previous index.
func (l *Live) installLocked(x *Index) {
	l.gen++
	x.Start()
	f := NewFollower(x, l.log, l.logger)
	f.Start()
	l.x, l.follower = x, f
}

// stopLocked takes the index out of service: the Follower first (the index's
// single applier), then the flusher, flushing everything when flush is set.
// Caller holds mu.
func (l *Live) stopLocked(ctx context.Context, flush bool) error {
	l.gen++
	if l.x == nil {
		return nil
	}
	l.follower.Stop()
	var err error
	if flush {
		err = l.x.Close(ctx)
	} else {
		l.x.Stop()
	}
	l.x, l.follower = nil, nil
	return err
}
