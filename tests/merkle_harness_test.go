package tests

// The merkle suite's set-ups and checks: a config-file primary with an
// activated secondary, merkle-check reports, kv snapshots compared key by key,
// and a poller that records the replication states a secondary goes through.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

// startMerkleNode is startReplNode with a replication { } block body (may be
// empty): a config-file cluster with bolt storage and the static seal key,
// initialized and unsealed.
func startMerkleNode(t *testing.T, key []byte, name, busBody, replBody string) *replNode {
	t.Helper()
	n := newNode(t, serverConfig{StaticKey: key, ClusterName: name, Bus: busBody, Replication: replBody})
	r := &replNode{n: n, p: n.start()}
	res, err := client(t, n.addr, "").Sys().Init(&api.InitRequest{RecoveryShares: 1, RecoveryThreshold: 1})
	if err != nil {
		t.Fatalf("sys/init on %s: %v", name, err)
	}
	waitHealthCode(t, n.addr, 200)
	r.root = res.RootToken
	return r
}

// merklePair is a config-file primary (with its embedded bus) and a
// config-file secondary activated as dc2, both with the same static seal key.
type merklePair struct {
	pri, sec *replNode
	natsAddr string      // the primary's embedded NATS
	natsSeed string      // its client seed file (the secondary's credentials)
	P        *api.Client // root on the primary
	S        *api.Client // alice (policy reader) on the secondary
}

// startMerklePair starts the primary with replBody as its replication block,
// seeds it (kv-v2 at secret/, policy reader, user alice), runs seed (may be
// nil) and activates the secondary.
func startMerklePair(t *testing.T, replBody string, seed func(P *api.Client)) *merklePair {
	t.Helper()
	key := randomBytes(t, 32)
	priBus, natsAddr, natsSeed := embeddedBusAt(t)
	m := &merklePair{natsAddr: natsAddr, natsSeed: natsSeed}
	m.pri = startMerkleNode(t, key, "dc1", priBus, replBody)
	m.P = client(t, m.pri.n.addr, m.pri.root)
	seedPrimary(t, m.P)
	if seed != nil {
		seed(m.P)
	}
	enablePrimary(t, m.P)
	tok := secondaryToken(t, m.P, "dc2", "")
	m.sec = startMerkleNode(t, key, "dc2", withSeed(embeddedBus(t), natsSeed), "")
	if err := activateSecondary(client(t, m.sec.n.addr, m.sec.root), tok); err != nil {
		t.Fatalf("secondary/enable: %v", err)
	}
	testutil.Eventually(t, replTimeout, "userpass login on the secondary", func() error {
		c, err := userpassLogin(t, m.sec.n.addr, "alice", "pw")
		m.S = c
		return err
	})
	return m
}

// merkleRootAt returns merkle_root of addr's sys/replication/performance/status.
func merkleRootAt(t *testing.T, addr string) string {
	t.Helper()
	st := perfStatus(t, addr)
	r := str(st["merkle_root"])
	if len(r) != 64 {
		t.Fatalf("merkle_root of %s is %q, want 64 hex digits (status %v)", addr, r, st)
	}
	return r
}

// merkleCheck runs sys/replication/merkle-check with c and returns the
// merkle_corruption_report.
func merkleCheck(t *testing.T, c *api.Client) map[string]any {
	t.Helper()
	s, err := c.Logical().Write("sys/replication/merkle-check", nil)
	if err != nil {
		t.Fatalf("sys/replication/merkle-check on %s: %v", c.Address(), err)
	}
	if s == nil {
		t.Fatalf("sys/replication/merkle-check on %s: no response", c.Address())
	}
	rep, ok := s.Data["merkle_corruption_report"].(map[string]any)
	if !ok {
		t.Fatalf("sys/replication/merkle-check on %s: no merkle_corruption_report object in %v", c.Address(), s.Data)
	}
	return rep
}

// reportFindings lists what a merkle_corruption_report found: nil when clean.
// It also checks the report's shape (Vault's field names).
func reportFindings(rep map[string]any) []string {
	var out []string
	if v, ok := rep["corrupted_root"].(bool); !ok {
		out = append(out, fmt.Sprintf("corrupted_root is %T %v, want a bool", rep["corrupted_root"], rep["corrupted_root"]))
	} else if v {
		out = append(out, "corrupted_root is true")
	}
	if _, err := time.Parse(time.RFC3339Nano, str(rep["last_corruption_check_epoch"])); err != nil {
		out = append(out, fmt.Sprintf("last_corruption_check_epoch %q: %v", str(rep["last_corruption_check_epoch"]), err))
	}
	trees, ok := rep["corrupted_tree_map"].(map[string]any)
	if !ok {
		return append(out, fmt.Sprintf("corrupted_tree_map is %T, want an object", rep["corrupted_tree_map"]))
	}
	for id, v := range trees {
		tr, _ := v.(map[string]any)
		if b, _ := tr["corrupted_subtree_root"].(bool); b {
			out = append(out, fmt.Sprintf("tree %s: corrupted_subtree_root", id))
		}
		pages, _ := tr["corrupted_index_tuples_map"].(map[string]any)
		for p, pv := range pages {
			out = append(out, fmt.Sprintf("tree %s: page %s: %v", id, p, pv))
		}
	}
	slices.Sort(out)
	return out
}

