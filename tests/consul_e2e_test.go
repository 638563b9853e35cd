package tests

// A coffer server on Consul storage (issue 13, its first part): it
// initializes, unseals (the merkle index and WAL group commit stay under
// Consul's 128 operations per transaction), serves KV v2 through vault/api,
// and keeps its data across a restart.

import (
	"fmt"
	"testing"

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
	// The first unseal builds the merkle index: 65,536 pages at 127 a
	// transaction on Consul takes seconds (issue 13 goes on from here).
	c.SetClientTimeout(2 * waitTimeout)
	res, err := c.Sys().Init(&api.InitRequest{RecoveryShares: 1, RecoveryThreshold: 1})
	if err != nil {
		t.Fatalf("sys/init on Consul: %v", err)
	}
	waitHealthCode(t, n.addr, 200)
	root := client(t, n.addr, res.RootToken)
	if err := root.Sys().Mount("secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatalf("mount kv-v2: %v", err)
	}
	for i := range 20 {
		kvPut(t, root, "secret", fmt.Sprintf("k%02d", i), map[string]any{"v": fmt.Sprint(i)})
	}
	n.restart(p)
	waitHealthCode(t, n.addr, 200)
	root = client(t, n.addr, res.RootToken)
	for i := range 20 {
		waitKV(t, root, "secret", fmt.Sprintf("k%02d", i), fmt.Sprint(i), waitTimeout)
	}
}
