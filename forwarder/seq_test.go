package forwarder

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
)

type memSeq struct {
	n     uint64
	saves int
}

func (m *memSeq) Load(context.Context) (uint64, error)   { return m.n, nil }
func (m *memSeq) Save(_ context.Context, n uint64) error { m.n, m.saves = n, m.saves+1; return nil }

// A restarted sequencer never hands out a number used before, and stores
// once per block, not once per number.
func TestSequencerSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	st := &memSeq{}
	s := NewSequencer(st)
	var last uint64
	for range 3000 {
		n, err := s.Next(ctx)
		if err != nil || n <= last {
			t.Fatalf("next %d after %d: %v", n, last, err)
		}
		last = n
	}
	if st.saves != 3 {
		t.Fatalf("%d stores for 3000 numbers, want 3", st.saves)
	}
	s2 := NewSequencer(st) // a restart
	n, err := s2.Next(ctx)
	if err != nil || n <= last {
		t.Fatalf("after a restart: %d (last used %d): %v", n, last, err)
	}
}

// The window admits every number once, in any order, and refuses replays,
// checked against a plain set (the oracle) on random arrival orders.
func TestWindowAdmitsOnce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		var w Window
		seen := map[uint64]bool{}
		var sent []uint64
		for i := uint64(1); i <= 2000; i++ {
			sent = append(sent, i)
		}
		// Concurrent forwards arrive a little out of order.
		for i := range sent {
			j := min(len(sent)-1, i+r.IntN(20))
			sent[i], sent[j] = sent[j], sent[i]
		}
		for _, n := range sent {
			err := w.Admit(n)
			if seen[n] != errors.Is(err, ErrReplay) {
				t.Fatalf("round %d: admit %d: %v (seen before %v)", round, n, err, seen[n])
			}
			seen[n] = true
			// A replay of any number already admitted is refused.
			k := sent[r.IntN(len(sent))]
			if seen[k] && !errors.Is(w.Admit(k), ErrReplay) {
				t.Fatalf("round %d: replay of %d admitted", round, k)
			}
		}
		if w.Floor != 2000 || len(w.Seen) != 0 {
			t.Fatalf("round %d: floor %d, seen %v", round, w.Floor, w.Seen)
		}
	}
	var w Window
	if !errors.Is(w.Admit(0), ErrReplay) {
		t.Fatal("0 admitted")
	}
	// A number far below the highest is refused (it cannot be told apart
	// from a replay once the window moved on).
	if err := w.Admit(10000); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(w.Admit(10000-windowSpan-1), ErrReplay) {
		t.Fatal("a number older than the window was admitted")
	}
	if err := w.Admit(10000 - 5); err != nil {
		t.Fatalf("a late number inside the window: %v", err)
	}
}