// requireClean fails unless a merkle-check on c finds nothing.
func requireClean(t *testing.T, what string, c *api.Client) {
	t.Helper()
	rep := merkleCheck(t, c)
	if f := reportFindings(rep); len(f) > 0 {
		t.Fatalf("%s: sys/replication/merkle-check is not clean: %v\nreport: %v", what, f, rep)
	}
}

// kvSnapshot reads every key of the kv-v2 mount: its metadata and the data
// of its current version (or what a read of a deleted version answers), as
// canonical JSON per key.
func kvSnapshot(c *api.Client, mount string) (map[string]string, error) {
	s, err := c.Logical().List(mount + "/metadata")
	if err != nil {
		return nil, fmt.Errorf("list %s/metadata: %w", mount, err)
	}
	var keys []string
	if s != nil {
		keys = strs(s.Data["keys"])
	}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		md, err := c.Logical().Read(mount + "/metadata/" + k)
		if err != nil {
			return nil, fmt.Errorf("read %s/metadata/%s: %w", mount, k, err)
		}
		d, err := c.Logical().Read(mount + "/data/" + k)
		if err != nil {
			return nil, fmt.Errorf("read %s/data/%s: %w", mount, k, err)
		}
		var mdData, dData map[string]any
		if md != nil {
			mdData = md.Data
		}
		if d != nil {
			dData = d.Data
		}
		b, err := json.Marshal(map[string]any{"metadata": mdData, "data": dData})
		if err != nil {
			return nil, err
		}
		out[k] = string(b)
	}
	return out, nil
}

// diffSnapshots describes the keys on which two snapshots differ (at most 10).
func diffSnapshots(want, got map[string]string) error {
	var diffs []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s missing (primary: %s)", k, w))
		case g != w:
			diffs = append(diffs, fmt.Sprintf("%s: primary %s, secondary %s", k, w, g))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s only on the secondary: %s", k, g))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	slices.Sort(diffs)
	n := len(diffs)
	if n > 10 {
		diffs = diffs[:10]
	}
	return fmt.Errorf("%d keys differ (of %d on the primary, %d on the secondary): %s", n, len(want), len(got), strings.Join(diffs, "; "))
}

// waitConverged waits until the secondary streams, has the primary's merkle
// root, and serves the primary's kv-v2 data key by key. It returns the root
// and the number of keys.
func waitConverged(t *testing.T, m *merklePair, timeout time.Duration) (string, int) {
	t.Helper()
	var root string
	var n int
	testutil.Eventually(t, timeout, "the secondary converges on the primary (merkle root, then data key by key)", func() error {
		pst, sst := perfStatus(t, m.pri.n.addr), perfStatus(t, m.sec.n.addr)
		if s := str(sst["state"]); s != "stream-wals" {
			return fmt.Errorf("secondary state %q", s)
		}
		pr, sr := str(pst["merkle_root"]), str(sst["merkle_root"])
		if pr == "" || pr != sr {
			return fmt.Errorf("merkle_root: primary %q (last_wal %v), secondary %q (last_remote_wal %v)",
				pr, pst["last_wal"], sr, sst["last_remote_wal"])
		}
		want, err := kvSnapshot(m.P, "secret")
		if err != nil {
			return fmt.Errorf("primary: %w", err)
		}
		got, err := kvSnapshot(m.S, "secret")
		if err != nil {
			return fmt.Errorf("secondary: %w", err)
		}
		if err := diffSnapshots(want, got); err != nil {
			return err
		}
		// Still the same root after the reads: nothing moved meanwhile.
		if again := str(perfStatus(t, m.pri.n.addr)["merkle_root"]); again != pr {
			return fmt.Errorf("the primary's root moved during the comparison")
		}
		root, n = pr, len(want)
		return nil
	})
	return root, n
}

// statusSample is one answer of a status poller.
type statusSample struct {
	at       time.Duration // since the poller started, when the answer arrived
	state    string
	progress string // merkle_sync_progress as JSON, "" when absent
}

// statePoller reads addr's sys/replication/performance/status as fast as it
// answers, one request at a time (so the samples are in the server's order).
type statePoller struct {
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	samples []statusSample
	errs    int
}

func pollStates(addr string) *statePoller {
	sp := &statePoller{stop: make(chan struct{}), done: make(chan struct{})}
	hc := &http.Client{Timeout: 5 * time.Second}
	start := time.Now()
	go func() {
		defer close(sp.done)
		for {
			select {
			case <-sp.stop:
				return
			default:
			}
			var body struct {
				Data map[string]any `json:"data"`
			}
			resp, err := hc.Get("http://" + addr + "/v1/sys/replication/performance/status")
			if err == nil {
				err = json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
			}
			sp.mu.Lock()
			if err != nil {
				sp.errs++
			} else {
				s := statusSample{at: time.Since(start), state: str(body.Data["state"])}
				if p, ok := body.Data["merkle_sync_progress"]; ok {
					b, _ := json.Marshal(p)
					s.progress = string(b)
				}
				sp.samples = append(sp.samples, s)
			}
			sp.mu.Unlock()
		}
	}()
	return sp
}

// halt stops the poller and returns its samples.
func (sp *statePoller) halt() []statusSample {
	close(sp.stop)
	<-sp.done
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.samples
}

// transitions compresses samples to the sequence of distinct consecutive
// states, each with when it was first seen.
func transitions(samples []statusSample) []statusSample {
	var out []statusSample
	for _, s := range samples {
		if len(out) == 0 || out[len(out)-1].state != s.state {
			out = append(out, s)
		}
	}
	return out
}
