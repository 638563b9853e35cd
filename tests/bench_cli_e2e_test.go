package tests

import (
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
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
		"catch-up from a backlog of 300 writes", "secondary's CPU", "ordered consumer:")
	if strings.Contains(out, "no samples") {
		t.Fatalf("a measurement took no sample:\n%s", out)
	}
	code, _, errOut := runCLI(t, "127.0.0.1:1", "", "", "bench", "-storage", "tape")
	if code == 0 || !strings.Contains(errOut, `-storage "tape": use inmem, bolt`) {
		t.Fatalf("bench -storage tape: exit %d, %s", code, errOut)
	}
	// NATS apart: the set replicates through a server outside the primary.
	// Two rounds of the throughput measurements, the CPU also at one rate.
	out = cliOK(t, "127.0.0.1:1", "", "", "bench", "-storage", "inmem", "-nats", "apart", "-only", "throughput,lag",
		"-rates", "100", "-duration", "1s", "-throughput-duration", "1s", "-clients", "2", "-repeat", "2", "-cpu-rate", "200")
	cliContains(t, "coffer bench -nats apart", out, "primary CPU per 1,000 writes", "inmem, NATS apart", "lag at 100 writes/s", "secondary 2",
		"median of 2 rounds, each:", "primary CPU per 1,000 writes at 200 writes/s (open loop)", "writes per batch shipped")
	if strings.Contains(out, "no samples") {
		t.Fatalf("a measurement took no sample:\n%s", out)
	}
	code, _, errOut = runCLI(t, "127.0.0.1:1", "", "", "bench", "-nats", "cloud")
	if code == 0 || !strings.Contains(errOut, `-nats "cloud": use embedded, apart`) {
		t.Fatalf("bench -nats cloud: exit %d, %s", code, errOut)
	}
}

// `coffer bench -primary ... -secondaries ...` measures running clusters:
// a dev primary and a dev secondary activated from it.
func TestCofferBenchRunningClusters(t *testing.T) {
	p, s := devReplServer(t, "root"), devReplServer(t, "root")
	enablePrimary(t, p.root)
	if err := activateSecondary(s.root, secondaryToken(t, p.root, "dc2", "")); err != nil {
		t.Fatalf("activate: %v", err)
	}
	waitHealthCode(t, s.addr, 200)
	testutil.Eventually(t, replTimeout, "the secondary serves the dev root token", func() error {
		_, err := client(t, s.addr, "root").Auth().Token().LookupSelf()
		return err
	})
	out := cliOK(t, p.addr, "root", "", "bench", "-primary", "http://"+p.addr, "-secondaries", "http://"+s.addr,
		"-secondary-token", "root", "-rates", "100", "-duration", "2s", "-throughput-duration", "1s", "-clients", "2", "-forwarded", "10")
	cliContains(t, "coffer bench on running clusters", out, "write throughput, 2 clients", "running",
		"lag at 100 writes/s", "secondary 1", "forwarded by a secondary")
	if strings.Contains(out, "no samples") {
		t.Fatalf("a measurement took no sample:\n%s", out)
	}
	if err := kvHas(client(t, p.addr, "root"), "secret", "coffer-bench/check", ""); err == nil || !strings.Contains(err.Error(), "v=") {
		t.Fatalf("the bench's writes are not under secret/coffer-bench/: %v", err)
	}
}
