package secondary_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/secondary"
)

// startMerklePrimary is startPrimary with a merkle index over the primary's
// storage, followed from its WAL: its batches carry guards and it serves
// merkle sync.
func startMerklePrimary(t *testing.T, b *bus.Bus, id string, limits bus.StreamConfig) *primarySide {
	t.Helper()
	c := newCluster(t)
	c.startIndex(t)
	clk := &clock{}
	cfg := primaryConfig(t, c, b, id, clk)
	cfg.Stream = limits
	cfg.Merkle = c.index
	return startPrimaryWith(t, c, cfg, clk)
}

// newMerkleSecondary is a secondary side with its own merkle index, rebuilt
// after the activation's wipe as the lead does.
func newMerkleSecondary(t *testing.T, name string) *secondarySide {
	t.Helper()
	ss := newSecondarySide(t, name)
	ss.startIndex(t)
	ss.cfg.Merkle = ss.index
	ss.wiped = func() { ss.startIndex(t) }
	return ss
}

// convergeRoots waits until both sides hold the same replicated keys and
// values, then until their merkle roots agree.
func convergeRoots(t *testing.T, ps *primarySide, ss *secondarySide) {
	t.Helper()
	converge(t, ps, ss)
	ps.waitShipped(t)
	// The roots agree as soon as a sync's last write lands; the state turns
	// back to streaming just after: wait for both.
	// OnState reports a change just after Status shows it: wait for that too.
	eventually(t, 15*time.Second, "the merkle roots agree and the secondary streams", func() bool {
		seen := ss.seen()
		return ss.s.LastRemoteWAL() >= ps.wal.LastIndex() && ps.root(t) == ss.root(t) &&
			ss.s.Status().State == secondary.StateStreaming &&
			(len(seen) == 0 || seen[len(seen)-1] == secondary.StateStreaming)
	})
}

// sawInOrder reports whether want appears in states as a subsequence.
func sawInOrder(states []secondary.State, want ...secondary.State) bool {
	i := 0
	for _, s := range states {
		if i < len(want) && s == want[i] {
			i++
		}
	}
	return i == len(want)
}

func TestMerkleActivationSync(t *testing.T) {
	b := embeddedBus(t)
	ps := startMerklePrimary(t, b, "dc1", bus.StreamConfig{})
	for i := range 300 {
		ps.put(t, fmt.Sprintf("logical/m%d/k%03d", i%5, i), fmt.Sprint("v", i))
	}
	ps.put(t, "core/mounts", "mounts-ciphertext")
	ps.put(t, "sys/token/id/local", "never replicated")

	ss := newMerkleSecondary(t, "dc2")
	ss.put(t, "logical/old/stale", "wiped by the activation")
	ss.activate(t, ps.token(t, "dc2"))
	convergeRoots(t, ps, ss)
	states := ss.seen()
	if !sawInOrder(states, secondary.StateMerkleDiff, secondary.StateMerkleSync, secondary.StateStreaming) || slices.Contains(states, secondary.StateSync) {
		t.Fatalf("states %v: want merkle-diff, merkle-sync, stream-wals and no full listing", states)
	}
	if st := ss.s.Status(); st.SyncTotalKeys != 301 || st.SyncKeysDone != st.SyncTotalKeys {
		t.Fatalf("sync progress %d of %d, want 301 of 301", st.SyncKeysDone, st.SyncTotalKeys)
	}
	if _, ok := ss.get(t, "sys/token/id/local"); ok {
		t.Fatal("a local key reached the secondary")
	}

	// Streaming with guards: writes, overwrites and deletions keep the roots equal
	// and start no sync.
	for i := range 50 {
		ps.put(t, fmt.Sprintf("logical/m0/k%03d", i), "again")
		if i%4 == 0 {
			ps.del(t, fmt.Sprintf("logical/m1/k%03d", 100+i))
		}
	}
	convergeRoots(t, ps, ss)
	if n := count(ss.seen(), secondary.StateMerkleDiff); n != 1 {
		t.Fatalf("states %v: %d syncs, want the activation's only", ss.seen(), n)
	}
}

func count(states []secondary.State, s secondary.State) int {
	n := 0
	for _, x := range states {
		if x == s {
			n++
		}
	}
	return n
}

