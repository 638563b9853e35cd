package security

// The clusters the bus attacker goes after: real coffer processes, each run
// as `coffer server -dev -config=FILE` so that it keeps dev mode's open
// embedded NATS and shared dev root token while storing in bolt with a static
// seal, and can therefore be restarted with its data. Every name here starts
// with attacker: other topics share package security.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

// Deadlines of the attacker suite. Generous: a passing run never waits for
// them; they only bound a failure.
const (
	attackerStartTimeout = 30 * time.Second
	attackerStopTimeout  = 30 * time.Second
	// attackerReplTimeout bounds a wait that may cross a restart, a
	// reconnect, a merkle sync or a delay the attacker caused.
	attackerReplTimeout = 60 * time.Second
	// attackerActivateTimeout is the HTTP timeout of secondary/enable.
	attackerActivateTimeout = 2 * time.Minute
)

const attackerPathSecondaryToken = "sys/replication/performance/primary/secondary-token"

// attackerCofferBin builds ./cmd/coffer into t.TempDir() and returns its
// path. Each test builds its own (about a second and a half with a warm build
// cache): package security cannot have a TestMain of one topic, and a binary
// shared across tests would outlive them in os.TempDir().
func attackerCofferBin(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "coffer")
	build := exec.Command("go", "build", "-o", bin, "./cmd/coffer")
	build.Dir = filepath.Join("..", "..") // the module root: tests run in their package directory
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/coffer: %v\n%s", err, out)
	}
	return bin
}

// attackerFreeAddr returns a loopback address with a port nobody listens on now.
func attackerFreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("free port %s: %v", addr, err)
	}
	return addr
}

// attackerRandom returns n random bytes.
func attackerRandom(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// attackerSecretValue is a random secret value: letters and digits only, so
// that JSON carries it unescaped and every encoding of it is searchable.
func attackerSecretValue(t testing.TB, what string) string {
	t.Helper()
	return what + "-" + hex.EncodeToString(attackerRandom(t, 16))
}

// attackerServer is one cluster: a data directory, a config file and the
// process running it, restartable with its storage, seal key and addresses.
type attackerServer struct {
	t        *testing.T
	bin      string // the coffer binary
	name     string // cluster_name
	dir      string
	apiAddr  string
	natsAddr string // its embedded NATS
	cfgPath  string
	sealKey  []byte // the static seal key: unwraps everything this cluster stores
	rootID   string // its dev root token id
	p        *attackerProc
}

// newAttackerServer writes the config of a cluster named name with the
// static seal key sealKey and starts it with the coffer binary bin
// (attackerCofferBin). The clusters of one replication set share the seal
// key file (docs/operations.md): the seal material replicates.
func newAttackerServer(t *testing.T, bin, name string, sealKey []byte) *attackerServer {
	t.Helper()
	s := &attackerServer{
		t: t, bin: bin, name: name, dir: t.TempDir(),
		apiAddr: attackerFreeAddr(t), natsAddr: attackerFreeAddr(t),
		sealKey: sealKey,
		rootID:  "root-" + name + "-" + hex.EncodeToString(attackerRandom(t, 12)),
	}
	keyPath := filepath.Join(s.dir, "seal.key")
	if err := os.WriteFile(keyPath, s.sealKey, 0o600); err != nil {
		t.Fatalf("write the seal key: %v", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "storage \"bolt\" {\n  path = %q\n}\n", filepath.Join(s.dir, "coffer.db"))
	fmt.Fprintf(&b, "listener \"tcp\" {\n  address = %q\n  tls_disable = true\n}\n", s.apiAddr)
	fmt.Fprintf(&b, "seal \"static\" {\n  key_file = %q\n}\n", keyPath)
	fmt.Fprintf(&b, "api_addr = %q\ncluster_name = %q\n", "http://"+s.apiAddr, name)
	fmt.Fprintf(&b, "bus {\n  embedded = true\n  listen = %q\n  store_dir = %q\n}\n", s.natsAddr, filepath.Join(s.dir, "nats"))
	s.cfgPath = filepath.Join(s.dir, "coffer.hcl")
	if err := os.WriteFile(s.cfgPath, []byte(b.String()), 0o600); err != nil {
		t.Fatalf("write the config: %v", err)
	}
	s.start()
	return s
}

// natsURL is the client URL of the server's embedded NATS.
func (s *attackerServer) natsURL() string { return "nats://" + s.natsAddr }

// start runs the server and waits until it is unsealed.
func (s *attackerServer) start() {
	s.t.Helper()
	s.p = attackerStartProc(s.t, s.bin, s.name, s.apiAddr, "server", "-dev", "-dev-root-token-id="+s.rootID, "-config="+s.cfgPath)
	attackerWaitHealth(s.t, s.apiAddr, http.StatusOK)
}

// restart stops the server (asserting a clean exit) and starts it again.
func (s *attackerServer) restart() {
	s.t.Helper()
	if code := s.p.stop(); code != 0 {
		s.t.Fatalf("%s exited %d on SIGTERM, want 0; output:\n%s", s.name, code, s.p.out.String())
	}
	s.start()
}

// client returns a vault/api client of this server with token. Its
// timeout is longer than a forwarded write's (10 s on the secondary), so
// that the client sees what the server answers.
func (s *attackerServer) client(token string) *api.Client {
	s.t.Helper()
	return attackerClient(s.t, s.apiAddr, token, 30*time.Second)
}

// attackerClient returns a vault/api client without retries: a refused
// request fails at once and visibly.
func attackerClient(t testing.TB, addr, token string, timeout time.Duration) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = "http://" + addr
	cfg.MaxRetries = 0
	cfg.Timeout = timeout
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("vault api client: %v", err)
	}
	c.SetToken(token) // overrides any VAULT_TOKEN in the environment
	return c
}

