package tests

// The active node of a three-node cluster killed and restarted 20 times,
// then Consul restarted: at most one node active at any sample, a new one
// within seconds each time, and no acknowledged write lost.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/storage/consul/consultest"
	"github.com/hashicorp/vault/api"
)

// haWriter writes w-<n> = n through the running nodes in turn, one at a
// time (a retry against a node that is down is paced), and records the
// writes a node acknowledged: the load of the HA tests.
type haWriter struct {
	mu    sync.Mutex
	addrs []string // the running nodes' addresses
	acked map[string]string
	fails int
	stop  chan struct{}
	done  chan struct{}
}

func (c *haCluster) writer(t *testing.T) *haWriter {
	w := &haWriter{acked: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	w.setAddrs(c)
	clients := map[string]*api.Client{}
	for _, n := range c.nodes {
		cl := client(t, n.addr, c.root)
		cl.SetClientTimeout(5 * time.Second)
		clients[n.addr] = cl
	}
	go func() {
		defer close(w.done)
		pace := time.NewTicker(5 * time.Millisecond) // paces retries against a node that is down
		defer pace.Stop()
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			case <-pace.C:
			}
			w.mu.Lock()
			addrs := w.addrs
			w.mu.Unlock()
			if len(addrs) == 0 {
				continue
			}
			key, val := fmt.Sprintf("w-%05d", i), fmt.Sprint(i)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := clients[addrs[i%len(addrs)]].KVv2("secret").Put(ctx, key, map[string]any{"v": val})
			cancel()
			w.mu.Lock()
			if err == nil {
				w.acked[key] = val
			} else {
				w.fails++
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// setAddrs points the writer at the nodes that run now.
func (w *haWriter) setAddrs(c *haCluster) {
	var addrs []string
	for i, p := range c.procs {
		if p != nil {
			addrs = append(addrs, c.nodes[i].addr)
		}
	}
	w.mu.Lock()
	w.addrs = addrs
	w.mu.Unlock()
}

func (w *haWriter) end() (map[string]string, int) {
	close(w.stop)
	<-w.done
	return w.acked, w.fails
}

// checkAcked reads every acknowledged write back through node i.
func (c *haCluster) checkAcked(i int, acked map[string]string) {
	c.t.Helper()
	cl := client(c.t, c.nodes[i].addr, c.root)
	for k, v := range acked {
		if err := kvHas(cl, "secret", k, v); err != nil {
			c.t.Errorf("acknowledged write lost: %v", err)
		}
	}
}

func durations(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return "none"
	}
	return fmt.Sprintf("p50 %s, max %s (%d takeovers)", s[len(s)/2].Round(10*time.Millisecond), s[len(s)-1].Round(10*time.Millisecond), len(s))
}

func TestHAKillTheActiveNode20Times(t *testing.T) {
	agent := consultest.StartPersistent(t)
	c := newHACluster(t, agent, 3, "coffer-ha-kill/", serverConfig{})
	active := c.initHA(0)
	root := client(t, c.nodes[active].addr, c.root)
	if err := root.Sys().Mount("secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	mon := c.monitor()
	w := c.writer(t)
	var takeovers []time.Duration
	for round := range 20 {
		killed := active
		c.kill(killed)
		w.setAddrs(c)
		start := time.Now()
		active = c.waitActive(haTimeout, killed)
		takeovers = append(takeovers, time.Since(start))
		c.restart(killed)
		w.setAddrs(c)
		t.Logf("round %d: node %d killed, node %d active after %s", round+1, killed, active, takeovers[round].Round(10*time.Millisecond))
	}

	// Consul itself restarts: the cluster comes back with one active node.
	agent.Restart(t)
	active = c.waitActive(haTimeout, -1)
	kvPut(t, client(t, c.nodes[c.standby(active)].addr, c.root), "secret", "after-consul", map[string]any{"v": "ok"})

	acked, fails := w.end()
	mon.end(t)
	t.Logf("takeover after a SIGKILL: %s; %d writes acknowledged, %d refused during takeovers", durations(takeovers), len(acked), fails)
	if len(acked) < 20 {
		t.Fatalf("only %d writes acknowledged over 20 takeovers: the writer hardly ran", len(acked))
	}
	c.checkAcked(active, acked)
	c.checkAcked(c.standby(active), acked)
}
