package tests

// Performance replication set-ups and checks: dev and config-file clusters, the
// operator workflow (enable, secondary-token, activate, revoke), status
// readers, and assertions the replication tests share.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

// replTimeout bounds waits that cross a reconnect (a restarted primary or
// NATS server, backoffs of a few seconds on either side). A passing run
// never waits for it.
const replTimeout = 60 * time.Second

// devCluster is one `coffer server -dev` process with its embedded NATS.
type devCluster struct {
	p        *proc
	addr     string // API host:port
	natsAddr string // embedded NATS host:port
	rootID   string
	root     *api.Client
}

// devReplServer starts a dev server with root token rootID on free ports.
func devReplServer(t testing.TB, rootID string) *devCluster {
	t.Helper()
	d := &devCluster{addr: testutil.FreeAddr(t), natsAddr: testutil.FreeAddr(t), rootID: rootID}
	d.p = startProc(t, d.addr, "server", "-dev", "-dev-root-token-id="+rootID,
		"-dev-listen-address="+d.addr, "-dev-nats-listen="+d.natsAddr)
	waitHealthCode(t, d.addr, 200)
	d.root = client(t, d.addr, rootID)
	return d
}

// replNode is a config-file cluster (bolt, static seal) of the replication suite.
type replNode struct {
	n    *node
	p    *proc
	root string // root token from sys/init (gone from a secondary after activation)
}

// startReplNode writes a config with the given seal key, cluster name and bus
// block body, starts it, initializes it and waits until it is unsealed.
func startReplNode(t *testing.T, key []byte, name, busBody string) *replNode {
	t.Helper()
	n := newNode(t, serverConfig{StaticKey: key, ClusterName: name, Bus: busBody})
	r := &replNode{n: n, p: n.start()}
	res, err := client(t, n.addr, "").Sys().Init(&api.InitRequest{RecoveryShares: 1, RecoveryThreshold: 1})
	if err != nil {
		t.Fatalf("sys/init on %s: %v", name, err)
	}
	waitHealthCode(t, n.addr, 200)
	r.root = res.RootToken
	return r
}

// seedPrimary puts what the secondaries read with on a fresh primary: kv-v2 at
// secret/, the policy "reader" and the userpass user alice/pw with it.
func seedPrimary(t *testing.T, root *api.Client) {
	t.Helper()
	if err := root.Sys().Mount("secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatalf("mount kv-v2 at secret/: %v", err)
	}
	seedAuth(t, root)
}

// seedAuth writes the policy "reader" (read, and write for forwarded writes,
// on secret/) and the userpass user alice/pw.
func seedAuth(t *testing.T, root *api.Client) {
	t.Helper()
	if err := root.Sys().PutPolicy("reader", `path "secret/*" { capabilities = ["read", "list", "create", "update"] }`); err != nil {
		t.Fatalf("put policy reader: %v", err)
	}
	if err := root.Sys().EnableAuthWithOptions("userpass", &api.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatalf("enable userpass: %v", err)
	}
	if _, err := root.Logical().Write("auth/userpass/users/alice", map[string]any{"password": "pw", "token_policies": "reader"}); err != nil {
		t.Fatalf("create userpass user alice: %v", err)
	}
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

const pathSecondaryToken = "sys/replication/performance/primary/secondary-token"

// enablePrimary runs the seeds' `vault write -f sys/replication/performance/primary/enable`.
func enablePrimary(t *testing.T, c *api.Client) {
	t.Helper()
	if _, err := c.Logical().Write("sys/replication/performance/primary/enable", nil); err != nil {
		t.Fatalf("sys/replication/performance/primary/enable: %v", err)
	}
}

// secondaryToken runs `vault write sys/replication/performance/primary/secondary-token id=<id> [ttl=<ttl>]`
// and returns the activation JWT from the wrapped response.
func secondaryToken(t *testing.T, c *api.Client, id, ttl string) string {
	t.Helper()
	data := map[string]any{"id": id}
	if ttl != "" {
		data["ttl"] = ttl
	}
	s, err := c.Logical().Write("sys/replication/performance/primary/secondary-token", data)
	if err != nil {
		t.Fatalf("secondary-token id=%s: %v", id, err)
	}
	if s == nil || s.WrapInfo == nil || s.WrapInfo.Token == "" {
		t.Fatalf("secondary-token id=%s: no wrap_info.token in %+v", id, s)
	}
	tok := s.WrapInfo.Token
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("secondary-token id=%s: wrap_info.token %q is not a JWT", id, tok)
	}
	if s.WrapInfo.CreationPath != "sys/replication/performance/primary/secondary-token" {
		t.Errorf("secondary-token: wrap_info.creation_path %q", s.WrapInfo.CreationPath)
	}
	return tok
}

// activateSecondary runs `vault write sys/replication/performance/secondary/enable token=<token>`.
func activateSecondary(c *api.Client, token string) error {
	_, err := c.Logical().Write("sys/replication/performance/secondary/enable", map[string]any{"token": token})
	return err
}

// revokeSecondary runs sys/replication/performance/primary/revoke-secondary id=<id>.
func revokeSecondary(t *testing.T, c *api.Client, id string) {
	t.Helper()
	if _, err := c.Logical().Write("sys/replication/performance/primary/revoke-secondary", map[string]any{"id": id}); err != nil {
		t.Fatalf("revoke-secondary id=%s: %v", id, err)
	}
}

// jwtClaims decodes the claims of a compact JWS without checking it.
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a compact JWS", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("token claims are not base64url: %v", err)
	}
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("token claims are not JSON: %v: %q", err, raw)
	}
	return m
}

// perfStatus reads sys/replication/performance/status without a token.
func perfStatus(t *testing.T, addr string) map[string]any {
	t.Helper()
	s, err := client(t, addr, "").Logical().Read("sys/replication/performance/status")
	if err != nil {
		t.Fatalf("unauthenticated sys/replication/performance/status on %s: %v", addr, err)
	}
	if s == nil || s.Data == nil {
		t.Fatalf("sys/replication/performance/status on %s: no data", addr)
	}
	return s.Data
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

// u64 parses a JSON number of a status.
func u64(t *testing.T, what string, v any) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(str(v), 10, 64)
	if err != nil {
		t.Fatalf("%s: %q is not a number", what, str(v))
	}
	return n
}

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
