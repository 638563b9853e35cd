package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage/consul/consultest"
)

// haCluster is n coffer nodes sharing one Consul path: one cluster.
type haCluster struct {
	t     testing.TB
	agent *consultest.Agent
	nodes []*node
	procs []*proc // nil for a node that is down
	root  string
}

// haStorage is the storage block of a cluster's nodes.
func haStorage(agentAddr, path string) string {
	return fmt.Sprintf("storage \"consul\" {\n  address = %q\n  path = %q\n  session_ttl = \"10s\"\n  lock_delay = \"1s\"\n  check_interval = \"1s\"\n}", agentAddr, path)
}

// newHACluster writes n nodes' configs (one static seal key for all) and
// starts them; extra, when set, is a serverConfig to start from (bus,
// replication blocks).
func newHACluster(t testing.TB, agent *consultest.Agent, n int, path string, extra serverConfig) *haCluster {
	t.Helper()
	if extra.StaticKey == nil {
		extra.StaticKey = randomBytes(t, 32)
	}
	c := &haCluster{t: t, agent: agent}
	for range n {
		c.add(path, extra)
	}
	return c
}

// add starts one more node of the cluster.
func (c *haCluster) add(path string, cfg serverConfig) {
	c.t.Helper()
	cfg.Storage = haStorage(c.agent.Addr, path)
	nd := newNode(c.t, cfg)
	c.nodes = append(c.nodes, nd)
	c.procs = append(c.procs, nd.start())
}

// leaderInfo is sys/leader as a node answers it.
type leaderInfo struct {
	HAEnabled     bool   `json:"ha_enabled"`
	IsSelf        bool   `json:"is_self"`
	LeaderAddress string `json:"leader_address"`
	PerfStandby   bool   `json:"performance_standby"`
}

var haHTTP = &http.Client{Timeout: 2 * time.Second}

func leaderOf(addr string) (leaderInfo, error) {
	var l leaderInfo
	resp, err := haHTTP.Get("http://" + addr + "/v1/sys/leader")
	if err != nil {
		return l, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return l, fmt.Errorf("sys/leader on %s: %s", addr, resp.Status)
	}
	return l, json.NewDecoder(resp.Body).Decode(&l)
}

// actives lists the running nodes that say they are active.
func (c *haCluster) actives() []int {
	var out []int
	for i, p := range c.procs {
		if p == nil {
			continue
		}
		if l, err := leaderOf(c.nodes[i].addr); err == nil && l.IsSelf {
			out = append(out, i)
		}
	}
	return out
}

// waitActive waits until exactly one running node other than not is
// active and every other running node but not names it as the leader; it
// returns its index. not (-1 for none) may be down or frozen.
func (c *haCluster) waitActive(timeout time.Duration, not int) int {
	c.t.Helper()
	active := -1
	testutil.Eventually(c.t, timeout, "exactly one active node, named by the others", func() error {
		a := c.actives()
		if len(a) != 1 || a[0] == not {
			return fmt.Errorf("active nodes %v (not %d)", a, not)
		}
		for i, p := range c.procs {
			if p == nil || i == a[0] || i == not {
				continue
			}
			l, err := leaderOf(c.nodes[i].addr)
			if err != nil {
				return err
			}
			if l.LeaderAddress != "http://"+c.nodes[a[0]].addr {
				return fmt.Errorf("node %d names %q as leader, not node %d", i, l.LeaderAddress, a[0])
			}
		}
		active = a[0]
		return nil
	})
	return active
}

// standby returns a running node other than active.
func (c *haCluster) standby(active int) int {
	for i, p := range c.procs {
		if p != nil && i != active {
			return i
		}
	}
	c.t.Fatal("no running standby")
	return -1
}

// kill SIGKILLs node i.
func (c *haCluster) kill(i int) {
	c.t.Helper()
	sigkill(c.t, c.procs[i])
	c.procs[i] = nil
}

// restart starts node i again (it was killed or stopped).
func (c *haCluster) restart(i int) {
	c.t.Helper()
	c.procs[i] = c.nodes[i].start()
}

// haMonitor samples every running node's sys/leader until stopped and
// records the most nodes that said they were active in one sample.
type haMonitor struct {
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	maxSeen int
	samples int
	bad     []string
}

func (c *haCluster) monitor() *haMonitor {
	m := &haMonitor{stop: make(chan struct{}), done: make(chan struct{})}
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.addr
	}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-tick.C:
			}
			var self []string
			for _, a := range addrs {
				if l, err := leaderOf(a); err == nil && l.IsSelf {
					self = append(self, a)
				}
			}
			m.mu.Lock()
			m.samples++
			m.maxSeen = max(m.maxSeen, len(self))
			if len(self) > 1 {
				m.bad = append(m.bad, fmt.Sprint(time.Now().Format(time.RFC3339Nano), self))
			}
			m.mu.Unlock()
		}
	}()
	return m
}

// end stops the monitor and fails the test if two nodes were ever active
// in one sample.
func (m *haMonitor) end(t *testing.T) {
	t.Helper()
	close(m.stop)
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	t.Logf("HA monitor: %d samples of every node's sys/leader, at most %d active at once", m.samples, m.maxSeen)
	if len(m.bad) > 0 {
		t.Fatalf("two nodes said they were active at once: %v", m.bad)
	}
}
