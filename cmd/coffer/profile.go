package main

import (
	"context"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"time"
)

// startCPUProfile profiles the process into path until the returned stop.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// liveHeapMetric is the heap the last collection found live.
const liveHeapMetric = "/gc/heap/live:bytes"

// startHeapProfile keeps in path the heap profile (pprof) taken when the
// live heap was at its largest: it looks every interval and writes the
// profile again when the live heap has grown by a tenth since the last
// one. A profile at exit would show what is left, not the peak of a
// catch-up (coffer bench -profile). It runs until ctx ends (the server's
// shutdown: a final flush is not what the profile is for) or the returned
// stop.
func startHeapProfile(ctx context.Context, path string, interval time.Duration) (func(), error) {
	if err := writeHeapProfile(path); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		written := liveHeap() // what the first profile shows
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if live := liveHeap(); live > written+written/10 {
				if writeHeapProfile(path) == nil {
					written = live
				}
			}
		}
	}()
	return func() { cancel(); <-done }, nil
}

// liveHeap is the heap the last collection found live (0 if the runtime
// does not say).
func liveHeap() uint64 {
	sample := []metrics.Sample{{Name: liveHeapMetric}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return sample[0].Value.Uint64()
}

// writeHeapProfile replaces path with the heap profile as of the last
// collection (written beside it, then renamed: a reader never sees half).
func writeHeapProfile(path string) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	err = pprof.Lookup("heap").WriteTo(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp) // no half-written profile left beside the last good one
	}
	return err
}
