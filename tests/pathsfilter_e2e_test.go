package tests

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

const pathPathsFilter = "sys/replication/performance/primary/paths-filter/"

// kvAbsent is nil when key on the kv-v2 mount does not exist on c's server.
func kvAbsent(c *api.Client, mount, key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.KVv2(mount).Get(ctx, key)
	switch {
	case errors.Is(err, api.ErrSecretNotFound):
		return nil
	case err != nil:
		return err
	}
	return fmt.Errorf("%s/%s is on %s: %v", mount, key, c.Address(), s.Data)
}

// Paths filters through vault/api on a primary (bolt, static seal) with two
// secondaries: a deny filter set for dc2 before it is activated keeps the
// team/ mount's data off dc2 and not off dc3; changing it to deny secret/
// converges both ways (team/ arrives, secret/ is deleted on dc2); the filter
// survives a restart of the primary and is in its status; deleting it brings
// everything.
func TestPathsFilter(t *testing.T) {
	t.Parallel()
	body, _, seed := embeddedBusAt(t)
	key := randomBytes(t, 32)
	pri := startReplNode(t, key, "dc1", body)
	P := client(t, pri.n.addr, pri.root)
	seedPrimary(t, P)
	if err := P.Sys().Mount("team", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	if err := P.Sys().PutPolicy("reader", `path "secret/*" { capabilities = ["read", "list"] }
path "team/*" { capabilities = ["read", "list"] }`); err != nil {
		t.Fatal(err)
	}
	kvPut(t, P, "secret", "a", map[string]any{"v": "1"})
	kvPut(t, P, "team", "t", map[string]any{"v": "1"})
	enablePrimary(t, P)
	tokens := map[string]string{"dc2": secondaryToken(t, P, "dc2", ""), "dc3": secondaryToken(t, P, "dc3", "")}

	// Set before dc2 is activated: its bundle never holds the unfiltered key.
	if _, err := P.Logical().Write(pathPathsFilter+"dc2", map[string]any{"mode": "deny", "paths": []string{"team/"}}); err != nil {
		t.Fatalf("paths-filter dc2: %v", err)
	}
	_, err := P.Logical().Write(pathPathsFilter+"dc2", map[string]any{"mode": "block", "paths": []string{"team/"}})
	refused(t, "a filter of mode block", err, 400, "allow")
	_, err = P.Logical().Write(pathPathsFilter+"nobody", map[string]any{"mode": "deny", "paths": []string{"team/"}})
	refused(t, "a filter for an unknown secondary", err, 400, "secondary token first")

	S := map[string]*api.Client{}
	nodes := map[string]*replNode{}
	for _, id := range []string{"dc2", "dc3"} {
		n := startReplNode(t, key, id, withSeed(embeddedBus(t), seed))
		nodes[id] = n
		if err := activateSecondary(client(t, n.n.addr, n.root), tokens[id]); err != nil {
			t.Fatalf("activate %s: %v", id, err)
		}
		testutil.Eventually(t, replTimeout, "userpass login on "+id, func() error {
			c, err := userpassLogin(t, n.n.addr, "alice", "pw")
			S[id] = c
			return err
		})
	}
	waitKV(t, S["dc3"], "team", "t", "1", replTimeout)
	waitKV(t, S["dc3"], "secret", "a", "1", replTimeout)
	waitKV(t, S["dc2"], "secret", "a", "1", replTimeout)
	// Written after team/t2: once dc2 has secret/b it would have team/t2
	// too, were it not filtered.
	kvPut(t, P, "team", "t2", map[string]any{"v": "2"})
	kvPut(t, P, "secret", "b", map[string]any{"v": "2"})
	waitKV(t, S["dc2"], "secret", "b", "2", replTimeout)
	waitKV(t, S["dc3"], "team", "t2", "2", replTimeout)
	for _, k := range []string{"t", "t2"} {
		if err := kvAbsent(S["dc2"], "team", k); err != nil {
			t.Fatalf("deny team/ on dc2: %v", err)
		}
	}

	f, err := P.Logical().Read(pathPathsFilter + "dc2")
	if err != nil || f == nil || f.Data["mode"] != "deny" || fmt.Sprint(f.Data["paths"]) != "[team/]" {
		t.Fatalf("read the filter of dc2: %v %v", f, err)
	}
	// None: a 404, which vault/api reads as no secret.
	if s, err := P.Logical().Read(pathPathsFilter + "dc3"); err != nil || s != nil {
		t.Fatalf("read the filter of dc3 (none): %v %v, want nothing", s, err)
	}
	filterInStatus(t, pri.n.addr, "dc2", "deny", "[team/]")

	// Both ways: team/ arrives, secret/ goes.
	if _, err := P.Logical().Write(pathPathsFilter+"dc2", map[string]any{"mode": "deny", "paths": "secret/"}); err != nil {
		t.Fatalf("change the filter of dc2: %v", err)
	}
	waitKV(t, S["dc2"], "team", "t2", "2", replTimeout)
	waitKV(t, S["dc2"], "team", "t", "1", replTimeout)
	testutil.Eventually(t, replTimeout, "secret/ deleted on dc2", func() error {
		return errors.Join(kvAbsent(S["dc2"], "secret", "a"), kvAbsent(S["dc2"], "secret", "b"))
	})
	waitKV(t, S["dc3"], "secret", "b", "2", replTimeout)
	filteredRootsAgree(t, pri.n.addr, nodes["dc2"].n.addr, "dc2")

	// Restarts of the primary and of dc2 keep the filter, and it still holds.
	pri.p = pri.n.restart(pri.p)
	waitHealthCode(t, pri.n.addr, 200)
	nodes["dc2"].p = nodes["dc2"].n.restart(nodes["dc2"].p)
	waitHealthCode(t, nodes["dc2"].n.addr, 200)
	filterInStatus(t, pri.n.addr, "dc2", "deny", "[secret/]")
	kvPut(t, P, "secret", "c", map[string]any{"v": "3"})
	kvPut(t, P, "team", "t3", map[string]any{"v": "3"})
	waitKV(t, S["dc2"], "team", "t3", "3", replTimeout)
	waitKV(t, S["dc3"], "secret", "c", "3", replTimeout)
	if err := kvAbsent(S["dc2"], "secret", "c"); err != nil {
		t.Fatalf("deny secret/ on dc2 after the restarts: %v", err)
	}
	filteredRootsAgree(t, pri.n.addr, nodes["dc2"].n.addr, "dc2")

	// No filter: everything.
	if _, err := P.Logical().Delete(pathPathsFilter + "dc2"); err != nil {
		t.Fatal(err)
	}
	waitKV(t, S["dc2"], "secret", "c", "3", replTimeout)
	waitKV(t, S["dc2"], "secret", "a", "1", replTimeout)
}

// filteredRootsAgree waits until the filtered secondary id at secAddr
// shows as its merkle_root the root the primary's status gives for its
// filter's view (what it compares with in a merkle sync), which differs from
// the primary's own root (the filter holds data back).
func filteredRootsAgree(t *testing.T, priAddr, secAddr, id string) {
	t.Helper()
	testutil.Eventually(t, replTimeout, "the merkle root of "+id+" equal to its filter's view on the primary", func() error {
		ps, ss := perfStatus(t, priAddr), perfStatus(t, secAddr)
		e, err := secondaryEntry(ps, id)
		if err != nil {
			return err
		}
		f, _ := e["paths_filter"].(map[string]any)
		view := str(f["merkle_root"])
		switch {
		case view == "" || view != str(ss["merkle_root"]):
			return fmt.Errorf("%s merkle_root %v, its filter's view on the primary %q", id, ss["merkle_root"], view)
		case view == str(ps["merkle_root"]):
			return fmt.Errorf("the filter's view has the primary's own root %s: it filters nothing", view)
		}
		return nil
	})
}

// filterInStatus waits until the primary's status shows secondary id with
// the paths filter of mode and paths (as fmt prints them).
func filterInStatus(t *testing.T, addr, id, mode, paths string) {
	t.Helper()
	testutil.Eventually(t, replTimeout, "the filter of "+id+" in the primary's status", func() error {
		e, err := secondaryEntry(perfStatus(t, addr), id)
		if err != nil {
			return err
		}
		f, _ := e["paths_filter"].(map[string]any)
		if f["mode"] != mode || fmt.Sprint(f["paths"]) != paths {
			return fmt.Errorf("paths_filter %v", e["paths_filter"])
		}
		return nil
	})
}