// attackerProc is one running coffer process.
type attackerProc struct {
	t    testing.TB
	cmd  *exec.Cmd
	out  *attackerOutput
	done chan struct{}
	err  error // set before done is closed
}

// attackerOutput collects a process's output from its copying goroutines.
type attackerOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *attackerOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *attackerOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// attackerStartProc starts coffer with args and waits until addr answers
// sys/health. On failure the output is logged; at cleanup a still-running
// process is stopped.
func attackerStartProc(t testing.TB, bin, name, addr string, args ...string) *attackerProc {
	t.Helper()
	p := &attackerProc{t: t, out: &attackerOutput{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start coffer %v: %v", args, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("output of %s (coffer %v):\n%s", name, args, p.out.String())
		}
		p.kill()
	})
	hc := &http.Client{Timeout: 2 * time.Second}
	testutil.Eventually(t, attackerStartTimeout, fmt.Sprintf("%s answers on %s", name, addr), func() error {
		select {
		case <-p.done:
			t.Fatalf("%s exited before serving (%v); output:\n%s", name, p.err, p.out.String())
		default:
		}
		resp, err := hc.Get("http://" + addr + "/v1/sys/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return p
}

// stop sends SIGTERM and waits for the exit; it returns the exit code.
func (p *attackerProc) stop() int {
	p.t.Helper()
	select {
	case <-p.done:
	default:
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.t.Fatalf("SIGTERM coffer: %v", err)
		}
	}
	select {
	case <-p.done:
	case <-time.After(attackerStopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("coffer did not exit within %s of SIGTERM; output:\n%s", attackerStopTimeout, p.out.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// kill ends the process if it still runs (cleanup only).
func (p *attackerProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(attackerStopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// attackerWaitHealth polls sys/health until it answers want.
func attackerWaitHealth(t testing.TB, addr string, want int) {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	testutil.Eventually(t, attackerStartTimeout, fmt.Sprintf("sys/health on %s answers %d", addr, want), func() error {
		resp, err := hc.Get("http://" + addr + "/v1/sys/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// attackerStatus reads sys/replication/performance/status without a token, as anyone
// can: it is public, and so are the WAL indexes in it.
func attackerStatus(addr string) (map[string]any, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + addr + "/v1/sys/replication/performance/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var env struct {
		Data map[string]any `json:"data"`
	}
	d := json.NewDecoder(resp.Body)
	d.UseNumber()
	if err := d.Decode(&env); err != nil {
		return nil, fmt.Errorf("status %d: %v", resp.StatusCode, err)
	}
	if env.Data == nil {
		return nil, fmt.Errorf("status %d without data", resp.StatusCode)
	}
	return env.Data, nil
}

// attackerStr returns a JSON value as a string ("" for nil).
func attackerStr(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// attackerEnablePrimary enables performance replication on s and returns
// the primary cluster id.
func attackerEnablePrimary(t *testing.T, s *attackerServer) string {
	t.Helper()
	if _, err := s.client(s.rootID).Logical().Write("sys/replication/performance/primary/enable", nil); err != nil {
		t.Fatalf("primary/enable on %s: %v", s.name, err)
	}
	st, err := attackerStatus(s.apiAddr)
	if err != nil || attackerStr(st["cluster_id"]) == "" {
		t.Fatalf("status of the primary %s: %v, %v", s.name, st, err)
	}
	return attackerStr(st["cluster_id"])
}

// attackerSecondaryToken asks the primary for an activation token of id.
func attackerSecondaryToken(t *testing.T, pri *attackerServer, id string) string {
	t.Helper()
	s, err := pri.client(pri.rootID).Logical().Write(attackerPathSecondaryToken, map[string]any{"id": id})
	if err != nil {
		t.Fatalf("secondary-token id=%s: %v", id, err)
	}
	if s == nil || s.WrapInfo == nil || s.WrapInfo.Token == "" {
		t.Fatalf("secondary-token id=%s: no wrap_info.token in %+v", id, s)
	}
	return s.WrapInfo.Token
}

// attackerActivate runs secondary/enable token=... on sec.
func attackerActivate(t *testing.T, sec *attackerServer, token string) error {
	t.Helper()
	c := attackerClient(t, sec.apiAddr, sec.rootID, attackerActivateTimeout)
	_, err := c.Logical().Write("sys/replication/performance/secondary/enable", map[string]any{"token": token})
	return err
}

// attackerKVPut writes {"v": value} to secret/<key> through c.
func attackerKVPut(c *api.Client, key, value string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.KVv2("secret").Put(ctx, key, map[string]any{"v": value})
	return err
}

// attackerKVHas reports nil when secret/<key> has v = want on c's server.
func attackerKVHas(c *api.Client, key, want string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.KVv2("secret").Get(ctx, key)
	if err != nil {
		return err
	}
	if got := attackerStr(s.Data["v"]); got != want {
		return fmt.Errorf("secret/%s: v=%q, want %q", key, got, want)
	}
	return nil
}

// attackerSnapshot reads every key of the secret/ kv-v2 mount (one level) as
// "v=<value> version=<n>", and every ACL policy, as "policy <name>".
func attackerSnapshot(c *api.Client) (map[string]string, error) {
	out := map[string]string{}
	l, err := c.Logical().List("secret/metadata")
	if err != nil {
		return nil, fmt.Errorf("list secret/metadata: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if l != nil {
		keys, _ := l.Data["keys"].([]any)
		for _, k := range keys {
			key := attackerStr(k)
			s, err := c.KVv2("secret").Get(ctx, key)
			if err != nil {
				return nil, fmt.Errorf("read secret/%s: %w", key, err)
			}
			v := -1
			if s.VersionMetadata != nil {
				v = s.VersionMetadata.Version
			}
			out["secret/"+key] = fmt.Sprintf("v=%s version=%d", attackerStr(s.Data["v"]), v)
		}
	}
	pols, err := c.Sys().ListPolicies()
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	for _, p := range pols {
		out["policy "+p] = "present"
	}
	return out, nil
}

// attackerDiff describes how got differs from want ("" when equal).
func attackerDiff(want, got map[string]string) string {
	var d []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			d = append(d, fmt.Sprintf("%s: gone (was %q)", k, w))
		} else if g != w {
			d = append(d, fmt.Sprintf("%s: %q, was %q", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			d = append(d, fmt.Sprintf("%s: new %q", k, g))
		}
	}
	sort.Strings(d)
	return strings.Join(d, "; ")
}

// attackerStatusPoll is one read of a secondary's status.
type attackerStatusPoll struct {
	At                      time.Time
	Mode, State, Connection string
	PrimaryConnection       string
	Err                     string // the read failed (a restart)
}

// attackerStatusRecorder reads a cluster's replication status every
// interval from start to stop, and keeps every read: a state that lasted
// only between two test steps is still seen.
type attackerStatusRecorder struct {
	addr   string
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	polls []attackerStatusPoll
}

// attackerRecordStatus starts recording the status of addr; the recorder
// stops at cleanup at the latest.
func attackerRecordStatus(t testing.TB, addr string) *attackerStatusRecorder {
	ctx, cancel := context.WithCancel(context.Background())
	r := &attackerStatusRecorder{addr: addr, cancel: cancel, done: make(chan struct{})}
	go r.run(ctx)
	t.Cleanup(r.stop)
	return r
}

func (r *attackerStatusRecorder) run(ctx context.Context) {
	defer close(r.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		p := attackerStatusPoll{At: time.Now()}
		st, err := attackerStatus(r.addr)
		if err != nil {
			p.Err = err.Error()
		} else {
			p.Mode, p.State = attackerStr(st["mode"]), attackerStr(st["state"])
			p.Connection = attackerStr(st["connection_state"])
			if ps, ok := st["primaries"].([]any); ok && len(ps) > 0 {
				if m, ok := ps[0].(map[string]any); ok {
					p.PrimaryConnection = attackerStr(m["connection_status"])
				}
			}
		}
		r.mu.Lock()
		r.polls = append(r.polls, p)
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (r *attackerStatusRecorder) stop() {
	r.cancel()
	<-r.done
}

// Polls returns a copy of every read so far.
func (r *attackerStatusRecorder) Polls() []attackerStatusPoll {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]attackerStatusPoll(nil), r.polls...)
}

// neverRevoked fails t when any read showed the secondary revoked.
func (r *attackerStatusRecorder) neverRevoked(t *testing.T, what string) {
	t.Helper()
	polls := r.Polls()
	var bad []string
	for _, p := range polls {
		if p.State == "revoked" || p.Connection == "revoked" || p.Mode == "revoked" || p.PrimaryConnection == "revoked" {
			bad = append(bad, fmt.Sprintf("%s mode=%s state=%s connection_state=%s",
				p.At.Format("15:04:05.000"), p.Mode, p.State, p.Connection))
		}
	}
	if len(bad) > 0 {
		t.Errorf("%s: the secondary's status showed revoked in %d of %d reads, first: %s (nothing but the attacker revoked it: an unauthenticated error changed its state)",
			what, len(bad), len(polls), bad[0])
	}
}
