package primary

// The shipper on an untrusted bus (docs/replication.md, "The WAL stream on an
// untrusted bus"): a real embedded NATS server, and a stranger on it with a
// plain nats.go client who deletes, changes and squats the WAL stream and
// publishes junk under message ids it predicts.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/replication"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
	"github.com/cofferhq/coffer/wal"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

const shipWait = 20 * time.Second

// shipRig is a primary of cluster "dc1" shipping over an embedded NATS
// server, and a stranger's JetStream client on that server.
type shipRig struct {
	cfg Config
	p   *Primary
	raw *inmem.Backend
	log *wal.Log
	js  jetstream.JetStream // the stranger
}

func newShipRig(t *testing.T) *shipRig { return newShipRigWith(t, nil) }

// newShipRigWith is newShipRig with edit applied to the primary's Config.
func newShipRigWith(t *testing.T, edit func(*Config)) *shipRig {
	t.Helper()
	ctx := context.Background()
	raw := inmem.New()
	l, err := wal.Open(ctx, raw, wal.Options{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	b := bustest.Start(t)
	r := &shipRig{raw: raw, log: l, cfg: Config{
		ClusterID: "dc1", APIAddr: "http://dc1:8200", Bus: b, WAL: l, Raw: raw,
		State:   logical.NewView(raw, "core/replication/primary/"),
		RootKey: func() ([]byte, error) { return make([]byte, 32), nil },
		Stream:  bus.StreamConfig{MaxAge: time.Hour},
		Logger:  zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel),
	}}
	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if r.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&r.cfg)
	}
	r.p, err = Enable(ctx, r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.p.Stop)
	return r
}

// checkEvery makes the shippers this test starts check the stream every d
// (and after a failed publish).
func checkEvery(t *testing.T, d time.Duration) {
	old := streamCheckEvery
	streamCheckEvery = d
	t.Cleanup(func() { streamCheckEvery = old })
}

