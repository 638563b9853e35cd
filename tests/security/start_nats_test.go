package security

// Finding 9 of issue 11: when NATS was down as the primary unsealed,
// replication never started (logged once, no retry), and the WAL collector
// stopped waiting for the shipper meanwhile. Now the stored role retries in
// the background, the status says "connecting", and once NATS is back the
// writes made meanwhile reach the secondary.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/cofferhq/coffer/internal/testutil"
)

func TestReplicationStartsWhenNATSComesBack(t *testing.T) {
	ns, natsCfg, pri, sec := startExternalPair(t)
	P, S := pri.rootClient(), sec.client(pri.rootID)
	mustKVPut(t, P, "before", "1")
	waitKV(t, S, "before", "1")

	// The primary restarts while NATS is down.
	if code := pri.p.stop(); code != 0 {
		t.Fatalf("primary exited %d on SIGTERM", code)
	}
	if err := ns.Close(); err != nil {
		t.Fatalf("stop NATS: %v", err)
	}
	pri.start()
	testutil.Eventually(t, replTimeout, "the restarted primary's status says it is connecting", func() error {
		st := pri.replStatus()
		if m, s := jsonString(st["mode"]), jsonString(st["state"]); m != "primary" || s != "connecting" {
			return fmt.Errorf("mode %q state %q, want primary connecting (%v)", m, s, st["last_error"])
		}
		return nil
	})
	mustKVPut(t, P, "during", "2")
	// A write no batch could carry is refused meanwhile too (NATS' default
	// max_payload assumed until it is reached): committed, it would stall
	// shipping once NATS is back.
	err := kvPut(P, "big", strings.Repeat("b", 2<<20))
	if err == nil || !strings.Contains(err.Error(), "413") || !strings.Contains(err.Error(), "assumed") {
		t.Fatalf("a 2 MiB secret while the primary's start is retried: %v; want 413, the bound assumed", err)
	}

	// NATS comes back: replication starts by itself, and the write made
	// meanwhile reaches the secondary.
	bustest.StartConfig(t, natsCfg)
	testutil.Eventually(t, replTimeout, "the primary's replication running", func() error {
		if s := jsonString(pri.replStatus()["state"]); s != "running" {
			return fmt.Errorf("state %q", s)
		}
		return nil
	})
	waitKV(t, S, "during", "2")
	mustKVPut(t, P, "after", "3")
	waitKV(t, S, "after", "3")
}

// startExternalPair runs a NATS server of the test's own (so that the test
// can stop it and start it again on the same address and store) and a
// primary and an activated secondary on it: dev servers on bolt with one
// static seal key, so that both survive a restart.
func startExternalPair(t *testing.T) (ns *bus.Bus, natsCfg bus.Config, pri, sec *server) {
	t.Helper()
	natsCfg = bus.Config{Listen: testutil.FreeAddr(t), StoreDir: t.TempDir(), MaxPayload: 1 << 20}
	ns = bustest.StartConfig(t, natsCfg)
	key := randomBytes(t, 32)
	pri = startDevServer(t, serverOpts{Name: "dc1", Bolt: true, SealKey: key, ExternalNATS: ns.ClientURL()})
	sec = startDevServer(t, serverOpts{Name: "dc2", Bolt: true, SealKey: key, ExternalNATS: ns.ClientURL()})
	enablePrimary(t, pri)
	if err := activate(sec, secondaryToken(t, pri, "dc2")); err != nil {
		t.Fatalf("activate: %v", err)
	}
	return ns, natsCfg, pri, sec
}
