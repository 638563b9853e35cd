package security

// The acceptance test of issue 11 for the bus (docs/security.md, "Threat
// model"): a real primary and a real secondary replicate while the bus
// attacker of attacker_harness_test.go is on the primary's NATS from before
// activation to the end, doing everything it can at once.

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// TestAttackerEndToEnd: with the attacker active throughout, activation
// succeeds, replication converges, the capture holds no secret (activation
// token, seal keys, root tokens, secret values), nothing the attacker sent
// is applied or changes a state (the secondary is never revoked), and after a
// restart of each side and a replay of everything captured, the data of both
// sides is unchanged and still converges.
func TestAttackerEndToEnd(t *testing.T) {
	began := time.Now()
	defer func() { t.Logf("TestAttackerEndToEnd took %s", time.Since(began).Round(100*time.Millisecond)) }()
	ctx := context.Background()
	p := newAttackerPair(t, func(a *attacker) {
		a.JoinQueueGroups("coffer")
		a.StartRacing(attackerAllRaces...)
		a.StartHijack(false)
	})
	a, P := p.a, p.P()
	secrets := map[string][]byte{
		"the seal key":          p.pri.sealKey,
		"the root token of dc1": []byte(p.pri.rootID),
		"the root token of dc2": []byte(p.sec.rootID),
	}
	put := func(c *api.Client, key string) string {
		t.Helper()
		v := attackerSecretValue(t, key)
		secrets["the value of secret/"+key] = []byte(v)
		mustKVPut(t, c, key, v)
		return v
	}

	put(P, "before-enable")
	p.enable(t)
	a.JoinQueueGroups(attackerQueueGroupGuesses(p.cluster)[1:]...) // the cluster id is public now
	for k, v := range attackerTokenSecrets(t, p.token) {
		secrets[k] = v
	}
	put(P, "before-activation")

	// Activation, raced, hijacked and with most requests taken by the attacker.
	err := activate(p.sec, p.token)
	a.requireNotFound(t, "after activation", secrets)
	if err != nil {
		t.Fatalf("activation with the attacker on the bus failed: %v (the attacker may delay it, never stop it: a requester must ignore replies it cannot authenticate)", err)
	}
	var want []string
	for i := range 5 {
		want = append(want, fmt.Sprintf("app-%d", i))
		put(P, want[i])
	}
	// Writes sent to the secondary are forwarded to the primary: two
	// versions of one key, so that a replayed forward would show.
	put(p.S(), "forwarded")
	fwd := put(p.S(), "forwarded")
	for _, k := range want {
		p.waitKV(t, k, string(secrets["the value of secret/"+k]))
	}
	p.waitKV(t, "forwarded", fwd)
	p.waitSame(t, "after activation")

	// The WAL stream: junk under the ids of the next batches, then deleted
	// and re-created by the attacker.
	st, err := readReplStatus(p.pri.addr)
	if err != nil {
		t.Fatalf("primary status: %v", err)
	}
	var last uint64
	if _, err := fmt.Sscan(jsonString(st["last_wal"]), &last); err != nil {
		t.Fatalf("last_wal in the primary's status %v: %v", st, err)
	}
	if _, err := a.PublishPredicted(ctx, p.cluster, last, 20); err != nil {
		t.Errorf("publish junk under predicted ids: %v", err)
	}
	put(P, "after-junk")
	p.waitKV(t, "after-junk", string(secrets["the value of secret/after-junk"]))
	if err := a.DeleteStream(ctx, walStream(p.cluster)); err != nil {
		t.Errorf("delete the WAL stream: %v", err)
	}
	put(P, "after-delete")
	p.waitKV(t, "after-delete", string(secrets["the value of secret/after-delete"]))
	_ = a.DeleteStream(ctx, walStream(p.cluster))
	_ = a.RecreateStream(ctx, walStream(p.cluster), walSubject(p.cluster))
	put(P, "after-recreate")
	p.waitKV(t, "after-recreate", string(secrets["the value of secret/after-recreate"]))
	snap := p.waitSame(t, "after the attacks on the WAL stream")

	// Each side restarts; the attacker replays everything it captured.
	for i, side := range []*server{p.pri, p.sec} {
		restarted := time.Now()
		side.restart()
		p.attackerWaitServing(t, restarted)
		rs := a.ReplayRequests(ctx)
		stored, dups, errs := a.ReplayWAL(ctx, true)
		stored2, dups2, errs2 := a.ReplayWAL(ctx, false)
		t.Logf("after restarting %s: replayed %d requests; WAL batches with their ids: %d stored, %d duplicates, %d errors; without: %d stored, %d duplicates, %d errors",
			side.name, len(rs), stored, dups, len(errs), stored2, dups2, len(errs2))
		// A write after the replays: once the secondary has it, it has
		// consumed every replayed batch, which came before it.
		marker := fmt.Sprintf("marker-%d", i)
		v := put(P, marker)
		p.waitKV(t, marker, v)
		snap[fmt.Sprintf("secret/%s", marker)] = fmt.Sprintf("v=%s version=1", v)
		got := p.waitSame(t, "after restarting "+side.name+", replaying and writing "+marker)
		if d := snapshotDiff(snap, got); d != "" {
			t.Errorf("after restarting %s and replaying everything captured, the data changed: %s", side.name, d)
		}
		snap = got
	}

	// The verdict on everything the attacker did and saw.
	p.rec.neverRevoked(t, "from before activation to the end")
	attackerAbsent(t, "the primary", P, a.Tried())
	attackerAbsent(t, "the secondary", p.S(), a.Tried())
	if l := a.Loot(); len(l) > 0 {
		t.Errorf("the attacker redeemed the activation token with its own key and opened %d bootstrap bundle(s): %v", len(l), l)
	}
	if st, err := readReplStatus(p.pri.addr); err != nil || !slices.Equal(attackerStrs(st["known_secondaries"]), []string{"dc2"}) {
		t.Errorf("the primary's known_secondaries: %v (%v), want [dc2]", st["known_secondaries"], err)
	}
	a.requireNotFound(t, "at the end", secrets)
	checkAttackerDidAttack(t, a)
}

