package security

// Issue 12 on an untrusted bus: the set's generation claim lives in a
// JetStream KV bucket anyone on the bus may write. A stranger forges a claim
// of a newer generation, deletes the key and the bucket, and writes back a
// genuine claim of the primary's previous process (captured before a
// restart): none of it fences the primary or stops replication, and the
// status counts what was refused.

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/replication"
)

func TestAttackerCannotFenceThePrimary(t *testing.T) {
	pri := startDevServer(t, serverOpts{Name: "dc1", Bolt: true, SealKey: randomBytes(t, 32), NATSStore: true})
	sec := startDevServer(t, serverOpts{Name: "dc2"})
	id := enablePrimary(t, pri)
	if err := activate(sec, secondaryToken(t, pri, "dc2")); err != nil {
		t.Fatal(err)
	}
	P, S := pri.rootClient(), sec.client(pri.rootID)
	a := newAttacker(t, pri.natsURL())
	ctx := context.Background()
	bucket := replication.GenerationBucket(id)
	kv, err := a.js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatalf("attacker: open %s: %v", bucket, err)
	}
	// A genuine claim of this process, kept for a replay after a restart.
	old, err := kv.Get(ctx, replication.GenerationKey)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	stillPrimary := func(what string, injected []byte) {
		t.Helper()
		n++
		key := fmt.Sprintf("after%d", n)
		mustKVPut(t, P, key, what)
		waitKV(t, S, key, what)
		testutil.Eventually(t, replTimeout, what+": the primary restores its claim", func() error {
			st := pri.replStatus()
			if s := jsonString(st["state"]); s != "running" {
				return fmt.Errorf("primary state %q (%v)", s, st["fenced_reason"])
			}
			kv, err := a.js.KeyValue(ctx, bucket)
			if err != nil {
				return fmt.Errorf("the bucket: %w", err)
			}
			e, err := kv.Get(ctx, replication.GenerationKey)
			if err != nil {
				return err
			}
			if injected != nil && string(e.Value()) == string(injected) {
				return fmt.Errorf("the injected claim is still there")
			}
			return nil
		})
	}

	forged := append([]byte{1}, []byte(fmt.Sprintf(`{"v":1,"set":%q,"gen":99,"cluster_id":"evil","instance":"x","shipped":1000000,"renewed":%d}`, id, time.Now().UnixMilli()))...)
	forged = append(forged, attackerGarbage(64)...)
	if _, err := kv.Put(ctx, replication.GenerationKey, forged); err != nil {
		t.Fatal(err)
	}
	stillPrimary("a forged claim of generation 99", forged)

	if err := kv.Delete(ctx, replication.GenerationKey); err != nil {
		t.Fatal(err)
	}
	stillPrimary("the claim deleted", nil)

	if err := a.js.DeleteKeyValue(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	stillPrimary("the bucket deleted", nil)
	if kv, err = a.js.KeyValue(ctx, bucket); err != nil {
		t.Fatal(err)
	}

	// A restart: a new process holds the set; the old one's claim comes back.
	pri.restart()
	P = pri.rootClient()
	testutil.Eventually(t, replTimeout, "the restarted primary running", func() error {
		if s := jsonString(pri.replStatus()["state"]); s != "running" {
			return fmt.Errorf("state %q", s)
		}
		return nil
	})
	if _, err := kv.Put(ctx, replication.GenerationKey, old.Value()); err != nil {
		t.Fatal(err)
	}
	stillPrimary("a replay of the previous process's claim", old.Value())

	st := pri.replStatus()
	if f, _ := strconv.Atoi(jsonString(st["foreign_claims"])); f < 1 {
		t.Fatalf("foreign_claims %v after a forged and a replayed claim, want at least 1", st["foreign_claims"])
	}
}
