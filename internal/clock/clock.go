package clock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// offset is the wall clock's offset in nanoseconds; zero but in fault tests.
var offset atomic.Int64

// Now is the wall clock: time.Now plus the offset.
func Now() time.Time {
	if d := offset.Load(); d != 0 {
		return time.Now().Add(time.Duration(d))
	}
	return time.Now()
}

// Offset is the offset Now adds.
func Offset() time.Duration { return time.Duration(offset.Load()) }

// Set moves the clock to d from the system's.
func Set(d time.Duration) { offset.Store(int64(d)) }

// ReadOffset reads an offset file: one Go duration ("90s", "-5m"); a missing
// or empty file is zero.
func ReadOffset(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("clock offset file %s: %q is not a duration (write e.g. 90s or -5m)", path, s)
	}
	return d, nil
}

// Load sets the offset from path once.
func Load(path string) error {
	d, err := ReadOffset(path)
	if err == nil {
		Set(d)
	}
	return err
}

// Follow sets the offset from path every interval until ctx ends; the
// caller runs it on a goroutine of its own. changed is called with each new
// offset, and with each new read error (the offset then stays).
func Follow(ctx context.Context, path string, every time.Duration, changed func(time.Duration, error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	lastErr := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d, err := ReadOffset(path)
		switch {
		case err != nil && err.Error() != lastErr:
			lastErr = err.Error()
			changed(Offset(), err)
		case err == nil && d != Offset():
			lastErr = ""
			Set(d)
			changed(d, nil)
		}
	}
}
