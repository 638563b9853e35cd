package bus_test

import (
	"context"
	"errors"
	"sync"
	"testing"

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
	if v, rev, err := r.Get(ctx); v != nil || rev != 0 || err != nil {
		t.Fatalf("empty register: %q %d %v", v, rev, err)
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
	if v, rev, err := r.Get(ctx); string(v) != "two" || rev != rev2 || err != nil {
		t.Fatalf("Get = %q %d %v, want two %d", v, rev, err, rev2)
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
