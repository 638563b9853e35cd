package tests

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Helpers of the replication suite (replication_e2e_test.go).

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
	d := &devCluster{addr: freeAddr(t), natsAddr: freeAddr(t), rootID: rootID}
	d.p = startProc(t, d.addr, "server", "-dev", "-dev-root-token-id="+rootID,
		"-dev-listen-address="+d.addr, "-dev-nats-listen="+d.natsAddr)
	waitHealthCode(t, d.addr, 200)
	d.root = client(t, d.addr, rootID)
	return d
}

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

// str returns a JSON value as a string ("" for nil).
func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// entries returns a JSON array of objects.
func entries(v any) []map[string]any {
	arr, _ := v.([]any)
	var out []map[string]any
	for _, e := range arr {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// kvData reads the current version of key from the kv-v2 mount.
func kvData(c *api.Client, mount, key string) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.KVv2(mount).Get(ctx, key)
	if err != nil {
		return nil, err
	}
	return s.Data, nil
}

// kvPut writes data to key on the kv-v2 mount and fails the test on error.
func kvPut(t *testing.T, c *api.Client, mount, key string, data map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.KVv2(mount).Put(ctx, key, data); err != nil {
		t.Fatalf("kv put %s/%s on %s: %v", mount, key, c.Address(), err)
	}
}

// kvHas reports nil when key on mount has field "v" equal to want.
func kvHas(c *api.Client, mount, key, want string) error {
	d, err := kvData(c, mount, key)
	if err != nil {
		return err
	}
	if got := str(d["v"]); got != want {
		return fmt.Errorf("%s/%s: v=%q, want %q", mount, key, got, want)
	}
	return nil
}

// waitKV waits until key on mount has v=want on c's server.
func waitKV(t *testing.T, c *api.Client, mount, key, want string, timeout time.Duration) {
	t.Helper()
	testutil.Eventually(t, timeout, fmt.Sprintf("%s/%s = %q on %s", mount, key, want, c.Address()), func() error {
		return kvHas(c, mount, key, want)
	})
}

// kvKeys lists the keys of the kv-v2 mount's metadata root.
func kvKeys(t *testing.T, c *api.Client, mount string) []string {
	t.Helper()
	s, err := c.Logical().List(mount + "/metadata")
	if err != nil {
		t.Fatalf("list %s/metadata on %s: %v", mount, c.Address(), err)
	}
	var keys []string
	if s != nil {
		keys = strs(s.Data["keys"])
	}
	slices.Sort(keys)
	return keys
}

// mountPaths lists the secret-engine mount paths of c's server.
func mountPaths(t *testing.T, c *api.Client) map[string]*api.MountOutput {
	t.Helper()
	m, err := c.Sys().ListMounts()
	if err != nil {
		t.Fatalf("sys/mounts on %s: %v", c.Address(), err)
	}
	return m
}

// userpassLogin logs in with userpass at mount path and returns a client
// carrying the new token.
func userpassLogin(t *testing.T, addr, user, pass string) (*api.Client, error) {
	t.Helper()
	c := client(t, addr, "")
	s, err := c.Logical().Write("auth/userpass/login/"+user, map[string]any{"password": pass})
	if err != nil {
		return nil, err
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return nil, fmt.Errorf("userpass login on %s: no auth.client_token", addr)
	}
	c.SetToken(s.Auth.ClientToken)
	return c, nil
}

// logCount counts the lines of a process's output containing every one of
// substrs (case-insensitive).
func logCount(p *proc, substrs ...string) int {
	n := 0
	for _, line := range strings.Split(p.out.String(), "\n") {
		l := strings.ToLower(line)
		all := true
		for _, s := range substrs {
			if !strings.Contains(l, strings.ToLower(s)) {
				all = false
				break
			}
		}
		if all {
			n++
		}
	}
	return n
}

// ---------------------------------------------------------------- config-file clusters

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

// embeddedBus is the body of a bus block for an embedded NATS server.
func embeddedBus(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("embedded = true\n  listen = %q\n  store_dir = %q", freeAddr(t), t.TempDir())
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

// ---------------------------------------------------------------- the WAL stream

// walBus is a plain NATS client on a primary's bus: anyone on the bus.
type walBus struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream
	subject string
}

// openWALStream connects to natsURL and binds the WAL stream of primary
// cluster clusterID (names from docs/replication.md).
func openWALStream(t *testing.T, natsURL, clusterID string) *walBus {
	t.Helper()
	nc, err := nats.Connect(natsURL, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect to %s: %v", natsURL, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	name := "COFFER_WAL_" + strings.ReplaceAll(clusterID, "-", "_")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s on %s: %v", name, natsURL, err)
	}
	subj := "coffer." + clusterID + ".wal"
	if !slices.Contains(st.CachedInfo().Config.Subjects, subj) {
		t.Fatalf("stream %s subjects %v, want %s", name, st.CachedInfo().Config.Subjects, subj)
	}
	return &walBus{nc: nc, js: js, stream: st, subject: subj}
}

// last returns the newest message of the WAL subject.
func (w *walBus) last(t *testing.T) *jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := w.stream.GetLastMsgForSubject(ctx, w.subject)
	if err != nil {
		t.Fatalf("last message of %s: %v", w.subject, err)
	}
	return m
}

// publish stores data on the WAL subject with a fresh Nats-Msg-Id and
// returns its stream sequence.
func (w *walBus) publish(t *testing.T, data []byte) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := w.js.Publish(ctx, w.subject, data, jetstream.WithMsgID(fmt.Sprintf("forged-%x", randomBytes(t, 8))))
	if err != nil {
		t.Fatalf("publish on %s: %v", w.subject, err)
	}
	if ack.Duplicate {
		t.Fatalf("forged message taken as a duplicate")
	}
	return ack.Sequence
}