// attackerWaitServing waits until the secondary has had a heartbeat answered
// after since (so both sides are up and talk again after a restart of
// either), and reads again.
func (p *attackerPair) attackerWaitServing(t *testing.T, since time.Time) {
	t.Helper()
	p.converge(t, "a heartbeat of the secondary answered after "+since.Format("15:04:05.000"), func() error {
		st, err := readReplStatus(p.sec.addr)
		if err != nil {
			return err
		}
		ps, _ := st["primaries"].([]any)
		if len(ps) == 0 {
			return fmt.Errorf("no primaries[] in %v", st)
		}
		m, _ := ps[0].(map[string]any)
		hb, err := time.Parse(time.RFC3339Nano, jsonString(m["last_heartbeat"]))
		if err != nil {
			return fmt.Errorf("last_heartbeat %q: %v", m["last_heartbeat"], err)
		}
		if !hb.After(since) {
			return fmt.Errorf("last_heartbeat %s", hb.Format(time.RFC3339Nano))
		}
		return nil
	})
	p.converge(t, "the secondary reads", func() error {
		_, err := kvSnapshot(p.S())
		return err
	})
}

// checkAttackerDidAttack fails t when the attacker saw or did too little for
// the test to mean anything.
func checkAttackerDidAttack(t *testing.T, a *attacker) {
	t.Helper()
	var wal, rpc int
	for _, m := range a.Messages() {
		if attackerIsWAL(m.Subject) {
			wal++
		}
		if _, ok := attackerRPCMethod(m.Subject); ok {
			rpc++
		}
	}
	raced := 0
	for _, m := range []string{"activate", "heartbeat", "sync", "merkle", "fetch", "forward", "key"} {
		raced += a.Raced(m)
	}
	t.Logf("the attacker captured %d messages (%d RPC, %d WAL publishes), raced %d requests, holds %d",
		len(a.Messages()), rpc, wal, raced, len(a.Held()))
	if wal == 0 || rpc == 0 || raced == 0 {
		t.Errorf("the attacker saw %d WAL publishes and %d RPC messages and raced %d requests: it cannot have attacked much (subjects changed? update attacker_harness_test.go)", wal, rpc, raced)
	}
}

// attackerStrs reads a JSON list of strings.
func attackerStrs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		out = append(out, fmt.Sprint(e))
	}
	slices.Sort(out)
	return out
}
