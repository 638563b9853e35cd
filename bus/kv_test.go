package bus_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
)

func TestRegisterCompareAndSet(t *testing.T) {
	ctx := context.Background()
	b := bustest.Start(t)
	r, err := b.Register(ctx, "COFFER_TEST", "gen", 0)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := r.Get(ctx); e.Value != nil || e.Revision != 0 || err != nil {
		t.Fatalf("empty register: %+v %v", e, err)
	}
	rev1, err := r.Set(ctx, []byte("one"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Set(ctx, []byte("again"), 0); !errors.Is(err, bus.ErrConflict) {
		t.Fatalf("create over an existing key: %v, want ErrConflict", err)
	}
	rev2, err := r.Set(ctx, []byte("two"), rev1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Set(ctx, []byte("stale"), rev1); !errors.Is(err, bus.ErrConflict) {
		t.Fatalf("update at an old revision: %v, want ErrConflict", err)
	}
	e, err := r.Get(ctx)
	if string(e.Value) != "two" || e.Revision != rev2 || err != nil || time.Since(e.Stored) > time.Minute {
		t.Fatalf("Get = %+v %v, want two %d", e, err, rev2)
	}
	// A stranger deletes the bucket: the next Get makes it again, empty.
	if err := b.JetStream().DeleteKeyValue(ctx, "COFFER_TEST"); err != nil {
		t.Fatal(err)
	}
	if e, err := r.Get(ctx); err != nil || e.Value != nil {
		t.Fatalf("Get after the bucket was deleted: %+v %v", e, err)
	}
	if _, err := r.Set(ctx, []byte("three"), 0); err != nil {
		t.Fatalf("Set after the bucket was made again: %v", err)
	}
}

// Many writers race from the same revision, many times: exactly one wins
// each round.
func TestRegisterOneWinnerPerRound(t *testing.T) {
	ctx := context.Background()
	b := bustest.Start(t)
	const writers, rounds = 4, 50
	regs := make([]*bus.Register, writers)
	for i := range regs {
		r, err := b.Register(ctx, "COFFER_RACE", "gen", 0)
		if err != nil {
			t.Fatal(err)
		}
		regs[i] = r
	}
	var rev uint64
	for round := range rounds {
		var wg sync.WaitGroup
		wins := make([]uint64, writers)
		for i, r := range regs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if n, err := r.Set(ctx, []byte{byte(round), byte(i)}, rev); err == nil {
					wins[i] = n
				} else if !errors.Is(err, bus.ErrConflict) {
					t.Errorf("round %d writer %d: %v", round, i, err)
				}
			}()
		}
		wg.Wait()
		won := 0
		for _, n := range wins {
			if n != 0 {
				won++
				rev = n
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d writers won, want exactly 1", round, won)
		}
	}
}
