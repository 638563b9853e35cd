package secondary_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/merkle"
	"github.com/cofferhq/coffer/primary"
	"github.com/cofferhq/coffer/secondary"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/inmem"
	"github.com/cofferhq/coffer/wal"
	"github.com/rs/zerolog"
)

// view is a prefix view over a backend, standing in for the barrier view the
// lead passes (the tests need no encryption: the keys are the test's own).
type view struct {
	b      storage.Backend
	prefix string
}

func (v view) Get(ctx context.Context, k string) (*storage.Entry, error) {
	e, err := v.b.Get(ctx, v.prefix+k)
	if e != nil {
		e.Key = k
	}
	return e, err
}
func (v view) Put(ctx context.Context, e *storage.Entry) error {
	return v.b.Put(ctx, &storage.Entry{Key: v.prefix + e.Key, Value: e.Value})
}
func (v view) Delete(ctx context.Context, k string) error { return v.b.Delete(ctx, v.prefix+k) }
func (v view) List(ctx context.Context, p string) ([]string, error) {
	return v.b.List(ctx, v.prefix+p)
}

func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).With().Timestamp().Logger()
}

// cluster is one side's storage: raw inmem under a WAL, and, once
// startIndex ran, a merkle index over it kept up to date by a Follower.
type cluster struct {
	raw *inmem.Backend
	wal *wal.Log

	xmu sync.Mutex
	x   *merkle.Index
	f   *merkle.Follower
}

