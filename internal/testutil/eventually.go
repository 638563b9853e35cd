package testutil

import (
	"testing"
	"time"
)

// Poll intervals of Eventually: the first retry comes after minInterval and
// each one after waits twice as long, up to maxInterval. They only pace the
// loop; the condition decides.
const (
	minInterval = time.Millisecond
	maxInterval = 50 * time.Millisecond
)

// Eventually calls cond until it returns nil and fails the test if it still
// returns an error once within has passed, with what and that last error:
// "<what>: not true after <within>: <err>".
//
// cond runs on the calling goroutine, so it may itself fail the test (with
// t.Fatal) when waiting longer is pointless, e.g. because the process it
// waits on has exited.
func Eventually(t testing.TB, within time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	interval := minInterval
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %v", what, within, err)
		}
		time.Sleep(interval)
		interval = min(2*interval, maxInterval)
	}
}