// write commits n WAL entries, one replicated key each, named after tag.
func (r *shipRig) write(t *testing.T, tag string, n int) {
	t.Helper()
	for i := range n {
		if err := r.log.Put(context.Background(), &storage.Entry{Key: fmt.Sprintf("data/%s/%d", tag, i), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
}

// shippedAll waits until the shipper has had every committed entry acknowledged.
func (r *shipRig) shippedAll(t *testing.T) {
	t.Helper()
	testutil.Eventually(t, shipWait, "every WAL entry shipped", func() error {
		if s, l := r.p.Status().ShippedIndex, r.log.LastIndex(); s != l {
			return fmt.Errorf("shipped %d of %d (%s)", s, l, r.p.Status().ShipError)
		}
		return nil
	})
}

// genuine returns the ranges of the primary's own batches in the WAL stream,
// in stream order, skipping whatever does not verify (the stranger's junk).
func (r *shipRig) genuine(t *testing.T) [][2]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, last, _, err := r.cfg.Bus.StreamState(ctx, r.p.stream)
	if err != nil {
		t.Fatal(err)
	}
	r.p.mu.Lock()
	st := r.p.st
	pub := st.signer().Public().(ed25519.PublicKey)
	r.p.mu.Unlock()
	var out [][2]uint64
	for seq := first; seq <= last; seq++ {
		data, err := r.cfg.Bus.StreamMsg(ctx, r.p.stream, seq)
		if err != nil {
			t.Fatalf("read stream message %d: %v", seq, err)
		}
		epoch, _, _, err := replication.PeekBatch(data)
		if err != nil {
			continue
		}
		r.p.mu.Lock()
		key := st.key(epoch)
		r.p.mu.Unlock()
		if b, err := replication.OpenBatch(data, "dc1", key, pub); err == nil {
			out = append(out, [2]uint64{b.First, b.Last})
		}
	}
	return out
}

// covers checks that the stream's genuine batches hold every WAL index in
// from..to, in order.
func (r *shipRig) covers(t *testing.T, from, to uint64) error {
	t.Helper()
	next := from
	for _, b := range r.genuine(t) {
		if b[0] <= next && b[1] >= next {
			next = b[1] + 1
		}
	}
	if next <= to {
		return fmt.Errorf("the stream's genuine batches hold the WAL up to %d of %d..%d: %v", next-1, from, to, r.genuine(t))
	}
	return nil
}

// A stranger deletes the WAL stream while the primary ships: the shipper
// re-creates it after the last sequence it saw, and the batches shipped
// afterwards are in it.
func TestShipperRecreatesADeletedStream(t *testing.T) {
	r := newShipRig(t)
	r.write(t, "before", 5)
	r.shippedAll(t)
	ctx := context.Background()
	_, oldLast, _, err := r.cfg.Bus.StreamState(ctx, r.p.stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.js.DeleteStream(ctx, r.p.stream); err != nil {
		t.Fatal(err)
	}
	from := r.log.LastIndex() + 1
	r.write(t, "after", 5)
	r.shippedAll(t)
	if err := r.covers(t, from, r.log.LastIndex()); err != nil {
		t.Fatal(err)
	}
	first, _, _, err := r.cfg.Bus.StreamState(ctx, r.p.stream)
	if err != nil || first <= oldLast {
		t.Fatalf("the re-created stream starts at %d (%v), want past the deleted stream's last sequence %d", first, err, oldLast)
	}
	st := r.p.Status()
	if st.StreamRepairs == 0 || !strings.Contains(st.LastStreamRepair, "missing") || st.LastStreamRepairAt.IsZero() || st.ShipError != "" {
		t.Fatalf("status after the repair: %+v", st)
	}
}

// Deleted while nothing is written: the idle shipper re-creates it.
func TestShipperRecreatesAStreamDeletedWhileIdle(t *testing.T) {
	checkEvery(t, 50*time.Millisecond)
	r := newShipRig(t)
	ctx := context.Background()
	if err := r.js.DeleteStream(ctx, r.p.stream); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, shipWait, "the WAL stream is back", func() error {
		_, err := r.cfg.Bus.CheckStream(ctx, r.cfg.streamConfig())
		return err
	})
}

// A stranger changes the stream's settings (a message limit of 1 would let
// every batch push the previous one out before a secondary reads it): the
// shipper's periodic check puts them back.
func TestShipperRestoresAChangedStream(t *testing.T) {
	checkEvery(t, 50*time.Millisecond)
	r := newShipRig(t)
	ctx := context.Background()
	s, err := r.js.Stream(ctx, r.p.stream)
	if err != nil {
		t.Fatal(err)
	}
	evil := s.CachedInfo().Config
	evil.MaxMsgs = 1
	if _, err := r.js.UpdateStream(ctx, evil); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, shipWait, "the stream's settings restored", func() error {
		chk, err := r.cfg.Bus.CheckStream(ctx, r.cfg.streamConfig())
		if err == nil && len(chk.Drift) > 0 {
			err = fmt.Errorf("drift %v", chk.Drift)
		}
		return err
	})
	if st := r.p.Status(); st.StreamRepairs != 1 || !strings.Contains(st.LastStreamRepair, "max_msgs 1") {
		t.Fatalf("status: %+v", st)
	}
}

// A stranger deletes the stream and puts another on the WAL subject between
// two checks: the next publish is acknowledged by the squatter, which the
// shipper does not take as shipped; it deletes the squatter and re-creates
// its stream.
func TestShipperTakesTheSubjectBackFromASquatter(t *testing.T) {
	checkEvery(t, time.Hour) // only a failed publish makes it look
	r := newShipRig(t)
	ctx := context.Background()
	if err := r.js.DeleteStream(ctx, r.p.stream); err != nil {
		t.Fatal(err)
	}
	if _, err := r.js.CreateStream(ctx, jetstream.StreamConfig{Name: "SQUAT", Subjects: []string{"coffer.>"}}); err != nil {
		t.Fatal(err)
	}
	from := r.log.LastIndex() + 1
	r.write(t, "squatted", 3)
	r.shippedAll(t)
	if err := r.covers(t, from, r.log.LastIndex()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.js.Stream(ctx, "SQUAT"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("the squatting stream: %v, want deleted", err)
	}
	if st := r.p.Status(); st.StreamRepairs != 1 || !strings.Contains(st.LastStreamRepair, "deleted stream SQUAT") {
		t.Fatalf("status: %+v", st)
	}
}

// A stranger reads the WAL index (public in status) and publishes junk under
// every id it can compute for the batches to come: the ids of the old scheme
// (<cluster>-<first>-<last>) and ids of today's shape with tags it made up.
// JetStream keeps the junk, and the primary's batches land all the same.
func TestJunkUnderPredictedIDsDoesNotDropBatches(t *testing.T) {
	r := newShipRig(t)
	r.write(t, "before", 2)
	r.shippedAll(t)
	ctx := context.Background()
	next := r.log.LastIndex() + 1
	junk := 0
	for first := next; first < next+4; first++ {
		for last := first; last < first+8; last++ {
			for _, id := range []string{
				fmt.Sprintf("dc1-%d-%d", first, last),
				fmt.Sprintf("dc1-%d-%d-%032x", first, last, 0),
				fmt.Sprintf("dc1-%d-%d-%032x", first, last, first*1000+last),
			} {
				ack, err := r.js.Publish(ctx, "coffer.dc1.wal", []byte("junk"), jetstream.WithMsgID(id))
				if err != nil || ack.Duplicate {
					t.Fatalf("publish junk under %s: %+v, %v", id, ack, err)
				}
				junk++
			}
		}
	}
	for i := range 4 { // one batch per write: each waits for the previous
		r.write(t, fmt.Sprint("after", i), 1)
		r.shippedAll(t)
	}
	if err := r.covers(t, next, r.log.LastIndex()); err != nil {
		t.Fatal(err)
	}
	if st := r.p.Status(); st.ForeignDuplicates != 0 {
		t.Fatalf("%d foreign duplicates: none of the %d junk ids should have matched", st.ForeignDuplicates, junk)
	}
}

// Someone who learned the id of a batch (it went out while the stream was
// missing, say) publishes junk under it first: JetStream acknowledges the real
// batch as a duplicate, the primary reads the message back, finds it is not
// its own, and ships the batch again under a fresh id.
func TestForeignDuplicateIsNotTakenAsShipped(t *testing.T) {
	r := newShipRig(t)
	r.write(t, "before", 1)
	r.shippedAll(t)
	ctx := context.Background()
	next := r.log.LastIndex() + 1
	epoch, _, signer := r.p.currentKey()
	stolen := msgID("dc1", msgIDKey(signer), epoch, 1, next, next, 0)
	if _, err := r.js.Publish(ctx, "coffer.dc1.wal", []byte("junk"), jetstream.WithMsgID(stolen)); err != nil {
		t.Fatal(err)
	}
	r.write(t, "after", 1)
	r.shippedAll(t)
	if err := r.covers(t, next, next); err != nil {
		t.Fatal(err)
	}
	if st := r.p.Status(); st.ForeignDuplicates != 1 {
		t.Fatalf("status: %+v, want 1 foreign duplicate", st)
	}
}

// The primary's own retry of a batch keeps its id, and a duplicate of its own
// message counts as shipped: the stream holds the batch once.
func TestOwnRetryIsDeduplicated(t *testing.T) {
	r := newShipRig(t)
	r.p.Stop() // publish by hand
	r.write(t, "x", 1)
	entries, err := r.log.Read(context.Background(), r.log.LastIndex()-1, 1)
	if err != nil {
		t.Fatal(err)
	}
	b := r.p.makeBatch(entries)
	for attempt := range 2 {
		var salt uint32
		if err := r.p.publishOnce(context.Background(), b, nil, &salt); err != nil || salt != 0 {
			t.Fatalf("attempt %d: %v, salt %d", attempt, err, salt)
		}
	}
	if got := r.genuine(t); len(got) != 1 {
		t.Fatalf("the stream holds %v, want the batch once", got)
	}
	if _, _, msgs, err := r.cfg.Bus.StreamState(context.Background(), r.p.stream); err != nil || msgs != 1 {
		t.Fatalf("%d messages, %v", msgs, err)
	}
	if st := r.p.Status(); st.ForeignDuplicates != 0 {
		t.Fatalf("status: %+v", st)
	}
}

// Ids are stable for one batch and epoch, and differ with anything else.
func TestMsgIDs(t *testing.T) {
	_, k1, _ := ed25519.GenerateKey(nil)
	_, k2, _ := ed25519.GenerateKey(nil)
	key := msgIDKey(k1)
	id := msgID("dc1", key, 1, 1, 5, 9, 0)
	if id != msgID("dc1", msgIDKey(k1), 1, 1, 5, 9, 0) || !strings.HasPrefix(id, "dc1-5-9-") || len(id) != len("dc1-5-9-")+32 {
		t.Fatalf("id %q", id)
	}
	for _, other := range []string{
		msgID("dc1", msgIDKey(k2), 1, 1, 5, 9, 0), msgID("dc1", key, 2, 1, 5, 9, 0), msgID("dc1", key, 1, 1, 5, 10, 0),
		msgID("dc1", key, 1, 1, 6, 9, 0), msgID("dc1", key, 1, 1, 5, 9, 1), msgID("dc1", key, 1, 2, 5, 9, 0),
	} {
		if other == id {
			t.Fatalf("%q repeats", other)
		}
	}
}

// The id key is derived once per signing key and follows a new one (a
// rotation): a stale key would give a new key's batches ids an old key
// predicts.
func TestIDKeyFollowsTheSigner(t *testing.T) {
	_, k1, _ := ed25519.GenerateKey(nil)
	_, k2, _ := ed25519.GenerateKey(nil)
	p := &Primary{}
	a := p.idKey(k1)
	if !bytes.Equal(a, msgIDKey(k1)) || &p.idKey(k1)[0] != &a[0] {
		t.Fatalf("idKey(k1) is not msgIDKey(k1), derived once")
	}
	if b := p.idKey(k2); !bytes.Equal(b, msgIDKey(k2)) || bytes.Equal(b, a) {
		t.Fatalf("idKey did not follow the signer to k2")
	}
	if !bytes.Equal(p.idKey(k1), a) {
		t.Fatalf("idKey did not follow the signer back to k1")
	}
}

// countingState counts the writes of the stored shipped index.
type countingState struct {
	storage.Backend
	puts atomic.Int64
}

func (c *countingState) Put(ctx context.Context, e *storage.Entry) error {
	if e.Key == shippedKey {
		c.puts.Add(1)
	}
	return c.Backend.Put(ctx, e)
}

// A steady trickle of writes, each shipped before the next, does not store
// the shipped index after every batch (a storage write, on bolt an fsync,
// per batch: it was); once the log stays quiet the stored index catches up.
func TestShippedIndexIsNotStoredPerBatch(t *testing.T) {
	var cs *countingState
	r := newShipRigWith(t, func(c *Config) {
		cs = &countingState{Backend: c.State}
		c.State = cs
	})
	r.shippedAll(t)
	before := cs.puts.Load()
	const n = 40
	for i := range n {
		r.write(t, fmt.Sprintf("trickle%d", i), 1)
		r.shippedAll(t)
	}
	if got := cs.puts.Load() - before; got > n/4 {
		t.Fatalf("%d writes of the shipped index for %d batches shipped one by one", got, n)
	}
	testutil.Eventually(t, 10*time.Second, "the stored shipped index catches up once the log is quiet", func() error {
		idx, _, err := StoredShipped(context.Background(), r.cfg.State)
		if err != nil || idx != r.log.LastIndex() {
			return fmt.Errorf("stored %d, last %d (%v)", idx, r.log.LastIndex(), err)
		}
		return nil
	})
}
