package backoff

import (
	"context"
	"time"
)

// Sleep waits d or until ctx ends, whichever comes first; it reports false
// when ctx ended (the caller stops), true when d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Backoff is an exponential pause: Min, then twice the previous pause, never
// more than Max. Set Min and Max (0 < Min <= Max) and use it by pointer; the
// first Next after construction or Reset returns Min. Not safe for concurrent
// use: one retry loop owns it.
type Backoff struct {
	Min, Max time.Duration

	attempt int // pauses taken since Reset
}

// Delay is the pause before retry number attempt (1 for the first retry):
// Min * 2^(attempt-1), capped at Max. Attempts below 1 count as 1.
func (b *Backoff) Delay(attempt int) time.Duration {
	d := b.Min
	for i := 1; i < attempt && d > 0 && d < b.Max; i++ {
		if d > b.Max/2 {
			return b.Max
		}
		d *= 2
	}
	return min(d, b.Max)
}

// Next returns the pause to take now and moves to the next one.
func (b *Backoff) Next() time.Duration {
	b.attempt++
	return b.Delay(b.attempt)
}

// Reset starts again from Min: call it once an attempt succeeded.
func (b *Backoff) Reset() { b.attempt = 0 }

// Wait sleeps Next() or until ctx ends; false when ctx ended.
func (b *Backoff) Wait(ctx context.Context) bool { return Sleep(ctx, b.Next()) }
