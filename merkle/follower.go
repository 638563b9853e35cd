package merkle

import (
	"context"
	"errors"
	"sync"

	"github.com/cofferhq/coffer/wal"
	"github.com/rs/zerolog"
)

// followBatch is how many WAL entries the Follower reads at a time, and
// followBytes how many bytes of keys and values at most: a secondary's
// entries are whole runs of batches, and its follower may be several
// behind while the applier goes on (guards are checked off its path).
const (
	followBatch = 512
	followBytes = 4 << 20
)

// Follower keeps an Index up to date with a wal.Log: its goroutine waits for
// new entries and applies them in index order, so the index is the WAL's
// single applier. On a secondary, where the applier writes through its own
// local wal.Log, the same Follower works on that log.
type Follower struct {
	x      *Index
	log    *wal.Log
	logger zerolog.Logger

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// NewFollower returns a stopped Follower of log feeding x.
func NewFollower(x *Index, log *wal.Log, logger zerolog.Logger) *Follower {
	return &Follower{x: x, log: log, logger: logger.With().Str("component", "merkle-follower").Logger()}
}

// Start starts the goroutine, from x.Applied(). Idempotent.
func (f *Follower) Start() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done, f.err = cancel, make(chan struct{}), nil
	go f.run(ctx, f.done)
}

// Stop stops the goroutine and waits for it. Idempotent.
func (f *Follower) Stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cancel == nil {
		return
	}
	f.cancel()
	<-f.done
	f.cancel, f.done = nil, nil
}

// Done is closed when the goroutine has returned: after Stop, after the log
// was closed, or after an error (see Err). Nil when not started.
func (f *Follower) Done() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.done
}

// Err is the error that stopped the goroutine: wal.ErrTruncated means the
// entries the index needs are gone (reindex), wal.ErrClosed that the log
// closed. Nil while it runs or after Stop.
func (f *Follower) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *Follower) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	fail := func(err error) {
		if ctx.Err() != nil {
			return
		}
		if !errors.Is(err, wal.ErrClosed) {
			f.logger.Error().Err(err).Uint64("applied", f.x.Applied()).Msg("merkle follower stopped: the index no longer follows the WAL")
		}
		f.mu.Lock()
		f.err = err
		f.mu.Unlock()
	}
	for {
		applied := f.x.Applied()
		if err := f.log.WaitIndex(ctx, applied+1); err != nil {
			fail(err)
			return
		}
		entries, err := f.log.ReadLimit(ctx, applied, followBatch, followBytes)
		if err != nil {
			fail(err)
			return
		}
		for _, e := range entries {
			if err := f.x.Apply(e); err != nil {
				fail(err)
				return
			}
		}
	}
}
