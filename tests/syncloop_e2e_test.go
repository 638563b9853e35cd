package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/bolt"
	"github.com/hashicorp/vault/api"
)

// deleteRaw deletes one replicated kv key straight from a stopped server's
// bolt file, below its WAL and merkle index (which keeps the key), and
// returns it.
func deleteRaw(t *testing.T, dbPath string) string {
	t.Helper()
	b, err := bolt.Open(bolt.Options{Path: dbPath, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open %s: %v", dbPath, err)
	}
	defer b.Close()
	ctx := context.Background()
	var victim string
	if err := storage.Walk(ctx, b, "logical/", "", func(k string) (bool, error) {
		if strings.Contains(k, "/versions/") {
			victim = k
		}
		return true, nil
	}); err != nil || victim == "" {
		t.Fatalf("no kv version key in %s: %v", dbPath, err)
	}
	if err := b.Delete(ctx, victim); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return victim
}

// TestSyncLoopDetectedAndRecovered: a primary whose merkle index disagrees
// with its data (a kv key deleted below its index while it was stopped) sends
// a newly activated secondary into a merkle-sync loop. The secondary's status
// shows it (merkle_sync_loop: the key that kept differing, the back-off);
// sys/replication/reindex with diff on the primary names the stale item and
// fixes its index; sys/replication/recover on the secondary restarts it at
// once, and the loop is over: same root, stream-wals, no merkle_sync_loop.
func TestSyncLoopDetectedAndRecovered(t *testing.T) {
	key := randomBytes(t, 32)
	priBus, _, natsSeed := embeddedBusAt(t)
	pri := startMerkleNode(t, key, "dc1", priBus, "")
	P := client(t, pri.n.addr, pri.root)
	seedPrimary(t, P)
	if err := P.Sys().PutPolicy("recoverer", `path "sys/replication/recover" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	if _, err := P.Logical().Write("auth/userpass/users/bob", map[string]any{"password": "pw", "token_policies": "recoverer"}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		kvPut(t, P, "secret", fmt.Sprintf("k%02d", i), map[string]any{"v": fmt.Sprint(i)})
	}
	enablePrimary(t, P)
	if code := pri.p.stop(); code != 0 {
		t.Fatalf("exit %d on SIGTERM, want 0", code)
	}
	victim := deleteRaw(t, pri.n.dbPath)
	pri.p = pri.n.start()
	waitHealthCode(t, pri.n.addr, 200)

	// sys/replication/recover on a cluster that runs no secondary: refused.
	if _, err := P.Logical().Write("sys/replication/recover", nil); statusOf(err) != 400 {
		t.Fatalf("recover on the primary: want 400, got %v", err)
	}

	sec := startMerkleNode(t, key, "dc2", withSeed(embeddedBus(t), natsSeed), "")
	if err := activateSecondary(client(t, sec.n.addr, sec.root), secondaryToken(t, P, "dc2", "")); err != nil {
		t.Fatalf("secondary/enable: %v", err)
	}
	i := 0
	var loop map[string]any
	testutil.Eventually(t, replTimeout, "the secondary reports a merkle-sync loop and backs off", func() error {
		kvPut(t, P, "secret", fmt.Sprintf("w%03d", i), map[string]any{"v": "a guarded batch"})
		i++
		loop, _ = perfStatus(t, sec.n.addr)["merkle_sync_loop"].(map[string]any)
		if loop == nil || loop["looping"] != true || str(loop["backoff_until"]) == "" {
			return fmt.Errorf("merkle_sync_loop %v", loop)
		}
		return nil
	})
	t.Logf("merkle_sync_loop: %v", loop)
	// The status is served without a token: it counts the keys, and their
	// names are in the secondary's log only.
	if numOr0(loop["keys_that_kept_differing_count"]) < 1 {
		t.Fatalf("keys_that_kept_differing_count %v, want at least the one key (%s)", loop["keys_that_kept_differing_count"], victim)
	}
	if raw, _ := json.Marshal(perfStatus(t, sec.n.addr)); strings.Contains(string(raw), victim) {
		t.Fatalf("the unauthenticated status names the storage key %s: %s", victim, raw)
	}
	testutil.Eventually(t, replTimeout, "the secondary's log names the key", func() error {
		if !strings.Contains(sec.p.out.String(), victim) {
			return fmt.Errorf("no %s in the secondary's log yet", victim)
		}
		return nil
	})
	if until, err := time.Parse(time.RFC3339Nano, str(loop["backoff_until"])); err != nil || time.Until(until) < 10*time.Second {
		t.Fatalf("backoff_until %v (%v): want about 30 s ahead", loop["backoff_until"], err)
	}

	// The operator's answer: reindex the primary (diff names what was wrong)...
	last := reindexAt(t, P, "sys/replication/reindex", map[string]any{"diff": true})
	if d, _ := last["diff"].(map[string]any); d == nil || numOr0(d["stale"]) != 1 {
		t.Fatalf("reindex diff %v: want the one stale item (%s)", last["diff"], victim)
	}
	// ...then recover the secondary instead of waiting out its back-off.
	var bob *api.Client
	testutil.Eventually(t, replTimeout, "bob logs in on the secondary", func() error {
		c, err := userpassLogin(t, sec.n.addr, "bob", "pw")
		bob = c
		return err
	})
	s, err := bob.Logical().Write("sys/replication/recover", nil)
	if err != nil {
		t.Fatalf("sys/replication/recover on the secondary: %v", err)
	}
	if s == nil || str(s.Data["previous_state"]) == "" || len(s.Warnings) == 0 {
		t.Fatalf("sys/replication/recover: %+v", s)
	}
	testutil.Eventually(t, replTimeout, "the loop is over: same root, stream-wals, no merkle_sync_loop", func() error {
		kvPut(t, P, "secret", "after", map[string]any{"v": fmt.Sprint(time.Now().UnixNano())})
		pst, sst := perfStatus(t, pri.n.addr), perfStatus(t, sec.n.addr)
		if sst["state"] != "stream-wals" || sst["merkle_sync_loop"] != nil || str(sst["merkle_root"]) != str(pst["merkle_root"]) {
			return fmt.Errorf("secondary state %v, loop %v, roots %v / %v", sst["state"], sst["merkle_sync_loop"], sst["merkle_root"], pst["merkle_root"])
		}
		return nil
	})
}
