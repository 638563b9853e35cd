package primary

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/storage/inmem"
	"github.com/cofferhq/coffer/wal"
	"github.com/rs/zerolog"
)

// Two processes of one cluster (the same replication state: a restored copy
// started beside the original, or two nodes started at once) race to start
// the same set, many times: each time exactly one holds the generation and
// ships; the other never held it and ends fenced.
func TestClaimRaceHasOneWinner(t *testing.T) {
	raceRounds(t, "race", func(ctx context.Context, cfg Config, state []byte) (*Primary, error) { return Open(ctx, cfg) })
}

// Two DR secondaries of one set promoted at once (each takes over the
// primary's state copy), many times: one wins the next generation, the
// other is fenced and never held it.
func TestPromotionRaceHasOneWinner(t *testing.T) {
	raceRounds(t, "promote", func(ctx context.Context, cfg Config, state []byte) (*Primary, error) {
		return TakeOver(ctx, cfg, state, 0)
	})
}

// raceRounds starts two processes of one set at once with start, many
// times, and checks that exactly one holds the set each time.
func raceRounds(t *testing.T, name string, start func(context.Context, Config, []byte) (*Primary, error)) {
	ctx := context.Background()
	b := bustest.Start(t)
	const rounds = 25
	for round := range rounds {
		id := fmt.Sprintf("%s-%d", name, round)
		_, signer, _ := ed25519.GenerateKey(rand.Reader)
		sides := make([]*Primary, 2)
		var wg sync.WaitGroup
		for i := range sides {
			cfg, state := raceConfig(t, b, id, signer)
			wg.Add(1)
			go func() {
				defer wg.Done()
				p, err := start(ctx, cfg, state)
				if err != nil {
					t.Errorf("round %d side %d: %v", round, i, err)
					return
				}
				sides[i] = p
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			a, c := sides[0].Status().ClaimState, sides[1].Status().ClaimState
			if (a == ClaimHolding && c == ClaimFenced) || (a == ClaimFenced && c == ClaimHolding) {
				break
			}
			if a == ClaimHolding && c == ClaimHolding {
				t.Fatalf("round %d: both processes hold the set: %+v / %+v", round, sides[0].Status(), sides[1].Status())
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: not settled: %s and %s", round, a, c)
			}
			time.Sleep(10 * time.Millisecond) // polling the two statuses, not synchronising
		}
		held := 0
		for _, p := range sides {
			select {
			case <-p.holding:
				held++
			default:
			}
		}
		if held != 1 {
			t.Fatalf("round %d: %d processes ever held the set, want 1", round, held)
		}
		for _, p := range sides {
			p.Stop()
		}
	}
}

// raceConfig is a primary of cluster id on its own storage, with the state
// of a set enabled but never claimed (generation 0) and a short lease.
func raceConfig(t *testing.T, b *bus.Bus, id string, signer ed25519.PrivateKey) (Config, []byte) {
	t.Helper()
	ctx := context.Background()
	raw := inmem.New()
	l, err := wal.Open(ctx, raw, wal.Options{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	cfg := Config{
		ClusterID: id, APIAddr: "http://" + id, Bus: b, WAL: l, Raw: raw,
		State:    logical.NewView(raw, "core/replication/primary/"),
		RootKey:  func() ([]byte, error) { return make([]byte, 32), nil },
		Stream:   bus.StreamConfig{MaxAge: time.Hour},
		LeaseTTL: 500 * time.Millisecond,
		Logger:   zerolog.Nop(),
	}
	st := &persisted{V: stateV, ClusterID: id, SigningKey: signer, Epoch: 1, Keys: map[string][]byte{}, Secondary: map[string]*secondaryRec{}}
	st.setKey(1, make([]byte, 32))
	if err := saveState(ctx, cfg.State, st); err != nil {
		t.Fatal(err)
	}
	enc, err := stateRecord.Encode(st)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, enc
}
