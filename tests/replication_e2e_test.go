package tests

// End-to-end tests of performance replication (docs/replication.md), the seeds'
// operator workflow between two dev servers: real coffer processes and the
// vault/api client.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

// TestReplicationDevWorkflow runs the seeds' operator workflow between two dev
// servers, each with its own embedded NATS.
func TestReplicationDevWorkflow(t *testing.T) {
	pri := devReplServer(t, "root-dc1")
	sec := devReplServer(t, "root-dc2")
	P := pri.root
	ctx := context.Background()

	// The primary's data before replication: a kv-v2 secret, a replicated kv
	// mount, a local mount, a policy and a userpass user.
	kvPut(t, P, "secret", "app", map[string]any{"v": "one"})
	seedAuth(t, P)
	if err := P.Sys().Mount("team", &api.MountInput{Type: "kv"}); err != nil {
		t.Fatalf("mount team/: %v", err)
	}
	if _, err := P.Logical().Write("team/cfg", map[string]any{"v": "team-1"}); err != nil {
		t.Fatal(err)
	}
	if err := P.Sys().Mount("plocal", &api.MountInput{Type: "kv", Local: true}); err != nil {
		t.Fatalf("mount local plocal/: %v", err)
	}
	if _, err := P.Logical().Write("plocal/x", map[string]any{"v": "primary-local"}); err != nil {
		t.Fatal(err)
	}
	// The secondary's own data: activation wipes it.
	kvPut(t, sec.root, "secret", "doomed", map[string]any{"v": "x"})

	// Disabled status before anything.
	if m := str(perfStatus(t, pri.addr)["mode"]); m != "disabled" {
		t.Fatalf("status mode before enable = %q, want disabled", m)
	}

	// vault write -f sys/replication/performance/primary/enable
	enablePrimary(t, P)
	priID := str(perfStatus(t, pri.addr)["cluster_id"])
	if priID == "" {
		t.Fatal("primary status has no cluster_id")
	}
	// vault write sys/replication/performance/primary/secondary-token id=dc2
	tok := secondaryToken(t, P, "dc2", "")
	claims := jwtClaims(t, tok)
	if str(claims["iss"]) != priID || str(claims["sub"]) != "dc2" || str(claims["bus"]) == "" || !strings.Contains(str(claims["api"]), pri.addr) {
		t.Fatalf("token claims %v: want iss=%s sub=dc2, a bus url and api at %s", claims, priID, pri.addr)
	}
	// vault write sys/replication/performance/secondary/enable token=...
	if err := activateSecondary(sec.root, tok); err != nil {
		t.Fatalf("secondary/enable: %v", err)
	}

	// Dev-Mode Root Tokens: the primary's root token works on the secondary;
	// the secondary's own one went with the wipe, and so did its data.
	S := client(t, sec.addr, pri.rootID)
	waitKV(t, S, "secret", "app", "one", waitTimeout)
	if _, err := client(t, sec.addr, sec.rootID).Auth().Token().LookupSelf(); statusOf(err) != 403 {
		t.Fatalf("the secondary's own dev root token after activation: want 403 (storage wiped), got %v", err)
	}
	_, err := kvData(S, "secret", "doomed")
	notFound(t, "the secondary's own secret after activation", err)
	// cluster_id is the set's, as in Vault: the same on every cluster of it.
	if st := perfStatus(t, sec.addr); str(st["cluster_id"]) != priID || str(st["local_cluster_id"]) == "" || str(st["local_cluster_id"]) == priID {
		t.Fatalf("secondary cluster_id %q, local_cluster_id %q: want the set's (the primary's %q), and its own apart", st["cluster_id"], st["local_cluster_id"], priID)
	}

	// Mounts, policies and userpass users of the primary are served.
	testutil.Eventually(t, waitTimeout, "replicated kv mount team/ on the secondary", func() error {
		s, err := S.Logical().Read("team/cfg")
		if err != nil {
			return err
		}
		if s == nil || str(s.Data["v"]) != "team-1" {
			return fmt.Errorf("team/cfg = %v", s)
		}
		return nil
	})
	pol, err := S.Sys().GetPolicy("reader")
	if err != nil || !strings.Contains(pol, "secret/*") {
		t.Fatalf("policy reader on the secondary: %q, %v", pol, err)
	}
	aliceS, err := userpassLogin(t, sec.addr, "alice", "pw")
	if err != nil {
		t.Fatalf("userpass login on the secondary with the primary's user: %v", err)
	}
	if err := kvHas(aliceS, "secret", "app", "one"); err != nil {
		t.Fatalf("alice (policy reader) reads on the secondary: %v", err)
	}

	// Writes after activation stream over: data, a mount, a policy, a user.
	kvPut(t, P, "secret", "app2", map[string]any{"v": "two"})
	if err := P.Sys().Mount("later1", &api.MountInput{Type: "kv"}); err != nil {
		t.Fatal(err)
	}
	if err := P.Sys().PutPolicy("writer", `path "secret/data/*" { capabilities = ["create", "update"] }`); err != nil {
		t.Fatal(err)
	}
	if _, err := P.Logical().Write("auth/userpass/users/bob", map[string]any{"password": "pw2", "token_policies": "reader"}); err != nil {
		t.Fatal(err)
	}
	waitKV(t, S, "secret", "app2", "two", waitTimeout)
	testutil.Eventually(t, waitTimeout, "mount later1/, policy writer and user bob on the secondary", func() error {
		if _, ok := mountPaths(t, S)["later1/"]; !ok {
			return errors.New("no later1/")
		}
		if p, err := S.Sys().GetPolicy("writer"); err != nil || p == "" {
			return fmt.Errorf("policy writer: %q, %v", p, err)
		}
		_, err := userpassLogin(t, sec.addr, "bob", "pw2")
		return err
	})
	// The primary's local mount: a later mount-table change has arrived, and
	// plocal/ is not in the table.
	if _, ok := mountPaths(t, S)["plocal/"]; ok {
		t.Fatal("the primary's local mount plocal/ appears on the secondary")
	}

	// A local mount made on the secondary after activation survives more
	// replicated writes and mount-table changes on the primary.
	if err := S.Sys().Mount("slocal", &api.MountInput{Type: "kv", Local: true}); err != nil {
		t.Fatalf("local mount on the secondary: %v", err)
	}
	if _, err := S.Logical().Write("slocal/x", map[string]any{"v": "secondary-local"}); err != nil {
		t.Fatalf("write to the secondary's local mount: %v", err)
	}
	kvPut(t, P, "secret", "app3", map[string]any{"v": "three"})
	if err := P.Sys().Mount("later2", &api.MountInput{Type: "kv"}); err != nil {
		t.Fatal(err)
	}
	if err := P.Sys().Unmount("later1"); err != nil {
		t.Fatal(err)
	}
	waitKV(t, S, "secret", "app3", "three", waitTimeout)
	testutil.Eventually(t, waitTimeout, "later2/ mounted and later1/ gone on the secondary", func() error {
		m := mountPaths(t, S)
		if _, ok := m["later2/"]; !ok {
			return errors.New("no later2/")
		}
		if _, ok := m["later1/"]; ok {
			return errors.New("later1/ still mounted")
		}
		return nil
	})
	sm := mountPaths(t, S)
	if e, ok := sm["slocal/"]; !ok || !e.Local {
		t.Fatalf("the secondary's local mount after replicated mount changes: %+v (present %v)", e, ok)
	}
	if _, ok := sm["plocal/"]; ok {
		t.Fatal("the primary's local mount plocal/ appears on the secondary")
	}
	if s, err := S.Logical().Read("slocal/x"); err != nil || s == nil || str(s.Data["v"]) != "secondary-local" {
		t.Fatalf("slocal/x on the secondary after replicated writes: %v, %v", s, err)
	}
	if _, ok := mountPaths(t, P)["slocal/"]; ok {
		t.Fatal("the secondary's local mount appears on the primary")
	}
	if s, err := P.Logical().Read("plocal/x"); err != nil || s == nil || str(s.Data["v"]) != "primary-local" {
		t.Fatalf("plocal/x on the primary: %v, %v", s, err)
	}

	// Tokens are valid only on the cluster that issued them.
	if _, err := client(t, pri.addr, aliceS.Token()).KVv2("secret").Get(ctx, "app"); statusOf(err) != 403 {
		t.Fatalf("the secondary's login token on the primary: want 403, got %v", err)
	}
	aliceP, err := userpassLogin(t, pri.addr, "alice", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if err := kvHas(aliceP, "secret", "app", "one"); err != nil {
		t.Fatalf("the primary's login token on the primary: %v", err)
	}
	_, err = client(t, sec.addr, aliceP.Token()).KVv2("secret").Get(ctx, "app")
	forbidden(t, "the primary's login token on the secondary", err)
	if err := kvHas(aliceS, "secret", "app", "one"); err != nil {
		t.Fatalf("the secondary's login token on the secondary: %v", err)
	}

	// A write to a replicated path on the secondary is refused with an error
	// naming the primary (docs/replication.md), or, once write forwarding is
	// in, forwarded: then it is applied on the primary and comes back.
	_, err = S.KVv2("secret").Put(ctx, "fromsec", map[string]any{"v": "fwd"})
	if secondaryWrite(t, "kv write on the secondary", err, pri.addr, func() error {
		return kvHas(P, "secret", "fromsec", "fwd")
	}) {
		waitKV(t, S, "secret", "fromsec", "fwd", waitTimeout)
	}
	secondaryWrite(t, "replicated mount on the secondary", S.Sys().Mount("nolocal", &api.MountInput{Type: "kv"}), pri.addr, func() error {
		if e, ok := mountPaths(t, P)["nolocal/"]; !ok || e.Local {
			return fmt.Errorf("nolocal/ on the primary: %+v", e)
		}
		return nil
	})
	secondaryWrite(t, "policy write on the secondary", S.Sys().PutPolicy("p2", `path "x" { capabilities = ["read"] }`), pri.addr, func() error {
		_, err := P.Sys().GetPolicy("p2")
		return err
	})

	// Status, unauthenticated, with Vault's fields.
	testutil.Eventually(t, waitTimeout, "primary status lists dc2 as connected", func() error {
		st := perfStatus(t, pri.addr)
		if str(st["mode"]) != "primary" {
			return fmt.Errorf("mode %v", st["mode"])
		}
		e, err := secondaryEntry(st, "dc2")
		if err != nil {
			return err
		}
		if str(e["connection_status"]) != "connected" {
			return fmt.Errorf("dc2 connection_status %v", e["connection_status"])
		}
		return checkHeartbeat(e["last_heartbeat"])
	})
	st := perfStatus(t, pri.addr)
	if str(st["cluster_id"]) != priID || str(st["state"]) == "" || u64(t, "primary last_wal", st["last_wal"]) == 0 {
		t.Fatalf("primary status: %v", st)
	}
	if !slices.Contains(strs(st["known_secondaries"]), "dc2") {
		t.Fatalf("primary known_secondaries %v, want dc2", st["known_secondaries"])
	}
	e, _ := secondaryEntry(st, "dc2")
	if !strings.Contains(str(e["api_address"]), sec.addr) || str(e["cluster_address"]) == "" {
		t.Fatalf("primary secondaries[dc2] = %v: want api_address with %s and a cluster_address", e, sec.addr)
	}
	testutil.Eventually(t, waitTimeout, "secondary status streaming and connected", func() error {
		st := perfStatus(t, sec.addr)
		if str(st["mode"]) != "secondary" || str(st["state"]) != "stream-wals" {
			return fmt.Errorf("mode %v state %v", st["mode"], st["state"])
		}
		ps := entries(st["primaries"])
		if len(ps) != 1 {
			return fmt.Errorf("primaries %v", st["primaries"])
		}
		if str(ps[0]["connection_status"]) != "connected" {
			return fmt.Errorf("primaries[0].connection_status %v", ps[0]["connection_status"])
		}
		return checkHeartbeat(ps[0]["last_heartbeat"])
	})
	st = perfStatus(t, sec.addr)
	ps := entries(st["primaries"])[0]
	if !strings.Contains(str(ps["api_address"]), pri.addr) || str(ps["cluster_address"]) != str(claims["bus"]) {
		t.Fatalf("secondary primaries[0] = %v: want api_address with %s and cluster_address %s", ps, pri.addr, claims["bus"])
	}
	if str(st["secondary_id"]) != "dc2" {
		t.Fatalf("secondary status secondary_id %v, want dc2", st["secondary_id"])
	}
	if _, ok := st["last_wal"]; !ok {
		t.Fatalf("secondary status has no last_wal: %v", st)
	}
	// last_remote_wal catches up with what the primary shipped.
	testutil.Eventually(t, waitTimeout, "the secondary's last_remote_wal reaches the primary's last shipped index", func() error {
		pst, sst := perfStatus(t, pri.addr), perfStatus(t, sec.addr)
		remote := u64(t, "secondary last_remote_wal", sst["last_remote_wal"])
		last := u64(t, "primary last_wal", pst["last_wal"])
		if remote == 0 || remote > last {
			return fmt.Errorf("secondary last_remote_wal %d, primary last_wal %d", remote, last)
		}
		if v, ok := pst["last_shipped_wal"]; ok && u64(t, "last_shipped_wal", v) != remote {
			return fmt.Errorf("secondary last_remote_wal %d, primary last_shipped_wal %v", remote, v)
		}
		return nil
	})
	// Heartbeats run both ways: each side's last_heartbeat moves on, and the
	// primary learns the secondary's last_remote_wal from them.
	firstP, _ := secondaryEntry(perfStatus(t, pri.addr), "dc2")
	firstS := entries(perfStatus(t, sec.addr)["primaries"])[0]
	testutil.Eventually(t, waitTimeout, "a later heartbeat on both sides", func() error {
		e, err := secondaryEntry(perfStatus(t, pri.addr), "dc2")
		if err != nil {
			return err
		}
		if str(e["last_heartbeat"]) == str(firstP["last_heartbeat"]) {
			return fmt.Errorf("primary: dc2 last_heartbeat still %v", e["last_heartbeat"])
		}
		sst := perfStatus(t, sec.addr)
		if hb := entries(sst["primaries"])[0]["last_heartbeat"]; str(hb) == str(firstS["last_heartbeat"]) {
			return fmt.Errorf("secondary: primaries[0].last_heartbeat still %v", hb)
		}
		if a, b := str(e["last_remote_wal"]), str(sst["last_remote_wal"]); a != b {
			return fmt.Errorf("primary's view of dc2 last_remote_wal %s, the secondary's %s", a, b)
		}
		return nil
	})
	// sys/replication/status nests the same under "performance".
	for _, addr := range []string{pri.addr, sec.addr} {
		s, err := client(t, addr, "").Logical().Read("sys/replication/status")
		if err != nil || s == nil {
			t.Fatalf("unauthenticated sys/replication/status on %s: %v", addr, err)
		}
		mode, _ := mapAt(s.Data, "performance", "mode")
		if want := map[string]string{pri.addr: "primary", sec.addr: "secondary"}[addr]; str(mode) != want {
			t.Fatalf("sys/replication/status performance.mode on %s = %v, want %s", addr, mode, want)
		}
		if _, ok := mapAt(s.Data, "dr", "mode"); !ok {
			t.Fatalf("sys/replication/status on %s has no dr.mode: %v", addr, s.Data)
		}
	}

	// coffer replication status (CLI): a table with each secondary's lag.
	code, out, errOut := runCLI(t, pri.addr, pri.rootID, "", "replication", "status")
	if code != 0 && strings.Contains(errOut, "Unknown command") {
		t.Logf("coffer replication status is not there yet: %s", errOut)
		return
	}
	if code != 0 {
		t.Fatalf("coffer replication status: exit %d: %s%s", code, out, errOut)
	}
	if !strings.Contains(strings.ToLower(out), "lag") {
		t.Fatalf("coffer replication status output has no lag column:\n%s", out)
	}
	// Caught up: dc2's row ends with a lag of 0 entries and 0s.
	testutil.Eventually(t, waitTimeout, "coffer replication status shows dc2 with lag 0", func() error {
		code, out, errOut := runCLI(t, pri.addr, pri.rootID, "", "replication", "status")
		if code != 0 {
			return fmt.Errorf("exit %d: %s%s", code, out, errOut)
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) > 1 && f[0] == "dc2" {
				if f[len(f)-2] != "0" || f[len(f)-1] != "0s" {
					return fmt.Errorf("dc2 row %q", line)
				}
				return nil
			}
		}
		return fmt.Errorf("no dc2 row in:\n%s", out)
	})
}
