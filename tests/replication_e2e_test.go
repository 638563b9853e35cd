package tests

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

// End-to-end tests of performance replication (docs/replication.md): real
// coffer processes, the vault/api client, and for the forged-message and
// outage cases a plain NATS client and a standalone nats-server.

const pathSecondaryToken = "sys/replication/performance/primary/secondary-token"

// notFound asserts err is the kv-v2 "no such secret" of vault/api.
func notFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, api.ErrSecretNotFound) {
		t.Fatalf("%s: want secret not found, got %v", what, err)
	}
}

// forbidden asserts err is a 403.
func forbidden(t *testing.T, what string, err error) {
	t.Helper()
	if statusOf(err) != 403 {
		t.Fatalf("%s: want 403, got %v", what, err)
	}
}

// secondaryWrite checks the outcome of a write to a replicated path sent to a
// secondary: refused (400, naming the primary at priAddr) and not applied on
// the primary, or forwarded: applied on the primary (onPrimary nil).
func secondaryWrite(t *testing.T, what string, err error, priAddr string, onPrimary func() error) (forwarded bool) {
	t.Helper()
	if err != nil {
		refused(t, what, err, 400, "primary")
		refused(t, what, err, 400, priAddr)
		if onPrimary() == nil {
			t.Fatalf("%s: refused, yet applied on the primary", what)
		}
		return false
	}
	t.Logf("%s: accepted: checking that it was forwarded to the primary", what)
	if err := onPrimary(); err != nil {
		t.Fatalf("%s: accepted by the secondary but not on the primary: %v", what, err)
	}
	return true
}

// secondaryEntry returns the secondaries[] entry of id in a primary's status.
func secondaryEntry(st map[string]any, id string) (map[string]any, error) {
	for _, e := range entries(st["secondaries"]) {
		if str(e["node_id"]) == id {
			return e, nil
		}
	}
	return nil, fmt.Errorf("no secondaries[] entry with node_id %q in %v", id, st["secondaries"])
}

// checkHeartbeat asserts a last_heartbeat is an RFC 3339 time of the last minute.
func checkHeartbeat(v any) error {
	ts, err := time.Parse(time.RFC3339Nano, str(v))
	if err != nil {
		return fmt.Errorf("last_heartbeat %q: %v", str(v), err)
	}
	if d := time.Since(ts); d > time.Minute || d < -time.Minute {
		return fmt.Errorf("last_heartbeat %s is %s away from now", ts, d)
	}
	return nil
}

// u64 parses a JSON number of a status.
func u64(t *testing.T, what string, v any) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(str(v), 10, 64)
	if err != nil {
		t.Fatalf("%s: %q is not a number", what, str(v))
	}
	return n
}

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
	if id := str(perfStatus(t, sec.addr)["cluster_id"]); id == "" || id == priID {
		t.Fatalf("secondary cluster_id %q: want its own id, not the primary's %q", id, priID)
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
	// Caught up: dc2's row ends with a lag of 0.
	testutil.Eventually(t, waitTimeout, "coffer replication status shows dc2 with lag 0", func() error {
		code, out, errOut := runCLI(t, pri.addr, pri.rootID, "", "replication", "status")
		if code != 0 {
			return fmt.Errorf("exit %d: %s%s", code, out, errOut)
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) > 1 && f[0] == "dc2" {
				if f[len(f)-1] != "0" {
					return fmt.Errorf("dc2 row %q", line)
				}
				return nil
			}
		}
		return fmt.Errorf("no dc2 row in:\n%s", out)
	})
}

// replPair is a config-file primary and secondary activated as dc2, with
// alice's token on the secondary.
type replPair struct {
	pri, sec *replNode
	P        *api.Client // root on the primary
	S        *api.Client // alice (policy reader) on the secondary
}

// startReplPair starts and activates a config-file pair with the same static
// seal key and the given bus block bodies.
func startReplPair(t *testing.T, priBus, secBus string) *replPair {
	t.Helper()
	key := randomBytes(t, 32)
	r := &replPair{pri: startReplNode(t, key, "dc1", priBus)}
	r.P = client(t, r.pri.n.addr, r.pri.root)
	seedPrimary(t, r.P)
	kvPut(t, r.P, "secret", "a", map[string]any{"v": "1"})
	enablePrimary(t, r.P)
	tok := secondaryToken(t, r.P, "dc2", "")
	r.sec = startReplNode(t, key, "dc2", secBus)
	if err := activateSecondary(client(t, r.sec.n.addr, r.sec.root), tok); err != nil {
		t.Fatalf("secondary/enable: %v", err)
	}
	testutil.Eventually(t, waitTimeout, "userpass login on the secondary", func() error {
		c, err := userpassLogin(t, r.sec.n.addr, "alice", "pw")
		r.S = c
		return err
	})
	waitKV(t, r.S, "secret", "a", "1", waitTimeout)
	return r
}