// startIndex (re)builds the merkle index from storage (Reindex: what the lead
// does after a wipe) and starts it and its Follower. Stopped at cleanup.
func (c *cluster) startIndex(t *testing.T) {
	t.Helper()
	c.stopIndex(t)
	x, err := merkle.Reindex(context.Background(), c.raw, c.wal, wal.DefaultClassify, merkle.Options{FlushInterval: 5 * time.Millisecond}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	f := merkle.NewFollower(x, c.wal, testLogger(t))
	x.Start()
	f.Start()
	c.xmu.Lock()
	c.x, c.f = x, f
	c.xmu.Unlock()
}

func (c *cluster) stopIndex(t *testing.T) {
	c.xmu.Lock()
	x, f := c.x, c.f
	c.x, c.f = nil, nil
	c.xmu.Unlock()
	if x == nil {
		return
	}
	f.Stop()
	if err := x.Close(context.Background()); err != nil {
		t.Error(err)
	}
}

// index is Config.Merkle: the current index, nil before startIndex.
func (c *cluster) index() *merkle.Index {
	c.xmu.Lock()
	defer c.xmu.Unlock()
	return c.x
}

// root is the index's root once it has applied the whole WAL.
func (c *cluster) root(t *testing.T) string {
	t.Helper()
	x := c.index()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := x.WaitApplied(ctx, c.wal.LastIndex()); err != nil {
		t.Fatalf("merkle index at %d, WAL at %d: %v", x.Applied(), c.wal.LastIndex(), err)
	}
	return x.RootHex()
}

func newCluster(t *testing.T) *cluster { return newClusterWith(t, wal.Options{}) }

// newClusterWith is newCluster with WAL options (MaxOps: a storage cap on a
// transaction's operations, as Consul's).
func newClusterWith(t *testing.T, opts wal.Options) *cluster {
	t.Helper()
	raw := inmem.New()
	l, err := wal.Open(context.Background(), raw, opts, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{raw: raw, wal: l}
	t.Cleanup(func() { _ = l.Close() })
	t.Cleanup(func() { c.stopIndex(t) }) // runs first: before the log closes
	return c
}

func (c *cluster) put(t *testing.T, key, val string) {
	t.Helper()
	if err := c.wal.Put(context.Background(), &storage.Entry{Key: key, Value: []byte(val)}); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) del(t *testing.T, key string) {
	t.Helper()
	if err := c.wal.Delete(context.Background(), key); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) get(t *testing.T, key string) (string, bool) {
	t.Helper()
	e, err := c.raw.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if e == nil {
		return "", false
	}
	return string(e.Value), true
}

// replicated returns every replicated key and value, as "k=v" sorted.
func (c *cluster) replicated(t *testing.T) []string {
	t.Helper()
	var out []string
	if err := storage.Walk(context.Background(), c.raw, "", "", func(k string) (bool, error) {
		if wal.DefaultClassify(k) == wal.Replicated {
			v, _ := c.get(t, k)
			out = append(out, k+"="+v)
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func newBus(t *testing.T, cfg bus.Config) *bus.Bus {
	t.Helper()
	b, err := bus.Open(context.Background(), cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func embeddedBus(t *testing.T) *bus.Bus {
	return bustest.Start(t)
}

// clock is a settable clock; zero offset is the real time.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// primarySide is a primary cluster with its replication running.
type primarySide struct {
	*cluster
	cfg   primary.Config
	p     *primary.Primary
	clock *clock
}

func primaryConfig(t *testing.T, c *cluster, b *bus.Bus, id string, clk *clock) primary.Config {
	return primary.Config{
		ClusterID: id, APIAddr: "http://" + id + ":8200", Bus: b, WAL: c.wal, Raw: c.raw,
		State:             view{c.raw, "core/replication/primary/"},
		RootKey:           func() ([]byte, error) { return []byte("0123456789abcdef0123456789abcdef"), nil },
		HeartbeatInterval: 100 * time.Millisecond, Logger: testLogger(t).With().Str("side", id).Logger(), Now: clk.Now,
	}
}

func startPrimary(t *testing.T, b *bus.Bus, id string, limits bus.StreamConfig) *primarySide {
	t.Helper()
	c := newCluster(t)
	clk := &clock{}
	cfg := primaryConfig(t, c, b, id, clk)
	cfg.Stream = limits
	return startPrimaryWith(t, c, cfg, clk)
}

// startPrimaryWith enables a primary with cfg on cluster c.
func startPrimaryWith(t *testing.T, c *cluster, cfg primary.Config, clk *clock) *primarySide {
	t.Helper()
	p, err := primary.Enable(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ps := &primarySide{cluster: c, cfg: cfg, p: p, clock: clk}
	t.Cleanup(func() { ps.p.Stop() })
	return ps
}

// token issues an activation token for id.
func (ps *primarySide) token(t *testing.T, id string) string {
	t.Helper()
	tok, _, err := ps.p.SecondaryToken(context.Background(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// waitShipped waits until everything committed is acknowledged by JetStream.
func (ps *primarySide) waitShipped(t *testing.T) {
	t.Helper()
	eventually(t, 10*time.Second, "primary shipped its WAL", func() bool {
		return ps.p.Status().ShippedIndex >= ps.wal.LastIndex()
	})
}

// secondarySide is a secondary cluster.
type secondarySide struct {
	*cluster
	cfg     secondary.Config
	s       *secondary.Secondary
	mu      sync.Mutex
	applied []string
	states  []secondary.State // every state reported by OnState, in order
	// wiped, when set, runs after the activation's wipe (the lead rebuilds
	// its merkle index there).
	wiped func()
}

// seen returns the states reported so far.
func (ss *secondarySide) seen() []secondary.State {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return slices.Clone(ss.states)
}

func newSecondarySide(t *testing.T, name string) *secondarySide {
	return newSecondarySideOn(t, name, newCluster(t))
}

// newSecondarySideOn is newSecondarySide on the cluster c.
func newSecondarySideOn(t *testing.T, name string, c *cluster) *secondarySide {
	ss := &secondarySide{cluster: c}
	ss.cfg = secondary.Config{
		WAL: c.wal, Raw: c.raw, State: view{c.raw, "core/replication/secondary/secrets/"},
		OnApplied: func(keys []string) {
			ss.mu.Lock()
			ss.applied = append(ss.applied, keys...)
			ss.mu.Unlock()
		},
		OnState: func(st secondary.State) {
			ss.mu.Lock()
			ss.states = append(ss.states, st)
			ss.mu.Unlock()
		},
		ClusterID: name, APIAddr: "http://" + name + ":8200",
		HeartbeatInterval: 100 * time.Millisecond, Logger: testLogger(t).With().Str("side", name).Logger(),
	}
	return ss
}

// activate activates with tok, wipes (keeping wal/) and starts.
func (ss *secondarySide) activate(t *testing.T, tok string) {
	t.Helper()
	ctx := context.Background()
	s, bundle, err := secondary.Activate(ctx, ss.cfg, tok, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(bundle.RootKey) == 0 {
		t.Fatal("bundle without a root key")
	}
	if err := secondary.Wipe(ctx, ss.raw, func(k string) bool { return strings.HasPrefix(k, "wal/") }); err != nil {
		t.Fatal(err)
	}
	if ss.wiped != nil {
		ss.wiped()
	}
	ss.start(t, s)
}

func (ss *secondarySide) start(t *testing.T, s *secondary.Secondary) {
	t.Helper()
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ss.s = s
	t.Cleanup(s.Stop)
}

// converge waits until the secondary holds exactly the primary's replicated keys.
func converge(t *testing.T, ps *primarySide, ss *secondarySide) {
	t.Helper()
	var want, got []string
	eventually(t, 15*time.Second, "secondary converges on the primary's replicated keys", func() bool {
		want, got = ps.replicated(t), ss.replicated(t)
		return fmt.Sprint(want) == fmt.Sprint(got)
	})
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, timeout, what, func() error {
		if !cond() {
			return errors.New("not yet")
		}
		return nil
	})
}
