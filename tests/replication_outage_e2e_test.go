package tests

// End-to-end tests of performance replication (docs/replication.md), with a
// part down: a stopped primary or secondary, and an external NATS server (run
// in this process with bustest) that goes away and comes back.

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

// TestReplicationStaleReadsWhilePrimaryDown: with the primary stopped the
// secondary serves what it has; when the primary is back, replication resumes
// by itself.
func TestReplicationStaleReadsWhilePrimaryDown(t *testing.T) {
	priBus, _, seed := embeddedBusAt(t)
	r := startReplPair(t, priBus, withSeed(embeddedBus(t), seed))
	kvPut(t, r.P, "secret", "b", map[string]any{"v": "2"})
	waitKV(t, r.S, "secret", "b", "2", waitTimeout)

	if code := r.pri.p.stop(); code != 0 {
		t.Fatalf("primary exited %d on SIGTERM, want 0", code)
	}
	// Reads and logins on the secondary go on.
	for _, k := range [][2]string{{"a", "1"}, {"b", "2"}} {
		if err := kvHas(r.S, "secret", k[0], k[1]); err != nil {
			t.Fatalf("read on the secondary with the primary down: %v", err)
		}
	}
	fresh, err := userpassLogin(t, r.sec.n.addr, "alice", "pw")
	if err != nil {
		t.Fatalf("userpass login on the secondary with the primary down: %v", err)
	}
	primaryConn(t, r.sec.n.addr, "disconnected", waitTimeout)
	// A replicated write on the secondary cannot reach the primary now: it
	// fails, and is not applied later either (checked below).
	_, err = fresh.KVv2("secret").Put(context.Background(), "while-down", map[string]any{"v": "x"})
	switch statusOf(err) {
	case 400: // refused: no forwarding
		refused(t, "a replicated write on the secondary with the primary down", err, 400, "primary")
	default: // forwarding: 503, not applied
		refused(t, "a forwarded write with the primary down", err, 503, "not applied")
	}
	if err := kvHas(fresh, "secret", "b", "2"); err != nil {
		t.Fatalf("read on the secondary after it noticed the primary is gone: %v", err)
	}
	if m := str(perfStatus(t, r.sec.n.addr)["mode"]); m != "secondary" {
		t.Fatalf("secondary mode with the primary down: %q", m)
	}

	// The primary comes back: no operator action.
	r.pri.p = r.pri.n.start()
	waitHealthCode(t, r.pri.n.addr, 200)
	kvPut(t, r.P, "secret", "c", map[string]any{"v": "3"})
	waitKV(t, r.S, "secret", "c", "3", replTimeout)
	primaryConn(t, r.sec.n.addr, "connected", replTimeout)
	_, err = kvData(r.P, "secret", "while-down")
	notFound(t, "the write sent to the secondary while the primary was down, on the primary", err)

	// A restarted secondary resumes as well.
	r.sec.p = r.sec.n.restart(r.sec.p)
	waitHealthCode(t, r.sec.n.addr, 200)
	if err := kvHas(r.S, "secret", "c", "3"); err != nil {
		t.Fatalf("read on the restarted secondary: %v", err)
	}
	kvPut(t, r.P, "secret", "d", map[string]any{"v": "4"})
	waitKV(t, r.S, "secret", "d", "4", replTimeout)
	if got, want := kvKeys(t, r.S, "secret"), kvKeys(t, r.P, "secret"); !slices.Equal(got, want) {
		t.Fatalf("keys on the secondary %v, on the primary %v", got, want)
	}
}

// TestReplicationNATSOutage: the external NATS server goes away for a while;
// the primary keeps taking writes and every one reaches the secondary, in order,
// once NATS is back.
func TestReplicationNATSOutage(t *testing.T) {
	// A NATS server of neither cluster, with stock nats-server's max_payload
	// (1 MiB): it stops and comes back on the same address and store.
	natsCfg := bus.Config{Listen: testutil.FreeAddr(t), StoreDir: t.TempDir(), MaxPayload: 1 << 20}
	ns := bustest.StartConfig(t, natsCfg)
	busBody := fmt.Sprintf("url = %q", ns.ClientURL())
	r := startReplPair(t, busBody, busBody)
	ctx := context.Background()

	const before, total, distinct = 5, 30, 10
	// kv-v2 keeps 10 versions by default: keep them all.
	if err := r.P.KVv2("secret").PutMetadata(ctx, "seq", api.KVMetadataPutInput{MaxVersions: 2 * total}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= before; i++ {
		kvPut(t, r.P, "secret", "seq", map[string]any{"v": strconv.Itoa(i)})
	}
	waitKV(t, r.S, "secret", "seq", strconv.Itoa(before), waitTimeout)

	if err := ns.Close(); err != nil {
		t.Fatalf("stop NATS: %v", err)
	}
	for i := before + 1; i <= total; i++ {
		kvPut(t, r.P, "secret", "seq", map[string]any{"v": strconv.Itoa(i)})
	}
	for i := 0; i < distinct; i++ {
		kvPut(t, r.P, "secret", fmt.Sprintf("out-%d", i), map[string]any{"v": fmt.Sprintf("o%d", i)})
	}
	if err := kvHas(r.P, "secret", "seq", strconv.Itoa(total)); err != nil {
		t.Fatalf("read on the primary during the outage: %v", err)
	}
	if err := kvHas(r.S, "secret", "seq", strconv.Itoa(before)); err != nil {
		t.Fatalf("read on the secondary during the outage: %v", err)
	}

	bustest.StartConfig(t, natsCfg)
	waitKV(t, r.S, "secret", "seq", strconv.Itoa(total), replTimeout)
	testutil.Eventually(t, replTimeout, "every key written during the outage on the secondary", func() error {
		for i := 0; i < distinct; i++ {
			if err := kvHas(r.S, "secret", fmt.Sprintf("out-%d", i), fmt.Sprintf("o%d", i)); err != nil {
				return err
			}
		}
		return nil
	})
	md, err := r.S.KVv2("secret").GetMetadata(ctx, "seq")
	if err != nil {
		t.Fatal(err)
	}
	if md.CurrentVersion != total || len(md.Versions) != total {
		t.Fatalf("secondary metadata of seq: current_version %d with %d versions, want %d", md.CurrentVersion, len(md.Versions), total)
	}
	for i := 1; i <= total; i++ {
		s, err := r.S.KVv2("secret").GetVersion(ctx, "seq", i)
		if err != nil {
			t.Fatalf("seq version %d on the secondary: %v", i, err)
		}
		if got := str(s.Data["v"]); got != strconv.Itoa(i) {
			t.Fatalf("seq version %d on the secondary holds %q, want %d", i, got, i)
		}
	}
	if got, want := kvKeys(t, r.S, "secret"), kvKeys(t, r.P, "secret"); !slices.Equal(got, want) {
		t.Fatalf("keys on the secondary %v, on the primary %v", got, want)
	}
}
