package backoff

import (
	"context"
	"testing"
	"time"
)

func TestNextDoublesUpToMaxAndResets(t *testing.T) {
	b := &Backoff{Min: 250 * time.Millisecond, Max: 2 * time.Second}
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second}
	for i, w := range want {
		if got := b.Next(); got != w {
			t.Fatalf("pause %d = %v, want %v", i+1, got, w)
		}
	}
	b.Reset()
	if got := b.Next(); got != b.Min {
		t.Fatalf("after Reset: %v, want %v", got, b.Min)
	}
}

// The pause is never above Max even when Max is not Min times a power of two,
// and Delay does not overflow after many attempts.
func TestDelayCapsAndSaturates(t *testing.T) {
	b := &Backoff{Min: 50 * time.Millisecond, Max: 300 * time.Millisecond}
	for attempt, w := range map[int]time.Duration{
		-1: 50 * time.Millisecond, 0: 50 * time.Millisecond, 1: 50 * time.Millisecond,
		2: 100 * time.Millisecond, 3: 200 * time.Millisecond, 4: 300 * time.Millisecond,
		1000: 300 * time.Millisecond, 1 << 40: 300 * time.Millisecond,
	} {
		if got := b.Delay(attempt); got != w {
			t.Errorf("Delay(%d) = %v, want %v", attempt, got, w)
		}
	}
	huge := &Backoff{Min: time.Second, Max: time.Duration(1<<63 - 1)}
	if got := huge.Delay(1 << 40); got != huge.Max {
		t.Errorf("Delay near the largest duration = %v", got)
	}
	same := &Backoff{Min: time.Second, Max: time.Second}
	for range 3 {
		if got := same.Next(); got != time.Second {
			t.Fatalf("Min == Max: %v", got)
		}
	}
}

func TestSleep(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep reported a cancelled context")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep on an ended context reported true")
	}
	if time.Since(start) > time.Second {
		t.Fatal("Sleep on an ended context waited")
	}
}

func TestWaitEndsWithTheContext(t *testing.T) {
	b := &Backoff{Min: time.Hour, Max: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan bool)
	go func() { done <- b.Wait(ctx) }()
	cancel()
	select {
	case ok := <-done:
		if ok {
			t.Fatal("Wait reported true after cancel")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not end with its context")
	}
}
