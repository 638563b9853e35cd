package tests

// Clusters of several nodes on Consul (issue 13): one active node, standbys
// that forward what they cannot serve and serve reads themselves.

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage/consul/consultest"
	"github.com/hashicorp/vault/api"
)

const haTimeout = 60 * time.Second

// initHA initializes the cluster through node i (any node: a standby
// forwards sys/init to the active one) and waits for one active node.
func (c *haCluster) initHA(i int) int {
	c.t.Helper()
	cl := client(c.t, c.nodes[i].addr, "")
	cl.SetClientTimeout(2 * waitTimeout)
	// 503 while no node is active yet (an election is under way).
	testutil.Eventually(c.t, haTimeout, fmt.Sprintf("sys/init through node %d", i), func() error {
		res, err := cl.Sys().Init(&api.InitRequest{RecoveryShares: 1, RecoveryThreshold: 1})
		if err != nil && statusOf(err) != http.StatusServiceUnavailable {
			c.t.Fatalf("sys/init through node %d: %v", i, err)
		}
		if err != nil {
			return err
		}
		c.root = res.RootToken
		return nil
	})
	return c.waitActive(haTimeout, -1)
}

func TestHAStandbysForwardAndServeReads(t *testing.T) {
	agent := consultest.Start(t)
	c := newHACluster(t, agent, 3, "coffer-ha-e2e/", serverConfig{})
	active := c.initHA(1)
	sb := c.standby(active)
	other := 3 - active - sb
	t.Logf("active node %d, standbys %d and %d", active, sb, other)

	// sys/health on a standby: a performance standby (473), 200 when the
	// caller accepts one; the active node answers 200.
	waitHealthCode(t, c.nodes[active].addr, 200)
	waitHealthCode(t, c.nodes[sb].addr, 473)
	resp, err := haHTTP.Get("http://" + c.nodes[sb].addr + "/v1/sys/health?perfstandbyok=true")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("sys/health?perfstandbyok=true on a standby: %v %v", resp, err)
	}
	resp.Body.Close()
	l, err := leaderOf(c.nodes[sb].addr)
	if err != nil || !l.HAEnabled || l.IsSelf || !l.PerfStandby {
		t.Fatalf("sys/leader on a standby = %+v, %v; want ha_enabled, not is_self, performance_standby", l, err)
	}

	// Everything through a standby, as vault/api users do it.
	st := client(t, c.nodes[sb].addr, c.root)
	if err := st.Sys().Mount("secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatalf("mount through a standby: %v", err)
	}
	if err := st.Sys().EnableAuthWithOptions("userpass", &api.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatalf("enable userpass through a standby: %v", err)
	}
	if err := st.Sys().PutPolicy("app", `path "secret/data/app/*" { capabilities = ["create", "update", "read"] }`); err != nil {
		t.Fatalf("policy write through a standby: %v", err)
	}
	if _, err := st.Logical().Write("auth/userpass/users/alice", map[string]any{"password": "pw", "policies": "app"}); err != nil {
		t.Fatalf("create a user through a standby: %v", err)
	}
	alice, err := userpassLogin(t, c.nodes[other].addr, "alice", "pw")
	if err != nil {
		t.Fatalf("login through a standby: %v", err)
	}
	kvPut(t, alice, "secret", "app/db", map[string]any{"v": "one"})
	if err := kvHas(client(t, c.nodes[active].addr, c.root), "secret", "app/db", "one"); err != nil {
		t.Fatalf("the active node does not have the write sent to a standby: %v", err)
	}

	// Read-after-write on a performance standby: a write acknowledged by the
	// active node is seen by a read on a standby started after it, with no
	// wait; so is a policy change (the standby's cache follows the log).
	act := client(t, c.nodes[active].addr, c.root)
	for i := range 20 {
		v := fmt.Sprint(i)
		kvPut(t, act, "secret", "app/raw", map[string]any{"v": v})
		if err := kvHas(withToken(t, st, alice.Token()), "secret", "app/raw", v); err != nil {
			t.Fatalf("round %d: a read on the standby right after the write: %v", i, err)
		}
	}
	if err := act.Sys().PutPolicy("app", `path "secret/data/other/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	_, err = kvData(withToken(t, st, alice.Token()), "secret", "app/raw")
	refused(t, "a read on the standby right after its policy was narrowed", err, http.StatusForbidden, "permission denied")
}

// disable_performance_standby, as Vault's: a standby forwards reads too and
// sys/health answers 429 for it (200 with standbyok).
func TestHAPlainStandby(t *testing.T) {
	agent := consultest.Start(t)
	c := newHACluster(t, agent, 2, "coffer-ha-plain/", serverConfig{Extra: "disable_performance_standby = true\n"})
	active := c.initHA(0)
	sb := c.standby(active)
	waitHealthCode(t, c.nodes[sb].addr, 429)
	resp, err := haHTTP.Get("http://" + c.nodes[sb].addr + "/v1/sys/health?standbyok=true")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("sys/health?standbyok=true on a standby: %v %v", resp, err)
	}
	resp.Body.Close()
	if l, err := leaderOf(c.nodes[sb].addr); err != nil || l.PerfStandby || l.IsSelf {
		t.Fatalf("sys/leader on a plain standby = %+v, %v", l, err)
	}
	st := client(t, c.nodes[sb].addr, c.root)
	if err := st.Sys().Mount("secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	kvPut(t, st, "secret", "k", map[string]any{"v": "1"})
	if err := kvHas(st, "secret", "k", "1"); err != nil {
		t.Fatalf("a read through a plain standby: %v", err)
	}
}

// sys/step-down, sent to a standby (forwarded), makes the active node give
// the lock up; another node takes over and the stepped-down node is a
// standby.
func TestHAStepDown(t *testing.T) {
	agent := consultest.Start(t)
	c := newHACluster(t, agent, 2, "coffer-ha-stepdown/", serverConfig{})
	active := c.initHA(0)
	sb := c.standby(active)
	if _, err := client(t, c.nodes[sb].addr, "").Logical().Write("sys/step-down", nil); statusOf(err) != http.StatusForbidden {
		t.Fatalf("sys/step-down without a token: %v, want 403", err)
	}
	// `coffer operator step-down` (vault/api's Sys().StepDown) through the standby.
	out := cliOK(t, c.nodes[sb].addr, c.root, "", "operator", "step-down")
	cliContains(t, "operator step-down", out, "Stepped down")
	next := c.waitActive(haTimeout, active)
	if next != sb {
		t.Fatalf("node %d active after the step-down, want %d", next, sb)
	}
	if l, err := leaderOf(c.nodes[active].addr); err != nil || l.IsSelf || !l.PerfStandby {
		t.Fatalf("sys/leader on the stepped-down node = %+v, %v", l, err)
	}
}

// The shamir seal, Vault's default: sys/init through any node; every node
// is unsealed on its own (sys/unseal is never forwarded); a sealed node
// takes no part in the election, the first unsealed one becomes active.
func TestHAShamirNodesUnsealEachOnTheirOwn(t *testing.T) {
	agent := consultest.Start(t)
	c := &haCluster{t: t, agent: agent}
	c.add("coffer-ha-shamir/", serverConfig{})
	c.add("coffer-ha-shamir/", serverConfig{})
	var res *api.InitResponse
	testutil.Eventually(t, haTimeout, "sys/init through node 1", func() error {
		r, err := client(t, c.nodes[1].addr, "").Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1})
		if err != nil && statusOf(err) != http.StatusServiceUnavailable {
			t.Fatalf("sys/init: %v", err)
		}
		res = r
		return err
	})
	c.root = res.RootToken
	// Sealed, both: neither holds the lock.
	testutil.Eventually(t, haTimeout, "no active node while both are sealed", func() error {
		if a := c.actives(); len(a) != 0 {
			return fmt.Errorf("active nodes %v", a)
		}
		return nil
	})
	if _, err := client(t, c.nodes[1].addr, "").Sys().Unseal(res.Keys[0]); err != nil {
		t.Fatalf("unseal node 1: %v", err)
	}
	if a := c.waitActive(haTimeout, 0); a != 1 {
		t.Fatalf("active node %d, want the unsealed node 1", a)
	}
	waitHealthCode(t, c.nodes[0].addr, 503) // sealed
	if _, err := client(t, c.nodes[0].addr, "").Sys().Unseal(res.Keys[0]); err != nil {
		t.Fatalf("unseal node 0: %v", err)
	}
	waitHealthCode(t, c.nodes[0].addr, 473)
	if a := c.waitActive(haTimeout, -1); a != 1 {
		t.Fatalf("active node %d after unsealing the other, want 1", a)
	}
	// Sealing the active node (sys/seal, root) hands the lock to the other.
	if err := client(t, c.nodes[1].addr, c.root).Sys().Seal(); err != nil {
		t.Fatalf("seal the active node: %v", err)
	}
	if a := c.waitActive(haTimeout, 1); a != 0 {
		t.Fatalf("active node %d after sealing node 1, want 0", a)
	}
}
