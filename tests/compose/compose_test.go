// Package compose holds the fault tests of the compose topology in
// deploy/compose (docs/operations.md): a three-node NATS JetStream cluster, a
// primary dc1 of two nodes (dc1a, dc1b) on a Consul server, performance
// secondaries dc2 and dc3 and a DR secondary dr1 in containers built FROM
// scratch. TestFailoverDrill (drill_test.go) is the DR
// failover drill of `make failover-drill`.
//
// They run only with COFFER_COMPOSE_TESTS=1 and a Docker engine that answers
// (`make test` sets it when `docker info` succeeds); the images come from
// scripts/images.sh, which they run when one is missing. Each run uses its own
// compose project name, ephemeral loopback ports and volumes, and removes
// everything (`down -v`) at the end.
package compose

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

const (
	setupTimeout = 5 * time.Minute // compose up until the setup service exits
	replTimeout  = 2 * time.Minute // a write reaches a secondary
	cmdTimeout   = 3 * time.Minute // one docker command
	pollEvery    = 250 * time.Millisecond

	// The stream limits of deploy/compose/dc1a.hcl and dc1b.hcl.
	wantMaxAge   = 24 * time.Hour
	wantMaxBytes = 256 << 20
	wantMaxMsgs  = 100000
	wantReplicas = 3
)

var images = []string{"coffer:dev", "coffer-nats:dev", "coffer-natscli:dev", "coffer-consul:dev"}

// repoRoot is the repository root (two levels above this file's directory).
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test file")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// composeCommand is `docker compose` when the plugin answers, else `docker-compose`.
func composeCommand() ([]string, error) {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}, nil
	}
	if exec.Command("docker-compose", "version").Run() == nil {
		return []string{"docker-compose"}, nil
	}
	return nil, errors.New("neither `docker compose` nor `docker-compose` works")
}

// topo is one compose project of deploy/compose/docker-compose.yml.
type topo struct {
	t        *testing.T
	root     string
	compose  []string
	project  string
	env      []string
	rootTok  string // dc1's root token
	recovery string // dc1's recovery key (base64), which dr1 checks once activated
	adminPW  string // userpass admin, every cluster
	mu       sync.Mutex
	addrs    map[string]string // service -> host:port of its published port
	secToken map[string]string // secondary -> admin token
}

// docker runs name args with the topology's environment and returns the
// combined output.
func (tp *topo) run(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = tp.root
	cmd.Env = tp.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// composeOut runs a compose subcommand and returns its stdout only.
func (tp *topo) composeOut(args ...string) (string, error) {
	full := append(append(append([]string{}, tp.compose[1:]...), "-p", tp.project, "-f", "deploy/compose/docker-compose.yml"), args...)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, tp.compose[0], full...)
	cmd.Dir = tp.root
	cmd.Env = tp.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s%s", strings.Join(tp.compose, " "), strings.Join(full, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

func (tp *topo) mustCompose(args ...string) string {
	tp.t.Helper()
	out, err := tp.composeOut(args...)
	if err != nil {
		tp.t.Fatal(err)
	}
	return out
}

// container is the id of a service's container.
func (tp *topo) container(service string) string {
	tp.t.Helper()
	// -a: Compose v2 lists only running containers without it.
	id := strings.TrimSpace(tp.mustCompose("ps", "-a", "-q", service))
	if id == "" || strings.Contains(id, "\n") {
		tp.t.Fatalf("container of %s: %q", service, id)
	}
	return id
}

// addr is host:port of the service's published API port; forget drops it
// after the container restarted (its host port may change).
func (tp *topo) addr(service string) string {
	tp.t.Helper()
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if a, ok := tp.addrs[service]; ok {
		return a
	}
	out := strings.TrimSpace(tp.mustCompose("port", service, "8200"))
	if _, port, ok := strings.Cut(out, ":"); !ok || port == "" || port == "0" {
		tp.t.Fatalf("published port of %s: %q", service, out)
	}
	a := strings.Replace(out, "0.0.0.0:", "127.0.0.1:", 1)
	tp.addrs[service] = a
	return a
}

func (tp *topo) forget(service string) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	delete(tp.addrs, service)
}