// primaryConn waits until the secondary's status shows its primary as want.
func primaryConn(t *testing.T, addr, want string, timeout time.Duration) {
	t.Helper()
	testutil.Eventually(t, timeout, "secondary primaries[0].connection_status = "+want, func() error {
		ps := entries(perfStatus(t, addr)["primaries"])
		if len(ps) != 1 || str(ps[0]["connection_status"]) != want {
			return fmt.Errorf("primaries %v", ps)
		}
		return nil
	})
}

// TestReplicationStaleReadsWhilePrimaryDown: with the primary stopped the
// secondary serves what it has; when the primary is back, replication resumes
// by itself.
func TestReplicationStaleReadsWhilePrimaryDown(t *testing.T) {
	r := startReplPair(t, embeddedBus(t), embeddedBus(t))
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
	natsCfg := bus.Config{Listen: freeAddr(t), StoreDir: t.TempDir(), MaxPayload: 1 << 20}
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

// TestReplicationSecurity: bad activation tokens, revocation, and messages
// forged on the WAL subject.
func TestReplicationSecurity(t *testing.T) {
	pri := devReplServer(t, "root-dc1")
	wit := devReplServer(t, "root-dc2") // stays active: the witness
	tgt := devReplServer(t, "root-dc3") // refused, then activated, then revoked
	P := pri.root
	kvPut(t, P, "secret", "base", map[string]any{"v": "1"})
	enablePrimary(t, P)
	dc2Token := secondaryToken(t, P, "dc2", "")
	if err := activateSecondary(wit.root, dc2Token); err != nil {
		t.Fatalf("activate the witness: %v", err)
	}
	W := client(t, wit.addr, pri.rootID)
	waitKV(t, W, "secret", "base", "1", waitTimeout)
	T := client(t, tgt.addr, pri.rootID)

	t.Run("activation tokens", func(t *testing.T) {
		err := activateSecondary(tgt.root, "garbage")
		refused(t, "garbage token", err, 400, "malformed")

		expTok := secondaryToken(t, P, "dc-exp", "1s")
		exp, err := strconv.ParseInt(str(jwtClaims(t, expTok)["exp"]), 10, 64)
		if err != nil {
			t.Fatalf("exp claim: %v", err)
		}
		testutil.Eventually(t, waitTimeout, "the clock passes the token's expiry", func() error {
			if now := time.Now().Unix(); now <= exp {
				return fmt.Errorf("now %d, exp %d", now, exp)
			}
			return nil
		})
		refused(t, "expired token", activateSecondary(tgt.root, expTok), 400, "expired")

		refused(t, "token that already activated dc2", activateSecondary(tgt.root, dc2Token), 400, "already used")

		revTok := secondaryToken(t, P, "dc-rev", "")
		revokeSecondary(t, P, "dc-rev")
		refused(t, "revoked token", activateSecondary(tgt.root, revTok), 400, "revoked")

		_, err = P.Logical().Write(pathSecondaryToken, map[string]any{"id": "dc2"})
		refused(t, "second token for the active dc2", err, 400, "revoke")

		// The refusals left the target as it was.
		if _, err := tgt.root.Auth().Token().LookupSelf(); err != nil {
			t.Fatalf("the target's own root token after refused activations: %v", err)
		}
		if m := str(perfStatus(t, tgt.addr)["mode"]); m != "disabled" {
			t.Fatalf("target mode after refused activations: %q", m)
		}

		if err := activateSecondary(tgt.root, secondaryToken(t, P, "dc3", "")); err != nil {
			t.Fatalf("activate dc3 with a good token: %v", err)
		}
		waitKV(t, T, "secret", "base", "1", waitTimeout)
	})

	t.Run("revoke", func(t *testing.T) {
		kvPut(t, P, "secret", "before-revoke", map[string]any{"v": "b"})
		waitKV(t, T, "secret", "before-revoke", "b", waitTimeout)
		waitKV(t, W, "secret", "before-revoke", "b", waitTimeout)

		revokeSecondary(t, P, "dc3")
		kvPut(t, P, "secret", "after-revoke", map[string]any{"v": "a"})
		waitKV(t, W, "secret", "after-revoke", "a", waitTimeout)
		_, err := kvData(T, "secret", "after-revoke")
		notFound(t, "a write after revocation on the revoked secondary", err)

		testutil.Eventually(t, waitTimeout, "the revoked secondary's status shows it", func() error {
			if s := str(perfStatus(t, tgt.addr)["state"]); s != "revoked" {
				return fmt.Errorf("state %q", s)
			}
			return nil
		})
		kvPut(t, P, "secret", "after-revoke2", map[string]any{"v": "a2"})
		waitKV(t, W, "secret", "after-revoke2", "a2", waitTimeout)
		for _, k := range []string{"after-revoke", "after-revoke2"} {
			_, err := kvData(T, "secret", k)
			notFound(t, k+" on the revoked secondary", err)
		}
		if err := kvHas(T, "secret", "before-revoke", "b"); err != nil {
			t.Fatalf("the revoked secondary's old data: %v", err)
		}
		// A write on the revoked secondary goes nowhere.
		_, err = T.KVv2("secret").Put(context.Background(), "from-revoked", map[string]any{"v": "x"})
		switch statusOf(err) {
		case 400: // refused: no forwarding
			refused(t, "a write on the revoked secondary", err, 400, "primary")
		default: // forwarding: its RPC is refused
			refused(t, "a write forwarded by the revoked secondary", err, 503, "revoked")
		}
		_, perr := kvData(P, "secret", "from-revoked")
		notFound(t, "a write on the revoked secondary, on the primary", perr)
		if logCount(tgt.p, "revoked") == 0 {
			t.Fatal("the revoked secondary logged nothing about its revocation")
		}
		known := strs(perfStatus(t, pri.addr)["known_secondaries"])
		if slices.Contains(known, "dc3") || !slices.Contains(known, "dc2") {
			t.Fatalf("primary known_secondaries after revoking dc3: %v", known)
		}
	})

	t.Run("forged WAL messages", func(t *testing.T) {
		cid := str(perfStatus(t, pri.addr)["cluster_id"])
		w := openWALStream(t, "nats://"+pri.natsAddr, cid)

		kvPut(t, P, "secret", "victim", map[string]any{"v": "old"})
		waitKV(t, W, "secret", "victim", "old", waitTimeout)
		old := w.last(t) // the batch with victim=old (or one after it)
		kvPut(t, P, "secret", "victim", map[string]any{"v": "new"})
		waitKV(t, W, "secret", "victim", "new", waitTimeout)
		keysBefore := kvKeys(t, W, "secret")
		cur := w.last(t).Data
		if len(cur) < 21+64 || (cur[0] != 1 && cur[0] != 2) {
			t.Fatalf("the newest WAL message (%d bytes, version %d) is not a batch of docs/replication.md", len(cur), cur[0])
		}

		forge := func(what string, data []byte, logWords ...string) {
			t.Helper()
			n := logCount(wit.p, logWords...)
			seq := w.publish(t, data)
			testutil.Eventually(t, waitTimeout, what+" (stream seq "+strconv.FormatUint(seq, 10)+") logged by the secondary", func() error {
				if logCount(wit.p, logWords...) > n {
					return nil
				}
				return fmt.Errorf("no new log line with %q", logWords)
			})
		}
		random := randomBytes(t, 300)
		random[0] = 0xfe // never a version byte: the message cannot pass as a batch
		forge("random bytes", random, "rejected")

		hdr := bytes.Clone(cur[:21]) // version, epoch: a batch claiming the next index
		hdr[0] = 1                   // the v1 header layout (no guard) is still accepted by readers
		next := binary.BigEndian.Uint64(cur[13:21]) + 1
		binary.BigEndian.PutUint64(hdr[5:13], next)
		binary.BigEndian.PutUint64(hdr[13:21], next)
		forge("a batch header with a random body", append(hdr, randomBytes(t, 300)...), "rejected")

		altered := bytes.Clone(cur)
		altered[len(altered)/2] ^= 0x01
		forge("a real batch with one byte altered", altered, "rejected")

		forge("an old batch replayed with a new Nats-Msg-Id", old.Data, "replay")

		// Nothing of it applied; streaming goes on.
		kvPut(t, P, "secret", "marker", map[string]any{"v": "m"})
		waitKV(t, W, "secret", "marker", "m", waitTimeout)
		if err := kvHas(W, "secret", "victim", "new"); err != nil {
			t.Fatalf("victim on the secondary after the replay: %v", err)
		}
		md, err := W.KVv2("secret").GetMetadata(context.Background(), "victim")
		if err != nil || md.CurrentVersion != 2 {
			t.Fatalf("victim metadata on the secondary after the replay: %+v, %v", md, err)
		}
		want := append(slices.Clone(keysBefore), "marker")
		slices.Sort(want)
		if got := kvKeys(t, W, "secret"); !slices.Equal(got, want) {
			t.Fatalf("keys on the secondary %v, want %v", got, want)
		}
		if got := kvKeys(t, P, "secret"); !slices.Equal(got, want) {
			t.Fatalf("keys on the primary %v, want %v", got, want)
		}
		if s := str(perfStatus(t, wit.addr)["state"]); s != "stream-wals" {
			t.Fatalf("witness state after forged messages: %q", s)
		}
	})
}
