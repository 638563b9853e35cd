package tests

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// writeThroughput runs n KV v2 writes from 16 clients and returns writes/s.
func writeThroughput(b *testing.B, c *api.Client, prefix string, n int) float64 {
	b.Helper()
	var wg sync.WaitGroup
	work := make(chan int)
	start := time.Now()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if _, err := kvWrite(c, fmt.Sprintf("%s/%d", prefix, i%512), i); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkReplicationOverhead measures a primary's write throughput (16
// clients, KV v2) alone, then as a replication primary with two secondaries
// attached (DESIGN.md: replication costs the primary at most 10%). All
// processes share this machine's cores, so the secondaries' work counts
// against the primary here: a pessimistic figure.
func BenchmarkReplicationOverhead(b *testing.B) {
	p := devReplServer(b, "root")
	b.Run("alone", func(b *testing.B) {
		b.ReportMetric(writeThroughput(b, p.root, "alone", b.N), "writes/s")
	})
	s1, s2 := devReplServer(b, "root"), devReplServer(b, "root")
	if _, err := p.root.Logical().Write("sys/replication/performance/primary/enable", nil); err != nil {
		b.Fatal(err)
	}
	for i, s := range []*devCluster{s1, s2} {
		tok, err := p.root.Logical().Write("sys/replication/performance/primary/secondary-token", map[string]any{"id": fmt.Sprintf("dc%d", i+2)})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.root.Logical().Write("sys/replication/performance/secondary/enable", map[string]any{"token": tok.WrapInfo.Token}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("two-secondaries", func(b *testing.B) {
		b.ReportMetric(writeThroughput(b, p.root, "repl", b.N), "writes/s")
	})
}