func (tp *topo) client(service, token string) *api.Client {
	tp.t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = "http://" + tp.addr(service)
	cfg.Timeout = 15 * time.Second
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	if err != nil {
		tp.t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// P is a root client of the primary dc1 through its node dc1a, active or a
// standby that forwards to the active node (tests that stop dc1a use the
// other node).
func (tp *topo) P() *api.Client { return tp.client("dc1a", tp.rootTok) }

// S is an admin client of a secondary (userpass login once: tokens are local
// to a cluster and survive its restarts).
func (tp *topo) S(service string) (*api.Client, error) {
	tp.mu.Lock()
	tok, ok := tp.secToken[service]
	tp.mu.Unlock()
	c := tp.client(service, tok)
	if ok {
		return c, nil
	}
	s, err := c.Logical().Write("auth/userpass/login/admin", map[string]any{"password": tp.adminPW})
	if err != nil {
		return nil, fmt.Errorf("userpass login on %s: %w", service, err)
	}
	if s == nil || s.Auth == nil {
		return nil, fmt.Errorf("userpass login on %s: no token", service)
	}
	tp.mu.Lock()
	tp.secToken[service] = s.Auth.ClientToken
	tp.mu.Unlock()
	c.SetToken(s.Auth.ClientToken)
	return c, nil
}

// waitUntil polls f until it returns nil or timeout passes.
func waitUntil(t *testing.T, what string, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %v", what, timeout, err)
		}
		<-tick.C
	}
}

func kvPut(c *api.Client, key, v string) error {
	_, err := c.KVv2("secret").Put(context.Background(), key, map[string]any{"v": v})
	return err
}

func kvGet(c *api.Client, key string) (string, error) {
	s, err := c.KVv2("secret").Get(context.Background(), key)
	if err != nil {
		return "", err
	}
	return fmt.Sprint(s.Data["v"]), nil
}

// waitKV waits until secret/key holds want on the service.
func (tp *topo) waitKV(service, key, want string) {
	tp.t.Helper()
	waitUntil(tp.t, fmt.Sprintf("secret/%s = %q on %s", key, want, service), replTimeout, func() error {
		c, err := tp.P(), error(nil)
		if service != "dc1" {
			c, err = tp.S(service)
		}
		if err != nil {
			return err
		}
		got, err := kvGet(c, key)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("holds %q", got)
		}
		return nil
	})
}

func statusOf(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func perfStatus(c *api.Client) (map[string]any, error) {
	s, err := c.Logical().Read("sys/replication/performance/status")
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, errors.New("empty status")
	}
	return s.Data, nil
}

// secondaryConn is dc1's connection_status of a secondary.
func (tp *topo) secondaryConn(id string) (string, error) {
	st, err := perfStatus(tp.P())
	if err != nil {
		return "", err
	}
	secs, _ := st["secondaries"].([]any)
	for _, s := range secs {
		m, _ := s.(map[string]any)
		if m["node_id"] == id {
			return fmt.Sprint(m["connection_status"]), nil
		}
	}
	return "", fmt.Errorf("no secondary %s in %v", id, secs)
}

func (tp *topo) waitSecondaryConn(id, want string) {
	tp.t.Helper()
	waitUntil(tp.t, fmt.Sprintf("dc1 sees %s %s", id, want), replTimeout, func() error {
		got, err := tp.secondaryConn(id)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("connection_status %s", got)
		}
		return nil
	})
}

// natsJSON runs the nats CLI container on the compose network with --json.
func (tp *topo) natsJSON(v any, args ...string) error {
	out, err := tp.composeOut(append([]string{"run", "--rm", "--no-deps", "-T", "natscli"}, append(args, "--json")...)...)
	if err != nil {
		return err
	}
	if i := strings.IndexByte(out, '{'); i > 0 {
		out = out[i:] // docker-compose v1 may print "Creating ..." first
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("nats %s: %v in %q", strings.Join(args, " "), err, out)
	}
	return nil
}

type streamInfo struct {
	Config struct {
		Name     string        `json:"name"`
		Subjects []string      `json:"subjects"`
		MaxAge   time.Duration `json:"max_age"`
		MaxBytes int64         `json:"max_bytes"`
		MaxMsgs  int64         `json:"max_msgs"`
		Replicas int           `json:"num_replicas"`
		Storage  string        `json:"storage"`
		Discard  string        `json:"discard"`
	} `json:"config"`
	Cluster struct {
		Leader   string `json:"leader"`
		Replicas []struct {
			Name    string `json:"name"`
			Current bool   `json:"current"`
			Offline bool   `json:"offline"`
		} `json:"replicas"`
	} `json:"cluster"`
	State struct {
		LastSeq   uint64 `json:"last_seq"`
		Consumers int    `json:"consumer_count"`
	} `json:"state"`
}

