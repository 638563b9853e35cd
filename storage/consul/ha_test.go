package consul_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/consul"
	"github.com/cofferhq/coffer/storage/consul/consultest"
	"github.com/cofferhq/coffer/storage/storagetest"
	"github.com/hashicorp/consul/api"
)

// openHA returns n backends sharing one fresh path with HA on: the nodes of
// one cluster.
func openHA(t *testing.T, a *consultest.Agent, n int) []*consul.Backend {
	t.Helper()
	path := fmt.Sprintf("coffer-ha/%d/", paths.Add(1))
	out := make([]*consul.Backend, n)
	for i := range out {
		b, err := consul.Open(consul.Options{Address: a.Addr, Path: path, HAEnabled: true})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { _ = b.Close() })
		out[i] = b
	}
	return out
}

func acquire(t *testing.T, b *consul.Backend, o consul.LockOptions) *consul.Held {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := b.Acquire(ctx, o)
	if err != nil {
		t.Fatalf("Acquire(%s): %v", o.Node, err)
	}
	t.Cleanup(h.Release)
	return h
}

func put(b *consul.Backend, key string) error {
	return b.Put(context.Background(), &storage.Entry{Key: key, Value: []byte("v")})
}

// The conformance suite passes on a backend whose writes are fenced by a
// held lock (each transaction carries the check of the session).
func TestConformanceWithTheLockHeld(t *testing.T) {
	a := consultest.Start(t)
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		b := openHA(t, a, 1)[0]
		acquire(t, b, consul.LockOptions{Node: "solo"})
		return b
	})
}

// Only the lock's holder writes; a holder whose session Consul invalidated
// writes nothing from that moment, even before it notices: the check of the
// session is inside each Consul transaction.
func TestOnlyTheHolderWrites(t *testing.T) {
	a := consultest.Start(t)
	bs := openHA(t, a, 2)
	active, standby := bs[0], bs[1]
	if err := put(active, "k"); !errors.Is(err, storage.ErrNotActive) {
		t.Fatalf("write before any lock: %v, want ErrNotActive", err)
	}
	h := acquire(t, active, consul.LockOptions{Node: "a", Value: []byte("a"), LockDelay: 100 * time.Millisecond})
	if err := put(active, "k"); err != nil {
		t.Fatalf("write by the holder: %v", err)
	}
	if err := put(standby, "k2"); !errors.Is(err, storage.ErrNotActive) {
		t.Fatalf("write by a standby: %v, want ErrNotActive", err)
	}
	if e, err := standby.Get(context.Background(), "k"); err != nil || e == nil {
		t.Fatalf("a standby reads the holder's write: %v, %v", e, err)
	}
	if m := active.MaxTransactionOps(); m != consul.MaxOps-1 {
		t.Fatalf("MaxTransactionOps with HA = %d, want %d (one operation checks the lock)", m, consul.MaxOps-1)
	}

	// Consul invalidates the session (what a TTL or a failed health check
	// does): the holder's very next write is refused.
	cl, err := api.NewClient(&api.Config{Address: a.Addr})
	if err != nil {
		t.Fatal(err)
	}
	l, _, err := active.CurrentLeader(context.Background(), 0, 0)
	if err != nil || l.Session == "" || string(l.Value) != "a" {
		t.Fatalf("CurrentLeader = %+v, %v", l, err)
	}
	if _, err := cl.Session().Destroy(l.Session, nil); err != nil {
		t.Fatal(err)
	}
	err = put(active, "after")
	if !errors.Is(err, storage.ErrNotActive) {
		t.Fatalf("write after the session was invalidated: %v, want ErrNotActive", err)
	}
	if e, _ := standby.Get(context.Background(), "after"); e != nil {
		t.Fatal("the refused write was applied")
	}
	select {
	case <-h.Lost:
	case <-time.After(30 * time.Second):
		t.Fatal("the holder did not notice it lost the lock")
	}
	if !errors.Is(h.Err(), consul.ErrLockLost) {
		t.Fatalf("Held.Err = %v, want ErrLockLost", h.Err())
	}
	acquire(t, standby, consul.LockOptions{Node: "b", Value: []byte("b"), LockDelay: 100 * time.Millisecond})
	if err := put(standby, "k3"); err != nil {
		t.Fatalf("write by the new holder: %v", err)
	}
}

// A holder whose API stops answering loses the lock through the agent's
// health check, in seconds rather than a session TTL; the other node takes
// it.
func TestHealthCheckEndsTheTenure(t *testing.T) {
	a := consultest.Start(t)
	bs := openHA(t, a, 2)
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	h := acquire(t, bs[0], consul.LockOptions{Node: "a", CheckHTTP: srv.URL, SessionTTL: time.Minute, LockDelay: 100 * time.Millisecond})
	start := time.Now()
	down.Store(true)
	select {
	case <-h.Lost:
	case <-time.After(30 * time.Second):
		t.Fatal("the holder kept the lock 30 s after its health check started failing (session TTL is a minute)")
	}
	t.Logf("lock lost %s after the health check started failing", time.Since(start).Round(time.Millisecond))
	acquire(t, bs[1], consul.LockOptions{Node: "b"})
	testutil.Eventually(t, 10*time.Second, "the lock names node b", func() error {
		l, _, err := bs[1].CurrentLeader(context.Background(), 0, 0)
		if err != nil || l.Session == "" {
			return fmt.Errorf("%+v %v", l, err)
		}
		return nil
	})
}

// A node waiting for the lock keeps its session alive: Consul would expire
// an unrenewed session after its TTL (up to twice), and the wait would end in
// an error and start over.
func TestWaitingKeepsTheSession(t *testing.T) {
	a := consultest.Start(t)
	bs := openHA(t, a, 2)
	acquire(t, bs[0], consul.LockOptions{Node: "a"})
	cl, err := api.NewClient(&api.Config{Address: a.Addr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := bs[1].Acquire(ctx, consul.LockOptions{Node: "b", SessionTTL: 10 * time.Second})
		done <- err
	}()
	var sid string
	testutil.Eventually(t, 10*time.Second, "node b's session exists", func() error {
		ss, _, err := cl.Session().List(nil)
		if err != nil {
			return err
		}
		for _, s := range ss {
			if s.Name == "coffer-ha b" {
				sid = s.ID
				return nil
			}
		}
		return fmt.Errorf("no session of node b among %d", len(ss))
	})
	start := time.Now()
	// Past twice the TTL, the bound of Consul's expiry, the same session lives.
	testutil.Eventually(t, 40*time.Second, "node b's session alive for twice its TTL", func() error {
		select {
		case err := <-done:
			t.Fatalf("node b's wait ended: %v", err)
		default:
		}
		se, _, err := cl.Session().Info(sid, nil)
		if err != nil {
			return err
		}
		if se == nil {
			t.Fatalf("node b's session %s expired after %s while it waited", sid, time.Since(start).Round(time.Second))
		}
		if time.Since(start) < 22*time.Second {
			return fmt.Errorf("alive for %s", time.Since(start).Round(time.Second))
		}
		return nil
	})
}
