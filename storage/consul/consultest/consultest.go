// Package consultest starts a real Consul agent for tests: `consul agent -dev`
// on loopback ports chosen free, from the binary scripts/consul.sh builds.
//
// It owns that agent process and stops it when the test ends. It must never
// be imported outside tests, and never fake Consul: a test that cannot start
// the agent is skipped with the reason, or fails when CI=true (CI builds the
// binary first, through make test).
package consultest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
)

// BinEnv names the variable that gives the agent's path (make test sets it
// from scripts/consul.sh).
const BinEnv = "COFFERTEST_CONSUL_BIN"

// MaxValueSize is the agent's limits.kv_max_value_size and
// limits.txn_max_req_len: above Consul's 512 KiB default so that the
// conformance suite's 1 MiB value fits (docs/consul.md).
const MaxValueSize = 4 << 20

// Agent is one running dev agent.
type Agent struct {
	// Addr is the HTTP API's host:port.
	Addr string

	bin      string
	args     []string
	cmd      *exec.Cmd
	out      *testutil.SyncBuffer
	exited   chan struct{}
	stopOnce sync.Once
}

// Binary finds the agent: $COFFERTEST_CONSUL_BIN, or the path scripts/consul.sh
// builds to. It skips the test when there is none, and fails it under CI=true.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(BinEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s: %v", BinEnv, p, err)
		}
		return p
	}
	root, err := moduleRoot()
	if err == nil {
		var out []byte
		out, err = exec.Command(filepath.Join(root, "scripts", "consul.sh"), "-path").Output()
		if err == nil {
			p := strings.TrimSpace(string(out))
			if _, err = os.Stat(p); err == nil {
				return p
			}
		}
	}
	msg := fmt.Sprintf("no Consul agent to test against (%v): run scripts/consul.sh (make consul) to build it, or set %s", err, BinEnv)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; under CI=true make test builds it first")
	}
	t.Skip(msg)
	return ""
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "tools", "consul", "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no tools/consul/go.mod above the working directory")
		}
		dir = parent
	}
}

// Start runs a dev agent (state in memory) and waits until it has a leader;
// t.Cleanup stops it.
func Start(t testing.TB) *Agent {
	t.Helper()
	return start(t, "")
}

// StartPersistent runs a single-server agent that keeps its state in a
// t.TempDir(), so that Restart brings the same KV store, sessions and
// checks back.
func StartPersistent(t testing.TB) *Agent {
	t.Helper()
	return start(t, t.TempDir())
}

func start(t testing.TB, dataDir string) *Agent {
	t.Helper()
	bin := Binary(t)
	ports := []int{testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)}
	a := &Agent{Addr: "127.0.0.1:" + strconv.Itoa(ports[0])}
	mode := []string{"agent", "-dev"}
	if dataDir != "" {
		mode = []string{"agent", "-server", "-bootstrap", "-data-dir=" + dataDir}
	}
	a.args = append(mode, "-log-level=warn",
		"-node=coffer-test", "-bind=127.0.0.1", "-client=127.0.0.1",
		"-http-port="+strconv.Itoa(ports[0]), "-server-port="+strconv.Itoa(ports[1]),
		"-serf-lan-port="+strconv.Itoa(ports[2]), "-serf-wan-port="+strconv.Itoa(ports[3]),
		"-dns-port=-1", "-grpc-port=-1", "-grpc-tls-port=-1",
		"-hcl", fmt.Sprintf("limits { kv_max_value_size = %d\ntxn_max_req_len = %d }", MaxValueSize, MaxValueSize),
	)
	a.bin = bin
	t.Cleanup(a.Stop)
	a.run(t)
	return a
}

// run starts the agent process and waits for a leader.
func (a *Agent) run(t testing.TB) {
	t.Helper()
	a.out, a.exited, a.stopOnce = &testutil.SyncBuffer{}, make(chan struct{}), sync.Once{}
	a.cmd = exec.Command(a.bin, a.args...)
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	a.cmd.Env = append(os.Environ(), "CONSUL_HTTP_TOKEN=", "CONSUL_HTTP_ADDR=")
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", a.bin, err)
	}
	exited := a.exited
	go func() { _ = a.cmd.Wait(); close(exited) }()

	deadline := time.Now().Add(60 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		// A leader, and the agent's own node in the catalog with its
		// serfHealth check: a session made before that fails with
		// "Missing node registration".
		if leader(client, a.Addr) && nodeReady(client, a.Addr) {
			return
		}
		select {
		case <-exited:
			t.Fatalf("consul agent exited before electing a leader:\n%s", a.out.String())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("consul agent at %s has no leader after 60 s:\n%s", a.Addr, a.out.String())
		}
	}
}

// Restart stops the agent and starts it again on the same ports (and, for
// StartPersistent, the same state), waiting for a leader.
func (a *Agent) Restart(t testing.TB) {
	t.Helper()
	a.Stop()
	a.run(t)
}

func leader(c *http.Client, addr string) bool {
	resp, err := c.Get("http://" + addr + "/v1/status/leader")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	return resp.StatusCode == http.StatusOK && strings.Trim(strings.TrimSpace(line), `"`) != ""
}

// nodeReady reports whether the agent's node is registered with its
// serfHealth check passing.
func nodeReady(c *http.Client, addr string) bool {
	resp, err := c.Get("http://" + addr + "/v1/health/node/coffer-test")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var checks []struct{ CheckID, Status string }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&checks) != nil {
		return false
	}
	for _, ch := range checks {
		if ch.CheckID == "serfHealth" && ch.Status == "passing" {
			return true
		}
	}
	return false
}

// Stop ends the agent (SIGTERM, then SIGKILL after 10 s) and waits for it. It
// is idempotent.
func (a *Agent) Stop() {
	a.stopOnce.Do(func() {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.exited:
		case <-time.After(10 * time.Second):
			_ = a.cmd.Process.Kill()
			<-a.exited
		}
	})
}

// Output is what the agent logged so far.
func (a *Agent) Output() string { return a.out.String() }