func (tp *topo) streamName() string {
	tp.t.Helper()
	st, err := perfStatus(tp.P())
	if err != nil {
		tp.t.Fatalf("dc1 replication status: %v", err)
	}
	return "COFFER_WAL_" + strings.ReplaceAll(fmt.Sprint(st["cluster_id"]), "-", "_")
}

// up builds the images when missing, starts a fresh project and waits for
// the setup service to finish.
func up(t *testing.T) *topo {
	if os.Getenv("COFFER_COMPOSE_TESTS") != "1" {
		t.Skip("compose fault tests: set COFFER_COMPOSE_TESTS=1 (make test does when `docker info` works)")
	}
	if out, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		t.Skipf("compose fault tests: no Docker engine answers (docker info: %v: %s)", err, bytes.TrimSpace(out))
	}
	compose, err := composeCommand()
	if err != nil {
		t.Skipf("compose fault tests: %v", err)
	}
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	tp := &topo{
		t: t, root: repoRoot(t), compose: compose,
		project:  "coffertest" + hex.EncodeToString(b),
		addrs:    map[string]string{},
		secToken: map[string]string{},
	}
	// Free loopback ports: the tests never collide with a running demo.
	tp.env = os.Environ()
	for _, v := range []string{"COFFER_DC1_API", "COFFER_DC1B_API", "COFFER_CONSUL_HTTP", "COFFER_DC2_API", "COFFER_DC3_API", "COFFER_DR1_API", "COFFER_N1_NATS", "COFFER_N2_NATS", "COFFER_N3_NATS"} {
		tp.env = append(tp.env, v+"=127.0.0.1:")
	}
	for _, img := range images {
		if _, err := tp.run(time.Minute, "docker", "image", "inspect", img); err != nil {
			t.Logf("image %s missing: running scripts/images.sh", img)
			start := time.Now()
			if _, err := tp.run(20*time.Minute, "bash", "scripts/images.sh"); err != nil {
				t.Fatal(err)
			}
			t.Logf("images built in %s", time.Since(start).Round(time.Second))
			break
		}
	}

	t.Cleanup(func() {
		if t.Failed() {
			out, _ := tp.composeOut("logs", "--no-color", "--tail", "60")
			t.Logf("compose logs (last 60 lines each):\n%s", out)
		}
		if out, err := tp.run(cmdTimeout, tp.compose[0], append(tp.compose[1:], "-p", tp.project, "-f", "deploy/compose/docker-compose.yml", "down", "-v", "--remove-orphans", "-t", "5")...); err != nil {
			t.Errorf("compose down -v: %v\n%s", err, out)
		}
	})
	start := time.Now()
	tp.mustCompose("up", "-d")
	t.Logf("compose up -d returned after %s", time.Since(start).Round(100*time.Millisecond))
	setup := tp.container("setup")
	code, err := tp.run(setupTimeout, "docker", "wait", setup)
	if err != nil || strings.TrimSpace(code) != "0" {
		logs, _ := tp.composeOut("logs", "--no-color", "setup")
		t.Fatalf("setup service: exit %q %v\n%s", strings.TrimSpace(code), err, logs)
	}
	t.Logf("replicating topology (setup exited 0) %s after compose up", time.Since(start).Round(100*time.Millisecond))
	// The setup needs one node of dc1; the tests need both.
	active := tp.waitActive(replTimeout, dc1Nodes...)
	t.Logf("dc1: %s active, both nodes up %s after compose up", active, time.Since(start).Round(100*time.Millisecond))

	show := tp.mustCompose("run", "--rm", "--no-deps", "-T", "setup", "show")
	for _, line := range strings.Split(show, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "root-token" {
			tp.rootTok = f[1]
		}
		if len(f) == 2 && f[0] == "admin-password" {
			tp.adminPW = f[1]
		}
		if len(f) == 2 && f[0] == "recovery-key" {
			tp.recovery = f[1]
		}
	}
	if tp.rootTok == "" || tp.adminPW == "" || tp.recovery == "" {
		t.Fatalf("setup show printed no root token, admin password or recovery key:\n%s", show)
	}
	return tp
}

// step runs one fault drill and stops the test when it fails: the later ones
// assume the topology is whole again.
func step(t *testing.T, name string, f func(t *testing.T)) {
	start := time.Now()
	ok := t.Run(name, f)
	t.Logf("%s: %s", name, time.Since(start).Round(100*time.Millisecond))
	if !ok {
		t.FailNow()
	}
}

