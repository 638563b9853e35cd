package tests

// A coffer server on Consul storage (issue 13, its first part): it
// initializes, unseals (the merkle index and WAL group commit stay under
// Consul's 128 operations per transaction), serves KV v2 through vault/api,
// and keeps its data across a restart.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/storage/consul/consultest"
	"github.com/hashicorp/vault/api"
)

func TestServerOnConsul(t *testing.T) {
	agent := consultest.Start(t)
	n := newNode(t, serverConfig{
		StaticKey: randomBytes(t, 32),
		Storage:   fmt.Sprintf("storage \"consul\" {\n  address = %q\n  path = \"coffer-e2e/\"\n}", agent.Addr),
	})
	p := n.start()
	c := client(t, n.addr, "")
	// The first unseal builds the merkle index: only the pages of the buckets
	// that hold something are written and read (a handful here).
	c.SetClientTimeout(2 * waitTimeout)
	began := time.Now()
	res, err := c.Sys().Init(&api.InitRequest{RecoveryShares: 1, RecoveryThreshold: 1})
	if err != nil {
		t.Fatalf("sys/init on Consul: %v", err)
	}
	waitHealthCode(t, n.addr, 200)
	t.Logf("init and first unseal on Consul: %s", time.Since(began).Round(time.Millisecond))
	logMerkle(t, p)
	root := client(t, n.addr, res.RootToken)
	if err := root.Sys().Mount("secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatalf("mount kv-v2: %v", err)
	}
	for i := range 20 {
		kvPut(t, root, "secret", fmt.Sprintf("k%02d", i), map[string]any{"v": fmt.Sprint(i)})
	}
	began = time.Now()
	p = n.restart(p)
	waitHealthCode(t, n.addr, 200)
	t.Logf("restart and unseal on Consul: %s", time.Since(began).Round(time.Millisecond))
	logMerkle(t, p)
	root = client(t, n.addr, res.RootToken)
	for i := range 20 {
		waitKV(t, root, "secret", fmt.Sprintf("k%02d", i), fmt.Sprint(i), waitTimeout)
	}
	// A reindex rewrites the pages that hold something and deletes none that
	// do; merkle-check reads the stored pages back.
	r0 := merkleRootAt(t, n.addr)
	began = time.Now()
	if got := reindex(t, root); got != r0 {
		t.Fatalf("sys/replication/reindex on Consul: merkle_root %s, before %s", got, r0)
	}
	t.Logf("reindex on Consul: %s", time.Since(began).Round(time.Millisecond))
	began = time.Now()
	requireClean(t, "after reindex on Consul", root)
	t.Logf("merkle-check on Consul: %s", time.Since(began).Round(time.Millisecond))
}

// logMerkle logs the merkle index's lines of p's output: how it came up and
// what that took.
func logMerkle(t *testing.T, p *proc) {
	t.Helper()
	for _, line := range strings.Split(p.out.String(), "\n") {
		if strings.Contains(line, "merkle index") {
			t.Log(line)
		}
	}
}
