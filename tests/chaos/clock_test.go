package chaos

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
)

// TestSkewedSecondaryClock moves dc2's wall clock five minutes ahead, past
// the replication envelope's replay window (±2 min): the primary refuses
// its RPCs, and an operator must see why. dc2's status and a write
// forwarded through it name the skew, and the write is not applied; batches
// still stream to it (the consumer needs no RPC); with the clock back, it
// forwards again.
func TestSkewedSecondaryClock(t *testing.T) {
	s := newSet(t)
	dc2 := s.nodes["dc2"]
	if err := dc2.moveClock(5 * time.Minute); err != nil {
		t.Fatal(err)
	}
	const skew = "clocks skewed"
	testutil.Eventually(t, 60*time.Second, "dc2's status names the clock skew", func() error {
		st, err := status(t, dc2.addr, "performance")
		if err != nil {
			return err
		}
		if e := fmt.Sprint(st["last_error"]); !strings.Contains(e, skew) || st["connection_state"] != "transient_failure" {
			return fmt.Errorf("connection %v, last_error %q", st["connection_state"], e)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := s.user.KVv2("chaos").Put(ctx, "skewed", map[string]any{"v": "forwarded"})
	if err == nil || !strings.Contains(err.Error(), skew) || !strings.Contains(err.Error(), "not applied") {
		t.Fatalf("a write forwarded through the skewed dc2: %v; want a refusal naming the clock skew", err)
	}
	if _, err := s.root.KVv2("chaos").Put(ctx, "streamed", map[string]any{"v": "on dc1"}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "dc1's write readable on the skewed dc2", func() error {
		_, err := s.user.KVv2("chaos").Get(ctx, "streamed")
		return err
	})
	if _, err := s.root.KVv2("chaos").Get(ctx, "skewed"); err == nil {
		t.Fatal("the refused forwarded write is on dc1")
	}

	if err := dc2.moveClock(0); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, "dc2 connected again", func() error {
		st, err := status(t, dc2.addr, "performance")
		if err != nil {
			return err
		}
		if st["connection_state"] != "ready" {
			return fmt.Errorf("connection %v, last_error %v", st["connection_state"], st["last_error"])
		}
		return nil
	})
	if _, err := s.user.KVv2("chaos").Put(ctx, "skewed", map[string]any{"v": "forwarded"}); err != nil {
		t.Fatalf("forwarding with the clock back: %v", err)
	}
	if kv, err := s.root.KVv2("chaos").Get(ctx, "skewed"); err != nil || kv.Data["v"] != "forwarded" {
		t.Fatalf("the forwarded write on dc1: %v, %v", kv, err)
	}
}
