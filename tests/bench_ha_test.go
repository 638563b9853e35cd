package tests

import (
	"context"
	"fmt"
	"testing"

	"github.com/cofferhq/coffer/storage/consul/consultest"
	"github.com/hashicorp/vault/api"
)

// BenchmarkHAStandby measures, on a cluster of two nodes on one Consul
// agent, a KV v2 read and write sent to the active node beside the same
// sent to a standby: a read the standby serves itself (after one read of
// wal/meta from Consul), a write it forwards to the active node. One client,
// sequential: the ratio standby/active is the figure (docs/performance.md).
//
//	go test ./tests/ -run '^$' -bench HAStandby -benchtime 2000x
func BenchmarkHAStandby(b *testing.B) {
	agent := consultest.Start(b)
	c := newHACluster(b, agent, 2, "coffer-bench-ha/", serverConfig{})
	active := c.initHA(0)
	sb := c.standby(active)
	root := client(b, c.nodes[active].addr, c.root)
	if err := root.Sys().Mount("secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := root.KVv2("secret").Put(ctx, "k", map[string]any{"v": "x"}); err != nil {
		b.Fatal(err)
	}
	for _, node := range []struct {
		name string
		i    int
	}{{"active", active}, {"standby", sb}} {
		kv := client(b, c.nodes[node.i].addr, c.root).KVv2("secret")
		b.Run("read/"+node.name, func(b *testing.B) {
			for range b.N {
				if _, err := kv.Get(ctx, "k"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("write/"+node.name, func(b *testing.B) {
			for i := range b.N {
				if _, err := kv.Put(ctx, fmt.Sprintf("w%d", i%64), map[string]any{"v": i}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
