package secondary_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/secondary"
	"github.com/cofferhq/coffer/storage"
	"github.com/nats-io/nats.go"
)

// TestMerkleSyncLoopBacksOff: a primary whose merkle index disagrees with its
// data (a value written below its WAL, so its index never saw it) sends a
// secondary into a loop: the sync fetches the value, the next guard (the
// primary's root, with the old value's hash) does not match, the next diff
// finds the key again... The detector names the key, and past the threshold
// the secondary backs off: the primary gets no merkle request while it
// waits. Rebuilding the primary's index from its data and restarting the
// secondary (what sys/replication/reindex and sys/replication/recover do)
// ends the loop.
func TestMerkleSyncLoopBacksOff(t *testing.T) {
	ctx := context.Background()
	b := embeddedBus(t)
	ps := startMerklePrimary(t, b, "dc1", bus.StreamConfig{})
	for i := range 10 {
		ps.put(t, fmt.Sprintf("logical/l/%02d", i), fmt.Sprint("v", i))
	}
	const bad = "logical/l/05"
	if err := ps.raw.Put(ctx, &storage.Entry{Key: bad, Value: []byte("below the index")}); err != nil {
		t.Fatal(err)
	}
	var merkleRPCs atomic.Int64 // requests at the primary: a plain subscription sees a copy of each
	sub, err := b.Conn().Subscribe(replication.RPCSubject("dc1", replication.MethodMerkle), func(*nats.Msg) { merkleRPCs.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	ss := newMerkleSecondary(t, "dc2")
	ss.cfg.Loop = secondary.LoopConfig{Threshold: 2, BackoffMin: time.Hour, BackoffMax: time.Hour}
	ss.activate(t, ps.token(t, "dc2"))
	i := 0
	eventually(t, 30*time.Second, "the loop detected and the back-off engaged", func() bool {
		ps.put(t, fmt.Sprintf("logical/w/%03d", i), "a guarded batch") // each one's guard mismatches
		i++
		return !ss.s.SyncLoop().BackoffUntil.IsZero()
	})
	l := ss.s.SyncLoop()
	if !l.Looping || l.Consecutive != 3 || !slices.Equal(l.KeysThatKeptDiffering, []string{bad}) {
		t.Fatalf("loop status %+v: want 3 resyncs in a row, looping, %s kept differing", l, bad)
	}
	if until := time.Until(l.BackoffUntil); until < 50*time.Minute {
		t.Fatalf("backoff until %s, in %s: want about an hour", l.BackoffUntil, until)
	}

	// While it backs off the primary hears heartbeats, and no merkle request,
	// however many guarded batches it ships.
	n0 := merkleRPCs.Load()
	for j := range 5 {
		ps.put(t, fmt.Sprintf("logical/x/%d", j), "more")
	}
	ps.waitShipped(t)
	hb := lastHeartbeat(t, ps)
	for range 3 {
		eventually(t, 10*time.Second, "a heartbeat from the secondary", func() bool { return lastHeartbeat(t, ps).After(hb) })
		hb = lastHeartbeat(t, ps)
	}
	if n := merkleRPCs.Load(); n != n0 || ss.s.SyncLoop().Consecutive != 3 {
		t.Fatalf("%d merkle requests while backing off (before it %d), %d resyncs: want none", n-n0, n0, ss.s.SyncLoop().Consecutive)
	}

	// The operator's fix: the primary's index rebuilt from its data, the
	// secondary restarted from its stored position. A guard matches: over.
	ps.startIndex(t)
	ss.s.Stop()
	s2, err := secondary.Open(ctx, ss.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ss.start(t, s2)
	ps.put(t, "logical/w/after", "fixed")
	convergeRoots(t, ps, ss)
	eventually(t, 15*time.Second, "the loop count back to 0 (a guard matched)", func() bool {
		ps.put(t, "logical/w/again", fmt.Sprint(time.Now().UnixNano()))
		return s2.SyncLoop().Consecutive == 0
	})
	if v, _ := ss.get(t, bad); v != "below the index" {
		t.Fatalf("%s = %q on the secondary, want the primary's stored value", bad, v)
	}
}

// lastHeartbeat is the primary's last heartbeat from its one secondary.
func lastHeartbeat(t *testing.T, ps *primarySide) time.Time {
	t.Helper()
	secs := ps.p.Status().Secondaries
	if len(secs) != 1 {
		t.Fatalf("%d secondaries registered, want 1", len(secs))
	}
	return secs[0].LastHeartbeat
}
