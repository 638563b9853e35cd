package wal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Defaults of CollectorOptions.
const (
	// DefaultCollectInterval is how often a Collector runs.
	DefaultCollectInterval = 10 * time.Second
	// DefaultCollectKeep is how many entries a Collector keeps below its floor.
	DefaultCollectKeep = 1024
)

// CollectorOptions configures a Collector. The floors come from the
// components that read the log; the log itself knows none of them.
type CollectorOptions struct {
	// Interval is the time between two collections. 0: DefaultCollectInterval.
	Interval time.Duration
	// Keep is how many entries below the floor are kept anyway, a margin for
	// operators reading the log. 0: DefaultCollectKeep.
	Keep uint64
	// Redo returns the highest index that crash recovery of the merkle index no
	// longer needs (merkle's SafeTruncateIndex: its durable redo point minus
	// one), or 0 while it needs everything (no index, or no checkpoint yet).
	// Required.
	Redo func() uint64
	// Shipped returns the last index the shipper has had acknowledged, with
	// true, or false when no shipper runs (the cluster is not a primary).
	// Nil: there is never a shipper.
	Shipped func() (uint64, bool)
}

// Validate reports a missing Redo and negative values.
func (o *CollectorOptions) Validate() error {
	if o.Redo == nil {
		return errors.New("wal: collector: Redo is required (without the merkle redo point nothing may be collected)")
	}
	if o.Interval < 0 {
		return fmt.Errorf("wal: collector: interval %s must not be negative: leave it 0 for the default %s", o.Interval, DefaultCollectInterval)
	}
	return nil
}

func (o *CollectorOptions) withDefaults() CollectorOptions {
	r := *o
	if r.Interval == 0 {
		r.Interval = DefaultCollectInterval
	}
	if r.Keep == 0 {
		r.Keep = DefaultCollectKeep
	}
	return r
}

// Collector deletes the WAL entries nothing needs any more. An entry may go
// once both of its readers are done with it:
//
//   - the merkle index's crash recovery, which redoes the WAL from its
//     durable redo point (Redo),
//   - the shipper on a primary, which publishes entries until JetStream
//     acknowledges them (Shipped).
//
// Every Interval it truncates the log up to min(Redo, Shipped) - Keep.
// Secondaries apply from the stream, not from their own WAL, and resync from
// the merkle index, so the primary's shipper is the only cross-cluster floor.
//
// Its goroutine belongs to whoever calls Start; Stop ends it and waits.
type Collector struct {
	log    *Log
	opts   CollectorOptions
	logger zerolog.Logger

	mu   sync.Mutex
	stop chan struct{} // closed by Stop; nil when not running
	done chan struct{} // closed when the goroutine has returned
}

// NewCollector returns a stopped Collector of log.
func NewCollector(log *Log, opts CollectorOptions, logger zerolog.Logger) (*Collector, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Collector{log: log, opts: opts.withDefaults(), logger: logger.With().Str("component", "wal-gc").Logger()}, nil
}

// Floor is the highest index that may be truncated now (0: none).
func (g *Collector) Floor() uint64 {
	floor := g.opts.Redo()
	if g.opts.Shipped != nil {
		if shipped, ok := g.opts.Shipped(); ok {
			floor = min(floor, shipped)
		}
	}
	if floor <= g.opts.Keep {
		return 0
	}
	return floor - g.opts.Keep
}

// Collect truncates the log up to Floor once; it returns the floor it
// truncated to, or 0 when there was nothing to do.
func (g *Collector) Collect(ctx context.Context) (uint64, error) {
	floor := g.Floor()
	if floor == 0 || floor < g.log.FirstIndex() {
		return 0, nil
	}
	return floor, g.log.Truncate(ctx, floor)
}

// Start starts the goroutine that collects every Interval. Idempotent.
func (g *Collector) Start() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stop != nil {
		return
	}
	g.stop, g.done = make(chan struct{}), make(chan struct{})
	go g.run(g.stop, g.done)
}

// Stop stops the goroutine and waits for it; a collection under way finishes
// first. Idempotent.
func (g *Collector) Stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stop == nil {
		return
	}
	close(g.stop)
	<-g.done
	g.stop, g.done = nil, nil
}

func (g *Collector) run(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(g.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), g.opts.Interval)
		if floor, err := g.Collect(ctx); err != nil {
			g.logger.Warn().Err(err).Msg("WAL garbage collection failed; retrying next interval")
		} else if floor > 0 {
			g.logger.Debug().Uint64("through", floor).Msg("WAL entries collected")
		}
		cancel()
	}
}
