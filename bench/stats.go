package bench

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Sample collects durations (latencies) from many goroutines.
type Sample struct {
	mu sync.Mutex
	ds []time.Duration
}

// Add records one duration.
func (s *Sample) Add(d time.Duration) {
	s.mu.Lock()
	s.ds = append(s.ds, d)
	s.mu.Unlock()
}

// Dist is a distribution's summary.
type Dist struct {
	N                  int
	P50, P90, P99, Max time.Duration
}

// Dist summarises what was added so far.
func (s *Sample) Dist() Dist {
	s.mu.Lock()
	ds := slices.Clone(s.ds)
	s.mu.Unlock()
	if len(ds) == 0 {
		return Dist{}
	}
	slices.Sort(ds)
	at := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return Dist{N: len(ds), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ds[len(ds)-1]}
}

// String is "p50 1.2ms p90 ... (n=...)".
func (d Dist) String() string {
	if d.N == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s p90 %s p99 %s max %s (n=%d)", ms(d.P50), ms(d.P90), ms(d.P99), ms(d.Max), d.N)
}

// ms renders a duration in milliseconds with two decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