func TestMerkleGapSync(t *testing.T) {
	ctx := context.Background()
	b := embeddedBus(t)
	ps := startMerklePrimary(t, b, "dc1", bus.StreamConfig{MaxMsgs: 5})
	for i := range 40 {
		ps.put(t, fmt.Sprintf("logical/gap/%02d", i), "v0")
	}
	ss := newMerkleSecondary(t, "dc2")
	ss.activate(t, ps.token(t, "dc2"))
	convergeRoots(t, ps, ss)
	ss.s.Stop()

	// Many batches while it is away: the stream keeps the last 5 only.
	changed := 0
	for i := range 30 {
		ps.put(t, fmt.Sprintf("logical/gap/%02d", i), fmt.Sprint("v", i+1))
		changed++
		if i%3 == 0 {
			ps.del(t, fmt.Sprintf("logical/gap/%02d", i))
		}
		ps.waitShipped(t)
	}
	ps.put(t, "logical/gap/new", "n")
	ps.waitShipped(t)
	first, _, _, err := b.StreamState(ctx, replication.StreamName("dc1"))
	if err != nil {
		t.Fatal(err)
	}
	if first < 10 {
		t.Fatalf("stream first seq %d: the limits did not drop messages", first)
	}
	ss.mu.Lock()
	ss.states = nil
	ss.mu.Unlock()
	s2, err := secondary.Open(ctx, ss.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ss.start(t, s2)
	convergeRoots(t, ps, ss)
	if states := ss.seen(); !sawInOrder(states, secondary.StateMerkleDiff, secondary.StateMerkleSync, secondary.StateStreaming) || slices.Contains(states, secondary.StateSync) {
		t.Fatalf("states %v: want merkle-diff, merkle-sync, stream-wals and no full listing", states)
	}
	// 30 changed or deleted and 1 added; streaming from RemoteApplied may have
	// applied the last few already, never more.
	if st := s2.Status(); st.SyncTotalKeys == 0 || st.SyncTotalKeys > changed+1 || st.SyncKeysDone != st.SyncTotalKeys {
		t.Fatalf("sync progress %d of %d, want all of at most %d", st.SyncKeysDone, st.SyncTotalKeys, changed+1)
	}
	ps.put(t, "logical/gap/after", "x")
	convergeRoots(t, ps, ss)
}

// TestMerkleGuardRepairsTampering: the secondary's data is changed behind the
// replication's back (through its WAL, so its index knows). The next guarded
// batch does not match: a merkle sync repairs exactly that.
func TestMerkleGuardRepairsTampering(t *testing.T) {
	b := embeddedBus(t)
	ps := startMerklePrimary(t, b, "dc1", bus.StreamConfig{})
	for i := range 20 {
		ps.put(t, fmt.Sprintf("logical/g/%02d", i), fmt.Sprint("v", i))
	}
	ss := newMerkleSecondary(t, "dc2")
	ss.activate(t, ps.token(t, "dc2"))
	convergeRoots(t, ps, ss)
	syncs := count(ss.seen(), secondary.StateMerkleDiff)

	ss.del(t, "logical/g/03")
	ss.put(t, "logical/g/07", "tampered")
	ss.put(t, "logical/g/extra", "not on the primary")
	if ps.root(t) == ss.root(t) {
		t.Fatal("tampering left the roots equal")
	}
	ps.put(t, "logical/g/next", "a guarded batch")
	convergeRoots(t, ps, ss)
	if n := count(ss.seen(), secondary.StateMerkleDiff); n != syncs+1 {
		t.Fatalf("states %v: %d merkle syncs after the tampering, want 1", ss.seen(), n-syncs)
	}
	if st := ss.s.Status(); st.SyncTotalKeys != 3 || st.SyncKeysDone != 3 {
		t.Fatalf("repair sync progress %d of %d, want 3 of 3", st.SyncKeysDone, st.SyncTotalKeys)
	}
	for k, want := range map[string]string{"logical/g/03": "v3", "logical/g/07": "v7"} {
		if v, _ := ss.get(t, k); v != want {
			t.Fatalf("%s = %q, want %q", k, v, want)
		}
	}
	if _, ok := ss.get(t, "logical/g/extra"); ok {
		t.Fatal("the key only the secondary had survived the repair")
	}
}

// TestMerkleFallbackWithoutPrimaryIndex: a primary without an index answers
// the merkle RPC "unavailable"; a secondary with an index keeps the full
// listing working.
func TestMerkleFallbackWithoutPrimaryIndex(t *testing.T) {
	b := embeddedBus(t)
	ps := startPrimary(t, b, "dc1", bus.StreamConfig{})
	ps.put(t, "logical/f/1", "1")
	ss := newMerkleSecondary(t, "dc2")
	ss.activate(t, ps.token(t, "dc2"))
	converge(t, ps, ss)
	// The data lands before the state turns back to streaming: wait for it.
	eventually(t, 15*time.Second, "merkle-diff, then the full listing, then stream-wals", func() bool {
		return sawInOrder(ss.seen(), secondary.StateMerkleDiff, secondary.StateSync, secondary.StateStreaming)
	})
	ps.put(t, "logical/f/2", "2")
	converge(t, ps, ss)
}

// The applier does not wait for the local merkle index to compare a guard:
// with the index's follower stopped, guarded batches are still applied one
// after another (before, each waited guardWait, 2 s, for the index); their
// guards are compared against the root at each batch's own write once it
// runs again, so nothing mismatches.
func TestApplierDoesNotWaitForTheGuard(t *testing.T) {
	b := embeddedBus(t)
	ps := startMerklePrimary(t, b, "dc1", bus.StreamConfig{})
	ss := newMerkleSecondary(t, "dc2")
	ss.activate(t, ps.token(t, "dc2"))
	ps.put(t, "logical/a/0", "v")
	convergeRoots(t, ps, ss)
	syncs := count(ss.seen(), secondary.StateMerkleDiff)

	ss.xmu.Lock()
	f := ss.f
	ss.xmu.Unlock()
	f.Stop()
	const n = 20
	for i := range n {
		ps.put(t, fmt.Sprintf("logical/a/%02d", i+1), "guarded") // a batch each, each with its guard
		ps.waitShipped(t)
	}
	eventually(t, 15*time.Second, fmt.Sprintf("%d guarded batches applied while the index stands still (at 2 s a guard, 40 s)", n), func() bool {
		return ss.s.LastRemoteWAL() >= ps.wal.LastIndex()
	})
	f.Start()
	convergeRoots(t, ps, ss)
	if got := count(ss.seen(), secondary.StateMerkleDiff); got != syncs {
		t.Fatalf("states %v: %d merkle syncs; the guards compared late must all match", ss.seen(), got-syncs)
	}
}
