package tests

import (
	"strings"
	"testing"
)

// `coffer bench` runs every measurement on a set it starts itself, with the
// NATS anchor beside it, and prints one row per figure. Tiny figures: the
// test checks that it measures, never how fast (docs/performance.md has the
// figures).
func TestCofferBench(t *testing.T) {
	out := cliOK(t, "127.0.0.1:1", "", "", "bench", "-storage", "inmem", "-rates", "200", "-duration", "2s",
		"-backlog", "300", "-throughput-duration", "1s", "-clients", "4", "-forwarded", "20", "-compare-nats")
	cliContains(t, "coffer bench", out,
		"write throughput, 4 clients, replication off / two secondaries",
		"primary CPU per 1,000 writes",
		"lag at 200 writes/s", "secondary 1", "secondary 2", "(coffer p99",
		"write latency, sequential, forwarded by a secondary",
		"catch-up from a backlog of 300 writes", "ordered consumer:")
	if strings.Contains(out, "no samples") {
		t.Fatalf("a measurement took no sample:\n%s", out)
	}
	code, _, errOut := runCLI(t, "127.0.0.1:1", "", "", "bench", "-storage", "tape")
	if code == 0 || !strings.Contains(errOut, `-storage "tape": use inmem, bolt`) {
		t.Fatalf("bench -storage tape: exit %d, %s", code, errOut)
	}
}
