package testutil

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestEventuallyReturnsOnceTrue(t *testing.T) {
	calls := 0
	Eventually(t, 10*time.Second, "the third call", func() error {
		calls++
		if calls < 3 {
			return fmt.Errorf("call %d", calls)
		}
		return nil
	})
	if calls != 3 {
		t.Fatalf("cond called %d times, want 3", calls)
	}
}

// fakeTB records a failure instead of failing; Fatalf ends its goroutine
// like testing.T's does.
type fakeTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestEventuallyFailsWithWhatAndLastError(t *testing.T) {
	f := &fakeTB{}
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		n := 0
		Eventually(f, 30*time.Millisecond, "the impossible", func() error {
			n++
			return errors.New("attempt " + fmt.Sprint(n))
		})
	}()
	<-done
	if waited := time.Since(start); waited < 30*time.Millisecond {
		t.Fatalf("gave up after %s, before the deadline", waited)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !strings.HasPrefix(f.msg, "the impossible: not true after 30ms: attempt ") {
		t.Fatalf("failure message %q", f.msg)
	}
	// The last attempt's error is the one reported.
	if strings.HasSuffix(f.msg, ": attempt 1") {
		t.Fatalf("failure message %q reports the first attempt, not the last", f.msg)
	}
}
