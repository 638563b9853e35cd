package secondary_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/primary"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/secondary"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/wal"
)

func TestActivationAndStreaming(t *testing.T) {
	b := embeddedBus(t)
	ps := startPrimary(t, b, "dc1", bus.StreamConfig{})
	// Written before the secondary exists: arrives with the full sync.
	ps.put(t, "core/mounts", "mounts-ciphertext")
	ps.put(t, "logical/aaa/before", "v0")
	ps.put(t, "sys/token/id/local-before", "t0") // local: never replicated

	ss := newSecondarySide(t, "dc2")
	// Junk the wipe must remove, and a stale replicated key the sync must not keep.
	ss.put(t, "logical/old/stale", "stale")
	ss.activate(t, ps.token(t, "dc2"))
	converge(t, ps, ss)

	// Writes after activation stream in order: the last value wins.
	for i := range 50 {
		ps.put(t, "logical/aaa/counter", fmt.Sprint(i))
	}
	ps.put(t, "logical/bbb/x", "x")
	ps.del(t, "logical/aaa/before")
	ps.put(t, "sys/token/id/local", "local")               // local
	ps.put(t, "core/replication/primary-extra", "ignored") // ignored
	err := ps.wal.Transaction(context.Background(), []*storage.TxnOp{
		{Operation: storage.PutOperation, Entry: &storage.Entry{Key: "logical/ccc/1", Value: []byte("1")}},
		{Operation: storage.PutOperation, Entry: &storage.Entry{Key: "sys/expire/lease", Value: []byte("l")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	converge(t, ps, ss)
	if v, _ := ss.get(t, "logical/aaa/counter"); v != "49" {
		t.Fatalf("counter = %q, want 49", v)
	}
	for _, k := range []string{"sys/token/id/local", "sys/token/id/local-before", "sys/expire/lease", "core/replication/primary-extra", "logical/old/stale", "logical/aaa/before"} {
		if _, ok := ss.get(t, k); ok {
			t.Errorf("secondary holds %s", k)
		}
	}
	ps.waitShipped(t)
	eventually(t, 10*time.Second, "both sides report each other", func() bool {
		st := ss.s.Status()
		pst := ps.p.Status()
		return st.State == secondary.StateStreaming && st.Connected && st.LastRemoteWAL == ps.wal.LastIndex() &&
			len(pst.Secondaries) == 1 && pst.Secondaries[0].Connected && pst.Secondaries[0].State == primary.SecondaryActive &&
			pst.Secondaries[0].LastRemoteWAL == ps.wal.LastIndex() && pst.Secondaries[0].APIAddr == "http://dc2:8200"
	})
	ss.mu.Lock()
	applied := strings.Join(ss.applied, ",")
	ss.mu.Unlock()
	if !strings.Contains(applied, "logical/bbb/x") || !strings.Contains(applied, "core/mounts") {
		t.Fatalf("OnApplied missed keys: %s", applied)
	}

	// Restart the secondary from its stored state: it resumes streaming.
	ss.s.Stop()
	s2, err := secondary.Open(context.Background(), ss.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ss.start(t, s2)
	ps.put(t, "logical/ddd/after-restart", "r")
	converge(t, ps, ss)
}

func TestActivationRefused(t *testing.T) {
	ctx := context.Background()
	b := embeddedBus(t)
	ps := startPrimary(t, b, "dc1", bus.StreamConfig{})

	refused := func(tok, want string) {
		t.Helper()
		ss := newSecondarySide(t, "dc2")
		_, _, err := secondary.Activate(ctx, ss.cfg, tok, b.ClientURL())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("activation error %v, want one saying %q", err, want)
		}
	}
	refused("garbage", "malformed")

	// Used.
	tok := ps.token(t, "used")
	ss := newSecondarySide(t, "used")
	s, _, err := secondary.Activate(ctx, ss.cfg, tok, "")
	if err != nil {
		t.Fatal(err)
	}
	s.Stop()
	refused(tok, "activation token was already used")

	// Live token or active secondary: a second token is refused.
	if _, _, err := ps.p.SecondaryToken(ctx, "used", 0); !errors.Is(err, primary.ErrSecondaryExists) {
		t.Fatalf("second token for an active secondary: %v", err)
	}
	ps.token(t, "pending")
	if _, _, err := ps.p.SecondaryToken(ctx, "pending", 0); !errors.Is(err, primary.ErrSecondaryExists) {
		t.Fatalf("second live token: %v", err)
	}
	if _, _, err := ps.p.SecondaryToken(ctx, "bad id!", 0); !errors.Is(err, primary.ErrInvalidID) {
		t.Fatalf("bad id: %v", err)
	}

	// Revoked before use.
	tok = ps.token(t, "rev")
	if err := ps.p.RevokeSecondary(ctx, "rev"); err != nil {
		t.Fatal(err)
	}
	refused(tok, "activation token was revoked")

	// Expired: valid on the secondary's clock, expired on the primary's.
	tok, _, err = ps.p.SecondaryToken(ctx, "late", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ps.clock.Advance(2 * time.Minute)
	refused(tok, "expired")
	ps.clock.Advance(-2 * time.Minute)
	// Expired on both clocks: the secondary refuses it without asking.
	tok, _, err = ps.p.SecondaryToken(ctx, "later", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ss = newSecondarySide(t, "later")
	ss.cfg.Now = func() time.Time { return time.Now().Add(time.Hour) }
	if _, _, err := secondary.Activate(ctx, ss.cfg, tok, ""); !errors.Is(err, replication.ErrTokenExpired) {
		t.Fatalf("expired token: %v", err)
	}

	// Minted by someone else for this primary's cluster id.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	forged, err := replication.SignToken(&replication.TokenClaims{
		Issuer: "dc1", Subject: "pending", ID: "x", IssuedAt: time.Now().Unix(), Expires: time.Now().Add(time.Hour).Unix(),
		BusURL: b.ClientURL(), Secret: replication.NewActivationSecret(),
	}, other)
	if err != nil {
		t.Fatal(err)
	}
	// The primary refuses it, signed with its own key; the secondary trusts
	// only the key in the token it holds, so it cannot tell that refusal from
	// a stranger's and waits for an answer it can verify until its deadline.
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	ss = newSecondarySide(t, "pending")
	_, _, err = secondary.Activate(sctx, ss.cfg, forged, b.ClientURL())
	if !errors.Is(err, bus.ErrUnreachable) || !strings.Contains(err.Error(), "bad signature") {
		t.Fatalf("token of another key: %v, want a timeout naming the bad signature", err)
	}
}

// primaryKeys reads the primary's signing key and the current replication key
// from its state, to forge and replay batches as an attacker holding them would.
func primaryKeys(t *testing.T, ps *primarySide) (ed25519.PrivateKey, uint32, []byte) {
	t.Helper()
	st := readPrimaryState(t, ps)
	return st.SigningKey, st.Epoch, st.Keys[fmt.Sprint(st.Epoch)]
}

// primaryState is what the tests read of the primary's stored state.
type primaryState struct {
	SigningKey  []byte            `json:"signing_key"`
	Epoch       uint32            `json:"epoch"`
	Keys        map[string][]byte `json:"keys"`
	Generation  uint64            `json:"generation"`
	Secondaries map[string]struct {
		RPCKey []byte `json:"rpc_key"`
	} `json:"secondaries"`
}

func readPrimaryState(t *testing.T, ps *primarySide) primaryState {
	t.Helper()
	e, err := ps.cfg.State.Get(context.Background(), "state")
	if err != nil || e == nil {
		t.Fatalf("read primary state: %v", err)
	}
	var st primaryState
	if err := json.Unmarshal(e.Value, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// streamingPair is a primary dc1 and its secondary dc2 streaming, with one
// write (logical/k/a = real) replicated and shipped.
func streamingPair(t *testing.T) (*bus.Bus, *primarySide, *secondarySide) {
	t.Helper()
	b := embeddedBus(t)
	ps := startPrimary(t, b, "dc1", bus.StreamConfig{})
	ss := newSecondarySide(t, "dc2")
	ss.activate(t, ps.token(t, "dc2"))
	ps.put(t, "logical/k/a", "real")
	converge(t, ps, ss)
	ps.waitShipped(t)
	return b, ps, ss
}

func TestForgedAndReplayedBatches(t *testing.T) {
	ctx := context.Background()
	b, ps, ss := streamingPair(t)

	signer, epoch, key := primaryKeys(t, ps)
	next := ps.wal.LastIndex() + 1
	batch := func(epoch uint32, first, last uint64, k, v string) *replication.Batch {
		return &replication.Batch{ClusterID: "dc1", Epoch: epoch, First: first, Last: last, Entries: []*wal.Entry{{
			Index: first, Ops: []wal.Op{{Kind: storage.PutOperation, Class: wal.Replicated, Key: k, Value: []byte(v)}},
		}}}
	}
	seal := func(b *replication.Batch, key []byte, signer ed25519.PrivateKey) []byte {
		msg, err := replication.SealBatch(b, key, signer)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	_, otherSigner, _ := ed25519.GenerateKey(rand.Reader)
	otherKey := make([]byte, 32)
	altered := seal(batch(epoch, next, next, "logical/forged/altered", "x"), key, signer)
	altered[40] ^= 1
	otherCluster := batch(epoch, next, next, "logical/forged/cluster", "x")
	otherCluster.ClusterID = "dc9"
	forged := map[string][]byte{
		"random bytes":      []byte("definitely not a batch"),
		"another signer":    seal(batch(epoch, next, next, "logical/forged/signer", "x"), key, otherSigner),
		"another key":       seal(batch(epoch, next, next, "logical/forged/key", "x"), otherKey, signer),
		"altered":           altered,
		"another cluster":   seal(otherCluster, key, signer),
		"unknown epoch":     seal(batch(epoch+7, next, next, "logical/forged/epoch", "x"), key, signer),
		"replay, new value": seal(batch(epoch, 1, ps.wal.LastIndex(), "logical/k/a", "replayed"), key, signer),
	}
	// An insider (any secondary: it holds the replication key) tags a batch
	// for dc2 under a key of its own: dc2 checks the signature instead.
	claimed, err := replication.NewTagKey("dc3", otherKey)
	if err != nil {
		t.Fatal(err)
	}
	victim, _ := replication.NewTagKey("dc2", otherKey)
	claimed.ID = victim.ID
	if forged["tag under another key"], err = replication.SealBatchTagged(batch(epoch, next, next, "logical/forged/tag", "x"), key, nil, otherSigner, []replication.TagKey{claimed}); err != nil {
		t.Fatal(err)
	}
	subject := replication.WALSubject("dc1")
	for name, msg := range forged {
		if _, err := b.Publish(ctx, subject, msg, "", nil); err != nil {
			t.Fatalf("publish %s: %v", name, err)
		}
	}
	// A real write after them: once it arrived, every forged one was handled.
	ps.put(t, "logical/k/b", "after")
	converge(t, ps, ss)
	if v, _ := ss.get(t, "logical/k/a"); v != "real" {
		t.Fatalf("a replayed batch was applied: logical/k/a = %q", v)
	}
	for _, kv := range ss.replicated(t) {
		if strings.HasPrefix(kv, "logical/forged/") {
			t.Fatalf("a forged batch was applied: %s", kv)
		}
	}
	if st := ss.s.Status(); st.State != secondary.StateStreaming {
		t.Fatalf("secondary state %s after forged batches", st.State)
	}
}

// A batch carrying this secondary's tag is trusted on it, whatever its
// signature: the primary and the secondary derive the same tag key from
// the secondary's RPC key (were they to differ, every batch would fall back
// to its signature, silently, at a quarter of the secondary's CPU).
func TestSecondaryTrustsItsTag(t *testing.T) {
	ctx := context.Background()
	b, ps, ss := streamingPair(t)
	_, epoch, key := primaryKeys(t, ps)
	st := readPrimaryState(t, ps)
	tag, err := replication.NewTagKey("dc2", st.Secondaries["dc2"].RPCKey)
	if err != nil {
		t.Fatal(err)
	}
	// The primary tagged what it shipped for dc2: it opens on the tag
	// under a public key that is not the primary's.
	stranger, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	_, last, _, err := b.StreamState(ctx, replication.StreamName("dc1"))
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := b.StreamMsg(ctx, replication.StreamName("dc1"), last)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replication.OpenBatchTagged(shipped, "dc1", key, nil, stranger, &tag); err != nil {
		t.Fatalf("the primary's last batch does not carry dc2's tag: %v", err)
	}
	next := ps.wal.LastIndex() + 1
	msg, err := replication.SealBatchTagged(&replication.Batch{ClusterID: "dc1", Epoch: epoch, First: next, Last: next, Generation: st.Generation, Entries: []*wal.Entry{{
		Index: next, Ops: []wal.Op{{Kind: storage.PutOperation, Class: wal.Replicated, Key: "logical/k/tagged", Value: []byte("on its tag")}},
	}}}, key, nil, strangerKey, []replication.TagKey{tag})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, replication.WALSubject("dc1"), msg, "", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the batch trusted on its tag is applied", func() bool {
		v, ok := ss.get(t, "logical/k/tagged")
		return ok && v == "on its tag"
	})
}

func TestRevokeSecondary(t *testing.T) {
	ctx := context.Background()
	b := embeddedBus(t)
	ps := startPrimary(t, b, "dc1", bus.StreamConfig{})
	s1 := newSecondarySide(t, "dc2")
	s1.activate(t, ps.token(t, "dc2"))
	s2 := newSecondarySide(t, "dc3")
	s2.activate(t, ps.token(t, "dc3"))
	ps.put(t, "logical/k/1", "1")
	converge(t, ps, s1)
	converge(t, ps, s2)

	if err := ps.p.RevokeSecondary(ctx, "dc2"); err != nil {
		t.Fatal(err)
	}
	if err := ps.p.RevokeSecondary(ctx, "nobody"); !errors.Is(err, primary.ErrUnknownSecondary) {
		t.Fatalf("revoke unknown: %v", err)
	}
	ps.put(t, "logical/k/2", "2")
	converge(t, ps, s2) // the remaining secondary fetched the new epoch's key
	if st := s2.s.Status(); st.Epoch != 2 {
		t.Fatalf("remaining secondary at epoch %d, want 2", st.Epoch)
	}
	eventually(t, 10*time.Second, "the revoked secondary reports it", func() bool {
		return s1.s.Status().State == secondary.StateRevoked
	})
	if _, ok := s1.get(t, "logical/k/2"); ok {
		t.Fatal("the revoked secondary received a write made after its revocation")
	}
	if st := ps.p.Status(); st.Secondaries[0].State != primary.SecondaryRevoked || st.Epoch != 2 {
		t.Fatalf("primary status after revoke: %+v", st)
	}
	// Restarting it does not help: its RPCs are refused.
	s1.s.Stop()
	again, err := secondary.Open(ctx, s1.cfg)
	if err != nil {
		t.Fatal(err)
	}
	s1.start(t, again)
	eventually(t, 10*time.Second, "the restarted revoked secondary stops", func() bool {
		st := again.Status()
		return st.State == secondary.StateRevoked && strings.Contains(st.LastError, "revoked")
	})
	// A new token for the revoked id activates it again.
	s1b := newSecondarySide(t, "dc2")
	s1b.activate(t, ps.token(t, "dc2"))
	converge(t, ps, s1b)
}

func TestGapResync(t *testing.T) {
	ctx := context.Background()
	b := embeddedBus(t)
	ps := startPrimary(t, b, "dc1", bus.StreamConfig{MaxMsgs: 5})
	ss := newSecondarySide(t, "dc2")
	for i := range 20 {
		ps.put(t, fmt.Sprintf("logical/gap/%02d", i), "v0")
	}
	ss.activate(t, ps.token(t, "dc2"))
	converge(t, ps, ss)
	// The state is stored at the end of the first sync, after its last write.
	eventually(t, 10*time.Second, "the first sync ends", func() bool { return ss.s.Status().State == secondary.StateStreaming })
	ss.s.Stop()

	// Many batches while it is away: the stream keeps the last 5 only.
	for i := range 30 {
		ps.put(t, fmt.Sprintf("logical/gap/%02d", i), fmt.Sprint("v", i+1))
		if i%3 == 0 {
			ps.del(t, fmt.Sprintf("logical/gap/%02d", i))
		}
		ps.waitShipped(t)
	}
	first, _, _, err := b.StreamState(ctx, replication.StreamName("dc1"))
	if err != nil {
		t.Fatal(err)
	}
	if first < 10 {
		t.Fatalf("stream first seq %d: the limits did not drop messages", first)
	}
	s2, err := secondary.Open(ctx, ss.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ss.start(t, s2)
	converge(t, ps, ss)
	eventually(t, 10*time.Second, "the secondary is back to streaming", func() bool {
		st := s2.Status()
		return st.State == secondary.StateStreaming && st.LastRemoteWAL == ps.wal.LastIndex()
	})
	// And streaming works after the sync.
	ps.put(t, "logical/gap/after", "x")
	converge(t, ps, ss)
}

func TestPrimaryRestartContinuesShipping(t *testing.T) {
	ctx := context.Background()
	b := embeddedBus(t)
	ps := startPrimary(t, b, "dc1", bus.StreamConfig{})
	ss := newSecondarySide(t, "dc2")
	ss.activate(t, ps.token(t, "dc2"))
	ps.put(t, "logical/r/1", "1")
	converge(t, ps, ss)
	ps.waitShipped(t)
	ps.p.Stop()
	shipped := ps.p.Status().ShippedIndex

	// Written while replication is down: the WAL keeps them.
	ps.put(t, "logical/r/2", "2")
	ps.del(t, "logical/r/1")
	// Stop stored the shipped index (read before Open: the reopened shipper
	// may ship, and store, the entries written while it was down at once;
	// reading its status after Open raced with that before).
	e, err := ps.cfg.State.Get(ctx, "shipped")
	if err != nil || e == nil {
		t.Fatalf("no stored shipped index: %v", err)
	}
	var stored struct {
		Index uint64 `json:"index"`
	}
	if err := json.Unmarshal(e.Value, &stored); err != nil || stored.Index != shipped {
		t.Fatalf("stored shipped index %d (%v), want %d", stored.Index, err, shipped)
	}
	if _, err := primary.Enable(ctx, ps.cfg); !errors.Is(err, primary.ErrAlreadyEnabled) {
		t.Fatalf("enable twice: %v", err)
	}
	p, err := primary.Open(ctx, ps.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ps.p = p
	// Open resumed from the stored index: at or past it.
	if got := p.Status().ShippedIndex; got < shipped {
		t.Fatalf("reopened at shipped index %d, stored %d", got, shipped)
	}
	// Resuming from the stored index (not the WAL's last) is what brings the
	// entries written while down to the secondary.
	converge(t, ps, ss)
	// The registry survived: the secondary's RPCs still work.
	eventually(t, 10*time.Second, "heartbeats reach the reopened primary", func() bool {
		st := p.Status()
		return len(st.Secondaries) == 1 && st.Secondaries[0].Connected
	})
}

func TestNATSOutage(t *testing.T) {
	ctx := context.Background()
	addr, dir := testutil.FreeAddr(t), t.TempDir()
	server, err := bus.Open(ctx, bus.Config{Embedded: true, NoAuth: true, Listen: addr, StoreDir: dir}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	url := server.ClientURL()
	client := newBus(t, bus.Config{URL: url})
	ps := startPrimary(t, client, "dc1", bus.StreamConfig{})
	ss := newSecondarySide(t, "dc2")
	ss.activate(t, ps.token(t, "dc2"))
	ps.put(t, "logical/o/1", "1")
	converge(t, ps, ss)
	// No ack in flight when NATS goes away: an ack lost with the server leaves
	// the message pending until the consumer's AckWait (30s) redelivers it.
	ps.waitShipped(t)
	eventually(t, 10*time.Second, "the secondary acked everything", func() bool {
		_, last, _, err := server.StreamState(ctx, replication.StreamName("dc1"))
		if err != nil {
			t.Fatal(err)
		}
		_, floor, _, err := server.ConsumerInfo(ctx, replication.StreamName("dc1"), replication.ConsumerName("dc2"))
		return err == nil && floor == last
	})

	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	// Writers are not blocked while NATS is down.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20 {
			_ = ps.wal.Put(ctx, &storage.Entry{Key: fmt.Sprint("logical/o/during-", i), Value: []byte("x")})
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("writes blocked while NATS was down")
	}
	eventually(t, 10*time.Second, "the secondary sees the primary as disconnected", func() bool {
		return !ss.s.Status().Connected
	})
	if ps.p.Status().ShippedIndex >= ps.wal.LastIndex() {
		t.Fatal("shipped while NATS was down")
	}
	server2, err := bus.Open(ctx, bus.Config{Embedded: true, NoAuth: true, Listen: addr, StoreDir: dir}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server2.Close() })
	converge(t, ps, ss)
	ps.waitShipped(t)
}
