package tests

// Replication across node failover: a primary cluster and a secondary
// cluster of two nodes each, on one Consul and one NATS of neither. Under a
// steady write load the primary's active node is killed, then the
// secondary's: each new active node resumes (shipping from the stored and
// streamed index; the durable consumer from last_remote_wal) with no operator
// action, and the secondary converges to the primary.

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage/consul/consultest"
	"github.com/hashicorp/vault/api"
)

// lagBack measures how long after a takeover a marker written on the
// primary is readable on the secondary, and fails past bound.
func lagBack(t *testing.T, pri, sec *api.Client, name string, bound time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	testutil.Eventually(t, 60*time.Second, "marker "+name+" written on the primary", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := pri.KVv2("secret").Put(ctx, "marker-"+name, map[string]any{"v": name})
		return err
	})
	testutil.Eventually(t, 60*time.Second, "marker "+name+" on the secondary", func() error {
		return kvHas(sec, "secret", "marker-"+name, name)
	})
	took := time.Since(start)
	if took > bound {
		t.Errorf("after the %s takeover the secondary had the marker %s later, more than %s", name, took.Round(10*time.Millisecond), bound)
	}
	return took
}

func TestHAReplicationAcrossNodeFailover(t *testing.T) {
	agent := consultest.Start(t)
	ns := bustest.StartConfig(t, bus.Config{Listen: testutil.FreeAddr(t), StoreDir: t.TempDir()})
	busBody := fmt.Sprintf("url = %q", ns.ClientURL())
	key := randomBytes(t, 32)
	p := newHACluster(t, agent, 2, "coffer-p/", serverConfig{StaticKey: key, ClusterName: "dc1", Bus: busBody})
	pa := p.initHA(0)
	P := client(t, p.nodes[pa].addr, p.root)
	seedPrimary(t, P)
	kvPut(t, P, "secret", "a", map[string]any{"v": "x"})
	enablePrimary(t, P)
	tok := secondaryToken(t, P, "dc2", "")

	// The secondary cluster: two nodes, activated through its second (a
	// standby forwards the activation, and unseals again under the
	// primary's keyring once the active node replaced the data).
	sCfg := serverConfig{StaticKey: key, ClusterName: "dc2", Bus: busBody}
	s := newHACluster(t, agent, 2, "coffer-s/", sCfg)
	s.initHA(0)
	if err := activateSecondary(client(t, s.nodes[1].addr, s.root), tok); err != nil {
		t.Fatalf("secondary/enable: %v", err)
	}
	var S *api.Client
	testutil.Eventually(t, replTimeout, "userpass login on the secondary", func() error {
		c, err := userpassLogin(t, s.nodes[0].addr, "alice", "pw")
		S = c
		return err
	})
	sa := s.waitActive(haTimeout, -1)
	for i := range s.nodes {
		waitKV(t, withToken(t, client(t, s.nodes[i].addr, ""), S.Token()), "secret", "a", "x", replTimeout)
	}
	Sany := withToken(t, client(t, s.nodes[1-sa].addr, ""), S.Token())
	lagBack(t, P, Sany, "start", 10*time.Second)

	load := p.writer(t)
	// The primary's active node dies under load.
	p.kill(pa)
	load.setAddrs(p)
	start := time.Now()
	pa2 := p.waitActive(haTimeout, pa)
	pTake := time.Since(start)
	pLag := lagBack(t, client(t, p.nodes[pa2].addr, p.root), Sany, "primary", 10*time.Second)
	p.restart(pa)
	load.setAddrs(p)

	// Then the secondary's.
	s.kill(sa)
	start = time.Now()
	sa2 := s.waitActive(haTimeout, sa)
	sTake := time.Since(start)
	Snew := withToken(t, client(t, s.nodes[sa2].addr, ""), S.Token())
	sLag := lagBack(t, client(t, p.nodes[pa2].addr, p.root), Snew, "secondary", 10*time.Second)
	s.restart(sa)
	acked, _ := load.end()

	// Status names the active nodes: the secondary's primaries[] the
	// primary's new active node (from its heartbeats), the primary's
	// secondaries[] the secondary's new active node.
	testutil.Eventually(t, replTimeout, "status names the active nodes", func() error {
		ps := perfStatus(t, s.nodes[sa2].addr)
		pri := entries(ps["primaries"])
		if len(pri) != 1 || str(pri[0]["api_address"]) != "http://"+p.nodes[pa2].addr {
			return fmt.Errorf("secondary's primaries %v, want the primary's active node http://%s", ps["primaries"], p.nodes[pa2].addr)
		}
		sec, err := secondaryEntry(perfStatus(t, p.nodes[pa2].addr), "dc2")
		if err != nil {
			return err
		}
		if str(sec["api_address"]) != "http://"+s.nodes[sa2].addr || str(sec["connection_status"]) != "connected" {
			return fmt.Errorf("primary's entry for dc2 %v, want the secondary's active node http://%s, connected", sec, s.nodes[sa2].addr)
		}
		return checkHeartbeat(sec["last_heartbeat"])
	})

	t.Logf("primary takeover %s, marker on the secondary %s after it; secondary takeover %s, marker %s after it; %d writes acknowledged under load",
		pTake.Round(10*time.Millisecond), pLag.Round(10*time.Millisecond), sTake.Round(10*time.Millisecond), sLag.Round(10*time.Millisecond), len(acked))
	// Convergence: every acknowledged write, equal keys, equal merkle roots.
	P = client(t, p.nodes[pa2].addr, p.root)
	testutil.Eventually(t, replTimeout, "the secondary converges to the primary", func() error {
		for k, v := range acked {
			if err := kvHas(Snew, "secret", k, v); err != nil {
				return err
			}
		}
		pk, sk := kvKeys(t, P, "secret"), kvKeys(t, Snew, "secret")
		if !slices.Equal(pk, sk) {
			return fmt.Errorf("keys differ: primary %d, secondary %d", len(pk), len(sk))
		}
		if pr, sr := merkleRootAt(t, p.nodes[pa2].addr), merkleRootAt(t, s.nodes[sa2].addr); pr != sr {
			return fmt.Errorf("merkle roots differ: primary %s, secondary %s", pr, sr)
		}
		return nil
	})
	for k, v := range acked {
		if err := kvHas(P, "secret", k, v); err != nil {
			t.Errorf("acknowledged write lost on the primary: %v", err)
		}
	}
}
