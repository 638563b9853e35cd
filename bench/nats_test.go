package bench

import (
	"context"
	"fmt"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// anchorTestDeadline bounds every wait in these tests: a condition not met by
// then is a failure, never a slow pass.
const anchorTestDeadline = 30 * time.Second

func TestNATSMirrorReplicates(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), anchorTestDeadline)
	defer cancel()
	m, err := StartMirror(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	if ok, err := m.Has(ctx, "absent"); err != nil || ok {
		t.Fatalf("Has(absent) = %v, %v; want false, nil", ok, err)
	}

	// 100 keys from 10 writers at once, as the open-loop load does.
	const writers, perWriter = 10, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				key := fmt.Sprintf("k%d-%d", w, i)
				if err := m.Put(ctx, key, []byte("value of "+key)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for w := range writers {
		for i := range perWriter {
			key := fmt.Sprintf("k%d-%d", w, i)
			if err := anchorPoll(ctx, func() (bool, error) { return m.Has(ctx, key) }); err != nil {
				t.Fatalf("key %s never reached the mirror: %v", key, err)
			}
		}
	}
	if ok, err := m.Has(ctx, "absent"); err != nil || ok {
		t.Fatalf("Has(absent) after the writes = %v, %v; want false, nil", ok, err)
	}

	// Has reads the leaf alone: with the hub gone, the mirror still answers.
	stopAnchorServer(m.hub)
	if ok, err := m.Has(ctx, "k0-0"); err != nil || !ok {
		t.Fatalf("Has(k0-0) with the hub stopped = %v, %v; want true, nil", ok, err)
	}

	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	waitGoroutines(t, before)
}

// TestNATSMirrorLag measures, at no load, the lag of 1,000 probes: a Put,
// then Has polled until the leaf holds the key, once with the polls back to
// back and once paced at 200 µs as `coffer bench`'s probe does. It logs the
// figures for a person to read and asserts nothing about them.
func TestNATSMirrorLag(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), anchorTestDeadline)
	defer cancel()
	m, err := StartMirror(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, every := range []time.Duration{0, 200 * time.Microsecond} {
		if err := logMirrorLag(ctx, t, m, every); err != nil {
			t.Fatal(err)
		}
	}
}

// logMirrorLag runs 1,000 probes polling Has every `every` (back to back
// when 0) and logs the hub's acknowledgement time and the lag.
func logMirrorLag(ctx context.Context, t *testing.T, m *Mirror, every time.Duration) error {
	const probes = 1000
	var ack, fromAck, fromPut []time.Duration
	polls := 0
	value := make([]byte, 128)
	for i := range probes {
		key := fmt.Sprintf("probe-%d-%d", every, i)
		start := time.Now()
		if err := m.Put(ctx, key, value); err != nil {
			return err
		}
		acked := time.Now()
		err := anchorPollEvery(ctx, every, func() (bool, error) {
			polls++
			return m.Has(ctx, key)
		})
		if err != nil {
			return fmt.Errorf("probe %d: %w", i, err)
		}
		seen := time.Now()
		ack = append(ack, acked.Sub(start))
		fromAck = append(fromAck, seen.Sub(acked))
		fromPut = append(fromPut, seen.Sub(start))
	}
	how := "back to back"
	if every > 0 {
		how = "every " + every.String()
	}
	t.Logf("NATS KV mirror over a leafnode, %d probes at no load, 128-byte values, Has polled %s (%.1f calls per probe):", probes, how, float64(polls)/probes)
	t.Logf("  hub ack (Put)          %s", anchorQuantiles(ack))
	t.Logf("  lag, ack -> on leaf    %s", anchorQuantiles(fromAck))
	t.Logf("  lag, Put -> on leaf    %s", anchorQuantiles(fromPut))
	return nil
}

// anchorPollEvery calls cond until it reports true, fails or ctx ends: back
// to back when every is 0, else on a ticker of period every.
func anchorPollEvery(ctx context.Context, every time.Duration, cond func() (bool, error)) error {
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if tick == nil {
			if err := ctx.Err(); err != nil {
				return err
			}
			continue
		}
		select {
		case <-tick:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func TestNATSConsumeRate(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), anchorTestDeadline)
	defer cancel()
	dir := t.TempDir()
	rate, err := ConsumeRate(ctx, dir, 5000, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if rate <= 0 {
		t.Fatalf("ConsumeRate = %v, want a positive rate", rate)
	}
	t.Logf("NATS ordered consumer: %.0f msgs/s reading 5,000 messages of 1 KiB from file storage", rate)

	// A second run on the same dir reads its own n, not the first run's too.
	rate, err = ConsumeRate(ctx, dir, 2000, 16)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("NATS ordered consumer, same dir again: %.0f msgs/s reading 2,000 messages of 16 bytes", rate)
	waitGoroutines(t, before)

	if _, err := ConsumeRate(ctx, dir, 0, 16); err == nil {
		t.Fatal("ConsumeRate with n=0: want an error")
	}
}

// waitGoroutines waits until no more goroutines run than before (plus a
// small allowance for the runtime's and the testing package's own) and
// fails with the stacks of those left otherwise.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	const allowance = 2
	ctx, cancel := context.WithTimeout(context.Background(), anchorTestDeadline)
	defer cancel()
	err := anchorPoll(ctx, func() (bool, error) {
		return runtime.NumGoroutine() <= before+allowance, nil
	})
	if err != nil {
		var b strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Fatalf("%d goroutines still running, %d before:\n%s", runtime.NumGoroutine(), before, b.String())
	}
}

// anchorQuantiles formats the p50, p99 and maximum of ds.
func anchorQuantiles(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[int(p*float64(len(s)-1))] }
	return fmt.Sprintf("p50 %-10s p90 %-10s p99 %-10s max %s", q(0.50), q(0.90), q(0.99), s[len(s)-1])
}