// TestComposeFaults brings the topology up once and runs the fault drills of
// docs/operations.md in order.
func TestComposeFaults(t *testing.T) {
	tp := up(t)
	P := tp.P()

	step(t, "Replicates", func(t *testing.T) {
		tp.t = t
		if err := kvPut(P, "t0", "on-dc1"); err != nil {
			t.Fatalf("write on dc1: %v", err)
		}
		tp.waitKV("dc2", "t0", "on-dc1")
		tp.waitKV("dc3", "t0", "on-dc1")
		S2, err := tp.S("dc2")
		if err != nil {
			t.Fatal(err)
		}
		if err := kvPut(S2, "fwd0", "via-dc2"); err != nil {
			t.Fatalf("write forwarded by dc2: %v", err)
		}
		tp.waitKV("dc1", "fwd0", "via-dc2")
		tp.waitKV("dc3", "fwd0", "via-dc2")
	})

	var stream string
	step(t, "NATSCLIStreamInfo", func(t *testing.T) {
		tp.t = t
		stream = tp.streamName()
		var si streamInfo
		if err := tp.natsJSON(&si, "stream", "info", stream); err != nil {
			t.Fatal(err)
		}
		c := si.Config
		if c.Name != stream || c.MaxAge != wantMaxAge || c.MaxBytes != wantMaxBytes || c.MaxMsgs != wantMaxMsgs ||
			c.Replicas != wantReplicas || c.Storage != "file" || c.Discard != "old" {
			t.Fatalf("nats stream info %s: config %+v, want max_age %s, max_bytes %d, max_msgs %d, %d replicas, file storage, discard old",
				stream, c, wantMaxAge, wantMaxBytes, wantMaxMsgs, wantReplicas)
		}
		if si.Cluster.Leader == "" || len(si.Cluster.Replicas) != wantReplicas-1 {
			t.Fatalf("nats stream info %s: cluster %+v, want a leader and %d replicas", stream, si.Cluster, wantReplicas-1)
		}
		for _, id := range []string{"dc2", "dc3", "dr1"} {
			var ci struct {
				Config struct {
					Durable string `json:"durable_name"`
				} `json:"config"`
			}
			if err := tp.natsJSON(&ci, "consumer", "info", stream, "sec_"+id); err != nil {
				t.Fatal(err)
			}
			if ci.Config.Durable != "sec_"+id {
				t.Fatalf("nats consumer info %s sec_%s: %+v", stream, id, ci)
			}
		}
	})

	step(t, "PartitionSecondary", func(t *testing.T) {
		tp.t = t
		network := tp.project + "_default"
		dc2 := tp.container("dc2")
		if _, err := tp.run(cmdTimeout, "docker", "network", "disconnect", network, dc2); err != nil {
			t.Fatal(err)
		}
		healed := false
		defer func() {
			if !healed {
				_, _ = tp.run(cmdTimeout, "docker", "network", "connect", "--alias", "dc2", network, dc2)
			}
		}()
		tp.waitSecondaryConn("dc2", "disconnected")
		for i := range 5 {
			if err := kvPut(P, fmt.Sprintf("part%d", i), "while-dc2-cut-off"); err != nil {
				t.Fatalf("write on dc1 during the partition: %v", err)
			}
		}
		tp.waitKV("dc3", "part4", "while-dc2-cut-off")

		if _, err := tp.run(cmdTimeout, "docker", "network", "connect", "--alias", "dc2", network, dc2); err != nil {
			t.Fatal(err)
		}
		healed = true
		tp.forget("dc2")
		for i := range 5 {
			tp.waitKV("dc2", fmt.Sprintf("part%d", i), "while-dc2-cut-off")
		}
		tp.waitSecondaryConn("dc2", "connected")
	})

	step(t, "ActiveNodeDown", func(t *testing.T) {
		tp.t = t
		tp.activeNodeDown()
		P = tp.P() // dc1a may have been restarted, on another host port
	})

	// The whole primary cluster down: both nodes.
	step(t, "PrimaryDown", func(t *testing.T) {
		tp.t = t
		tp.mustCompose(append([]string{"stop", "-t", "10"}, dc1Nodes...)...)
		restarted := false
		defer func() {
			if !restarted {
				_, _ = tp.composeOut(append([]string{"start"}, dc1Nodes...)...)
			}
		}()
		for _, s := range []string{"dc2", "dc3"} {
			c, err := tp.S(s)
			if err != nil {
				t.Fatalf("%s with the primary down: %v", s, err)
			}
			for _, k := range []string{"t0", "fwd0", "part4"} {
				if _, err := kvGet(c, k); err != nil {
					t.Fatalf("read secret/%s on %s with the primary down: %v", k, s, err)
				}
			}
		}
		S2, err := tp.S("dc2")
		if err != nil {
			t.Fatal(err)
		}
		// Until dc2's heartbeats notice, the write is sent and unanswered:
		// 504, outcome unknown ("no responders" can be forged on the bus);
		// afterwards it is not sent at all: 503, not applied. Either way the
		// primary is down and the write is not there after it comes back.
		err = kvPut(S2, "while-down", "x")
		switch code := statusOf(err); {
		case code == http.StatusServiceUnavailable && strings.Contains(err.Error(), "not applied"):
		case code == http.StatusGatewayTimeout && strings.Contains(err.Error(), "outcome is unknown"):
		default:
			t.Fatalf("write forwarded by dc2 with the primary down: %v, want a 503 saying it was not applied or a 504 saying its outcome is unknown", err)
		}

		tp.mustCompose(append([]string{"start"}, dc1Nodes...)...)
		restarted = true
		for _, n := range dc1Nodes {
			tp.forget(n)
		}
		P = tp.P()
		active := tp.waitActive(replTimeout, dc1Nodes...)
		t.Logf("dc1 back, %s active", active)
		if err := kvPut(P, "after-restart", "back"); err != nil {
			t.Fatalf("write on the restarted dc1: %v", err)
		}
		tp.waitKV("dc2", "after-restart", "back")
		tp.waitKV("dc3", "after-restart", "back")
		S3, err := tp.S("dc3")
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "a write forwarded by dc3 after the restart", replTimeout, func() error {
			return kvPut(S3, "fwd1", "via-dc3")
		})
		tp.waitKV("dc1", "fwd1", "via-dc3")
		tp.waitKV("dc2", "fwd1", "via-dc3")
		if _, err := kvGet(P, "while-down"); statusOf(err) != http.StatusNotFound && !errors.Is(err, api.ErrSecretNotFound) {
			t.Fatalf("the write refused while dc1 was down is on dc1: %v", err)
		}
		tp.waitSecondaryConn("dc2", "connected")
		tp.waitSecondaryConn("dc3", "connected")
	})

	step(t, "NATSNodeDown", func(t *testing.T) {
		tp.t = t
		// Stop the WAL stream's leader: the hardest node to lose.
		var si streamInfo
		if err := tp.natsJSON(&si, "stream", "info", stream); err != nil {
			t.Fatal(err)
		}
		victim := si.Cluster.Leader
		if victim != "n1" && victim != "n2" && victim != "n3" {
			t.Fatalf("stream leader %q is not a NATS service", victim)
		}
		t.Logf("stopping %s, the leader of %s", victim, stream)
		tp.mustCompose("stop", "-t", "5", victim)
		for i := range 5 {
			if err := kvPut(P, fmt.Sprintf("nats%d", i), "two-nodes-left"); err != nil {
				t.Fatalf("write on dc1 with %s down: %v", victim, err)
			}
		}
		for _, s := range []string{"dc2", "dc3"} {
			tp.waitKV(s, "nats4", "two-nodes-left")
		}
		S2, err := tp.S("dc2")
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "a write forwarded by dc2 with "+victim+" down", replTimeout, func() error {
			return kvPut(S2, "fwd2", "via-dc2-two-nodes")
		})
		tp.waitKV("dc3", "fwd2", "via-dc2-two-nodes")
		if err := tp.natsJSON(&si, "stream", "info", stream); err != nil {
			t.Fatal(err)
		}
		if si.Cluster.Leader == "" || si.Cluster.Leader == victim {
			t.Fatalf("stream leader with %s down: %q", victim, si.Cluster.Leader)
		}
		tp.mustCompose("start", victim)
		waitUntil(t, victim+" back as a current replica of "+stream, replTimeout, func() error {
			var si streamInfo
			if err := tp.natsJSON(&si, "stream", "info", stream); err != nil {
				return err
			}
			names := []string{si.Cluster.Leader}
			for _, r := range si.Cluster.Replicas {
				if !r.Current || r.Offline {
					return fmt.Errorf("replica %+v", r)
				}
				names = append(names, r.Name)
			}
			if len(names) != wantReplicas || !slices.Contains(names, victim) {
				return fmt.Errorf("leader and replicas %v", names)
			}
			return nil
		})
	})
}
