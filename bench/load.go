package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Target is what a measurement writes to and reads from: a replication set
// (the primary, its secondaries) or its NATS anchor (a bucket and its mirror).
type Target interface {
	// Put writes key=value where writes go (the primary).
	Put(ctx context.Context, key string, value []byte) error
	// Readers is how many places replicate it (secondaries, mirrors).
	Readers() int
	// Has reports whether reader i serves key.
	Has(ctx context.Context, i int, key string) (bool, error)
}

// LagResult is one lag measurement: the load that ran and, per reader, the
// time from a probe write's acknowledgement to its being readable there.
type LagResult struct {
	Rate     int           // writes/s asked for
	Achieved float64       // writes/s acknowledged
	Errors   int64         // load writes that failed
	Late     int64         // load writes started more than a second late (the target could not keep up)
	Lag      []Dist        // per reader, the whole run
	Thirds   [][3]Dist     // per reader, the run's first, middle and last third: growing lag shows there
	Probes   int           // probes written
	Lost     int           // probes not readable within probeTimeout
	Took     time.Duration // the run
}

// A probe is written every probeEvery (at most maxProbes waiting at once)
// and waits at most probeTimeout. A reader is polled after pollFirst, then
// every twentieth of the time waited so far, at most every pollMax: a
// resolution of 5% (or 250 µs) where lag is short, a few requests per probe
// where it is long. The polls must not load the readers: a first version
// polled every 2 ms with 64 probes waiting, and its reads took most of a
// lagging secondary's CPU (`coffer bench -profile`).
const (
	probeEvery   = 10 * time.Millisecond
	maxProbes    = 16
	probeTimeout = 30 * time.Second
	pollFirst    = 250 * time.Microsecond
	pollMax      = 20 * time.Millisecond
	workers      = 128
)

// value returns size random bytes.
func value(size int) []byte {
	b := make([]byte, size)
	_, _ = rand.Read(b)
	return b
}

// Lag runs an open-loop load of rate writes/s of size bytes for d on t while a
// probe writes a marker every probeEvery and times its arrival on each reader.
func Lag(ctx context.Context, t Target, rate int, d time.Duration, size int) LagResult {
	r := LagResult{Rate: rate}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var acked, errs, late, lost atomic.Int64
	var wg sync.WaitGroup
	if rate > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			openLoop(ctx, t, rate, size, &acked, &errs, &late)
		}()
	}
	samples := make([][3]*Sample, t.Readers())
	for i := range samples {
		samples[i] = [3]*Sample{{}, {}, {}}
	}
	var probes, inflight atomic.Int64
	tick := time.NewTicker(probeEvery)
	for n := 0; ctx.Err() == nil; n++ {
		select {
		case <-ctx.Done():
			continue
		case <-tick.C:
		}
		if inflight.Load() >= maxProbes {
			continue // the readers are far behind: enough probes wait already
		}
		inflight.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer inflight.Add(-1)
			key := fmt.Sprintf("probe/%d", n)
			if err := t.Put(ctx, key, []byte("probe")); err != nil {
				return
			}
			at := time.Now()
			probes.Add(1)
			third := min(2, int(3*at.Sub(start)/d))
			var pw sync.WaitGroup
			for i := range t.Readers() {
				pw.Add(1)
				go func() {
					defer pw.Done()
					if lag, ok := arrival(t, i, key, at); ok {
						samples[i][third].Add(lag)
					} else {
						lost.Add(1) // one reader's miss counts once per reader
					}
				}()
			}
			pw.Wait()
		}()
	}
	tick.Stop()
	wg.Wait()
	r.Took = time.Since(start)
	r.Achieved = float64(acked.Load()) / r.Took.Seconds()
	r.Errors, r.Late, r.Lost, r.Probes = errs.Load(), late.Load(), int(lost.Load()), int(probes.Load())
	for i := range samples {
		all := &Sample{}
		var th [3]Dist
		for j, s := range samples[i] {
			th[j] = s.Dist()
			for _, d := range s.ds {
				all.Add(d)
			}
		}
		r.Lag = append(r.Lag, all.Dist())
		r.Thirds = append(r.Thirds, th)
	}
	return r
}

// arrival polls reader i until key is there; its lag from at.
func arrival(t Target, i int, key string, at time.Time) (time.Duration, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	for {
		if ok, err := t.Has(ctx, i, key); err == nil && ok {
			return time.Since(at), true
		}
		wait := min(pollMax, max(pollFirst, time.Since(at)/20))
		select {
		case <-ctx.Done():
			return 0, false
		case <-time.After(wait):
		}
	}
}

// openLoop writes at rate until ctx ends, whatever the target's latency:
// writes are scheduled at fixed times and handed to a pool of workers.
func openLoop(ctx context.Context, t Target, rate, size int, acked, errs, late *atomic.Int64) {
	jobs := make(chan time.Time, rate*10)
	var wg sync.WaitGroup
	val := value(size)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for due := range jobs {
				if time.Since(due) > time.Second {
					late.Add(1)
				}
				n++
				if err := t.Put(context.WithoutCancel(ctx), fmt.Sprintf("load/%d/%d", w, n%256), val); err != nil {
					errs.Add(1)
				} else {
					acked.Add(1)
				}
			}
		}()
	}
	interval := time.Second / time.Duration(rate)
	next := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case now := <-tick.C:
			for ; !next.After(now); next = next.Add(interval) {
				select {
				case jobs <- next:
				default:
					late.Add(1) // the queue is full: dropped, counted late
				}
			}
		}
	}
	close(jobs)
	wg.Wait()
}

// Throughput runs clients closed-loop writers of size bytes for d and
// returns acknowledged writes per second.
func Throughput(ctx context.Context, put func(ctx context.Context, key string, v []byte) error, clients int, d time.Duration, size int) (float64, int64) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var acked, errs atomic.Int64
	var wg sync.WaitGroup
	val := value(size)
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				if err := put(ctx, fmt.Sprintf("tput/%d/%d", c, i%256), val); err == nil {
					acked.Add(1)
				} else if ctx.Err() == nil {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(acked.Load()) / time.Since(start).Seconds(), errs.Load()
}

// Sequential times n writes of size bytes, one at a time.
func Sequential(ctx context.Context, put func(ctx context.Context, key string, v []byte) error, n, size int) (Dist, error) {
	var s Sample
	val := value(size)
	for i := range n {
		t0 := time.Now()
		if err := put(ctx, fmt.Sprintf("seq/%d", i%256), val); err != nil {
			return Dist{}, err
		}
		s.Add(time.Since(t0))
	}
	return s.Dist(), nil
}
