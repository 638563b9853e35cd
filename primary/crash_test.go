package primary

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
	"github.com/rs/zerolog"
)

// Found by the fault campaign (docs/reliability.md): a primary killed with
// SIGKILL stored its shipped index lazily (every 64 batches or 1 s), so at
// its next start the index lagged the stream's last batch, the claim took
// that for storage gone back in time, and the set moved to the next
// generation: every secondary forgot its position and resynced after every
// crash of the primary. The WAL holds that batch exactly, so the primary
// keeps its generation and resumes after it.
func TestCrashedPrimaryKeepsItsGeneration(t *testing.T) {
	r := newShipRig(t)
	ctx := context.Background()
	r.write(t, "before", 10)
	r.shippedAll(t)
	if g := r.p.Status().Generation; g != 1 {
		t.Fatalf("generation %d, want 1", g)
	}
	last := r.log.LastIndex()
	r.p.Stop()
	// What a SIGKILL leaves: the stored shipped index behind the stream.
	if err := saveShipped(ctx, r.cfg.State, 2, 0); err != nil {
		t.Fatal(err)
	}
	p, err := Open(ctx, r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	testutil.Eventually(t, shipWait, "the restarted primary holds the set", func() error {
		if st := p.Status(); st.ClaimState != ClaimHolding {
			return fmt.Errorf("claim %s (%s)", st.ClaimState, st.ClaimWhy)
		}
		return nil
	})
	if st := p.Status(); st.Generation != 1 || st.ShippedIndex < last {
		t.Fatalf("after the restart: generation %d (want 1: nothing went back in time), shipped %d (want %d)", st.Generation, st.ShippedIndex, last)
	}
	r.p = p
	r.write(t, "after", 3)
	r.shippedAll(t)
	if err := r.covers(t, 1, r.log.LastIndex()); err != nil {
		t.Fatal(err)
	}
}

// Found by the fault campaign: batches were bounded at 1 MiB of ops, so on
// a NATS server with its own default max_payload (1 MiB) a backlog of large
// entries (kv-v2 metadata of many versions) made a message JetStream
// refused, again and again: shipping stopped for good. Batches now stay
// below the server's max_payload.
func TestBatchesStayBelowTheServersMaxPayload(t *testing.T) {
	const maxPayload = 64 << 10
	r := newShipRigWith(t, func(c *Config) { c.Bus = bustest.StartConfig(t, bus.Config{MaxPayload: maxPayload}) })
	ctx := context.Background()
	r.p.Stop()
	// A backlog: 30 entries of 10 KiB, read by the next shipper at once.
	for i := range 30 {
		if err := r.log.Put(ctx, &storage.Entry{Key: fmt.Sprintf("data/big/%d", i), Value: make([]byte, 10<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := Open(ctx, r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	r.p = p
	r.shippedAll(t)
	first, last, _, err := r.cfg.Bus.StreamState(ctx, p.stream)
	if err != nil {
		t.Fatal(err)
	}
	for seq := first; seq <= last; seq++ {
		data, err := r.cfg.Bus.StreamMsg(ctx, p.stream, seq)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > maxPayload {
			t.Fatalf("stream message %d has %d bytes, above max_payload %d", seq, len(data), maxPayload)
		}
	}
	if err := r.covers(t, 1, r.log.LastIndex()); err != nil {
		t.Fatal(err)
	}
}

// Found by the fault campaign: sync pages and fetch replies were bounded at
// 1 MiB of values, which JSON writes in base64: on a NATS server at its own
// 1 MiB max_payload the reply was never sent, and a DR secondary syncing by
// full listing asked for the same page again and again. Replies now stay
// below the server's max_payload.
func TestRepliesStayBelowTheServersMaxPayload(t *testing.T) {
	const maxPayload = 64 << 10
	r := newShipRigWith(t, func(c *Config) { c.Bus = bustest.StartConfig(t, bus.Config{MaxPayload: maxPayload}) })
	ctx := context.Background()
	var keys []string
	for i := range 30 {
		k := fmt.Sprintf("data/big/%02d", i)
		keys = append(keys, k)
		if err := r.log.Put(ctx, &storage.Entry{Key: k, Value: make([]byte, 10<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	ask := func(h func(context.Context, string, []byte) ([]byte, *replication.RPCError), req replication.Message) []byte {
		t.Helper()
		in, err := replication.EncodeMessage(req)
		if err != nil {
			t.Fatal(err)
		}
		out, rerr := h(ctx, "dc2", in)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if len(out) > maxPayload-1024 {
			t.Fatalf("%T: a reply of %d bytes, the server takes %d (less the seal)", req, len(out), maxPayload)
		}
		return out
	}
	listed, after := 0, ""
	for page := 0; page < 40; page++ {
		var sr replication.SyncReply
		if err := replication.DecodeMessage(ask(r.p.handleSync, &replication.SyncRequest{After: after}), &sr); err != nil {
			t.Fatal(err)
		}
		for _, kv := range sr.Entries {
			if strings.HasPrefix(kv.Key, "data/big/") {
				listed++
			}
		}
		if sr.Done {
			break
		}
		after = sr.Next
	}
	var fr replication.FetchReply
	if err := replication.DecodeMessage(ask(r.p.handleFetch, &replication.FetchRequest{Keys: keys}), &fr); err != nil {
		t.Fatal(err)
	}
	if listed != 30 || fr.Answered == 0 || fr.Answered >= 30 {
		t.Fatalf("listed %d of 30 keys over the pages; the fetch answered %d of 30 in one reply", listed, fr.Answered)
	}
}

// Seen by the fault campaign: a single write larger than a batch can carry
// under the server's max_payload (max_request_size allows 32 MiB, NATS
// 1 MiB by default) committed, and its batch could never be published: the
// shipper retried it for ever and every secondary stalled behind it. The
// primary now refuses such a write before it commits, and shipping goes on.
func TestOversizedWriteIsRefusedNotShippedForever(t *testing.T) {
	const maxPayload = 64 << 10
	r := newShipRigWith(t, func(c *Config) { c.Bus = bustest.StartConfig(t, bus.Config{MaxPayload: maxPayload}) })
	ctx := context.Background()
	r.write(t, "small", 1)
	r.shippedAll(t)
	before := r.log.LastIndex()
	err := r.log.Put(ctx, &storage.Entry{Key: "data/big", Value: make([]byte, maxPayload)})
	if !errors.Is(err, wal.ErrEntryTooLarge) || !strings.Contains(err.Error(), "max_payload") {
		t.Fatalf("a write of max_payload bytes: %v; want ErrEntryTooLarge naming max_payload", err)
	}
	if r.log.LastIndex() != before {
		t.Fatalf("the refused write was logged: last index %d, was %d", r.log.LastIndex(), before)
	}
	// Just below the bound it ships, and so does what follows.
	if err := r.log.Put(ctx, &storage.Entry{Key: "data/big", Value: make([]byte, maxPayload/2)}); err != nil {
		t.Fatal(err)
	}
	r.write(t, "after", 1)
	r.shippedAll(t)
	if err := r.covers(t, 1, r.log.LastIndex()); err != nil {
		t.Fatal(err)
	}
	// Local ops count only where a DR secondary receives them.
	local := []wal.Op{{Kind: storage.PutOperation, Class: wal.Local, Key: "sys/token/big", Value: make([]byte, maxPayload)}}
	if err := CheckEntry(r.cfg.Bus, false, local); err != nil {
		t.Fatalf("a large local op without DR: %v", err)
	}
	if err := CheckEntry(r.cfg.Bus, true, local); !errors.Is(err, wal.ErrEntryTooLarge) {
		t.Fatalf("a large local op with DR: %v, want ErrEntryTooLarge", err)
	}
	// Stopped, the primary no longer bounds the log's writes.
	r.p.Stop()
	if err := r.log.Put(ctx, &storage.Entry{Key: "data/big", Value: make([]byte, maxPayload)}); err != nil {
		t.Fatalf("after Stop: %v", err)
	}
}

// Before its bus has ever reached NATS (a primary's start retried while NATS
// is down), CheckEntry assumes NATS' default max_payload, 1 MiB, and says so.
func TestCheckEntryBeforeNATSIsReached(t *testing.T) {
	b, err := bus.Open(context.Background(), bus.Config{URL: "nats://" + testutil.FreeAddr(t)}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	op := func(n int) []wal.Op {
		return []wal.Op{{Kind: storage.PutOperation, Class: wal.Replicated, Key: "logical/x", Value: make([]byte, n)}}
	}
	if err := CheckEntry(b, false, op(512<<10)); err != nil {
		t.Fatalf("512 KiB: %v", err)
	}
	if err := CheckEntry(b, false, op(2<<20)); !errors.Is(err, wal.ErrEntryTooLarge) || !strings.Contains(err.Error(), "assumed") {
		t.Fatalf("2 MiB before NATS is reached: %v; want ErrEntryTooLarge saying the bound is assumed", err)
	}
}
