package security

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
)

// TestRPCForgedRevocation is finding 2 of issue 11: one forged "revoked"
// reply stopped a secondary for good, and during activation the same forgery
// failed it. Here an attacker on the primary's bus answers every RPC first,
// from before activation to the end, with "revoked" in clear and signed with
// its own key, garbage and replays of replies it captured. The secondary
// activates, replicates and forwards writes, and its status never shows
// "revoked"; the primary's own, signed revocation still ends it.
func TestRPCForgedRevocation(t *testing.T) {
	bin := rpcBuild(t)
	pri := rpcStartDev(t, bin, "root-dc1")
	sec := rpcStartDev(t, bin, "root-dc2")
	if _, err := pri.root.KVv2("secret").Put(t.Context(), "base", map[string]any{"v": "1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := pri.root.Logical().Write("sys/replication/performance/primary/enable", nil); err != nil {
		t.Fatal(err)
	}
	atk := rpcStartAttacker(t, pri.natsAddr, true)
	tok := rpcSecondaryToken(t, pri.root, "dc2")
	if _, err := sec.root.Logical().Write("sys/replication/performance/secondary/enable", map[string]any{"token": tok}); err != nil {
		t.Fatalf("activation with forged refusals racing the primary: %v", err)
	}
	S := rpcClient(t, sec.addr, pri.rootID)
	rpcWaitKV(t, S, "base", "1")
	states := rpcWatchState(t, sec.addr)

	// Forwarded writes (one RPC each) and heartbeats (every 2 s), all raced.
	for i := range 5 {
		v := fmt.Sprint(i)
		if _, err := S.KVv2("secret").Put(context.Background(), "fwd", map[string]any{"v": v}); err != nil {
			t.Fatalf("forwarded write %d with the attacker racing: %v", i, err)
		}
		rpcWaitKV(t, pri.root, "fwd", v)
	}
	start := atk.rpcAnswered()
	testutil.Eventually(t, rpcWait, "the attacker raced 3 more heartbeats", func() error {
		if n := atk.rpcAnswered() - start; n < 3 {
			return fmt.Errorf("%d raced", n)
		}
		return nil
	})
	if _, err := pri.root.KVv2("secret").Put(context.Background(), "after", map[string]any{"v": "2"}); err != nil {
		t.Fatal(err)
	}
	rpcWaitKV(t, S, "after", "2")
	if seen := states.stop(); slices.Contains(seen, "revoked") || len(seen) == 0 {
		t.Fatalf("secondary states under forged revocations: %v", seen)
	}

	// The real revocation, signed by the primary, is obeyed.
	if _, err := pri.root.Logical().Write("sys/replication/performance/primary/revoke-secondary", map[string]any{"id": "dc2"}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, rpcWait, "the secondary obeys the primary's revocation", func() error {
		if s := rpcStatus(t, sec.addr)["state"]; s != "revoked" {
			return fmt.Errorf("state %v", s)
		}
		return nil
	})
}

// rpcStateWatch samples a secondary's replication state until stop.
type rpcStateWatch struct {
	mu     sync.Mutex
	seen   []string
	cancel context.CancelFunc
	done   chan struct{}
}

func rpcWatchState(t *testing.T, addr string) *rpcStateWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &rpcStateWatch{cancel: cancel, done: make(chan struct{})}
	c := rpcClient(t, addr, "")
	tick := time.NewTicker(50 * time.Millisecond)
	go func() {
		defer close(w.done)
		defer tick.Stop()
		for {
			if s, err := c.Logical().ReadWithContext(ctx, "sys/replication/performance/status"); err == nil && s != nil {
				st, _ := s.Data["state"].(string)
				w.mu.Lock()
				if len(w.seen) == 0 || w.seen[len(w.seen)-1] != st {
					w.seen = append(w.seen, st)
				}
				w.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { w.stop() })
	return w
}

// stop ends the sampling and returns the states seen, in order, without
// repeats.
func (w *rpcStateWatch) stop() []string {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.seen)
}
