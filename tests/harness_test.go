package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

// cofferBin is the coffer binary TestMain builds once for every test.
var cofferBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "coffer-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: temp dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	cofferBin = filepath.Join(dir, "coffer")
	build := exec.Command("go", "build", "-o", cofferBin, "./cmd/coffer")
	build.Dir = ".." // the module root: tests run in their package directory
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/coffer failed: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// Deadlines for conditions the tests wait on. Generous: they bound a
// failure, a passing run never waits for them.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 30 * time.Second
	waitTimeout  = 20 * time.Second
)

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t testing.TB) string {
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

// serverConfig describes one config-file server.
type serverConfig struct {
	// StaticKey, when set, adds seal "static" with a key file holding it.
	StaticKey []byte
	// MaxRequestSize, when non-zero, sets max_request_size.
	MaxRequestSize int
	ClusterName    string
	// Bus and Replication, when set, are the bodies of a bus { ... } and a
	// replication { ... } block.
	Bus, Replication string
}

// node is one data directory and config file; it can be started and
// stopped many times, keeping its storage and address.
type node struct {
	t       *testing.T
	dir     string
	addr    string
	cfgPath string
	dbPath  string
}

// newNode writes a config file for cfg into a fresh t.TempDir().
func newNode(t *testing.T, cfg serverConfig) *node {
	t.Helper()
	n := &node{t: t, dir: t.TempDir(), addr: freeAddr(t)}
	n.dbPath = filepath.Join(n.dir, "coffer.db")
	n.cfgPath = filepath.Join(n.dir, "coffer.hcl")
	name := cfg.ClusterName
	if name == "" {
		name = "dc1"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "storage \"bolt\" {\n  path = %q\n}\n", n.dbPath)
	fmt.Fprintf(&b, "listener \"tcp\" {\n  address = %q\n  tls_disable = true\n}\n", n.addr)
	if cfg.StaticKey != nil {
		keyPath := filepath.Join(n.dir, "unseal.key")
		if err := os.WriteFile(keyPath, cfg.StaticKey, 0o600); err != nil {
			t.Fatalf("write static seal key: %v", err)
		}
		fmt.Fprintf(&b, "seal \"static\" {\n  key_file = %q\n}\n", keyPath)
	}
	fmt.Fprintf(&b, "api_addr = %q\ncluster_name = %q\n", "http://"+n.addr, name)
	if cfg.MaxRequestSize != 0 {
		fmt.Fprintf(&b, "max_request_size = %d\n", cfg.MaxRequestSize)
	}
	if cfg.Bus != "" {
		fmt.Fprintf(&b, "bus {\n  %s\n}\n", cfg.Bus)
	}
	if cfg.Replication != "" {
		fmt.Fprintf(&b, "replication {\n  %s\n}\n", cfg.Replication)
	}
	if err := os.WriteFile(n.cfgPath, []byte(b.String()), 0o600); err != nil {
		t.Fatalf("write config: %v", err)
	}
	return n
}

// start runs `coffer server -config=...` and waits until it answers.
func (n *node) start() *proc {
	n.t.Helper()
	return startProc(n.t, n.addr, "server", "-config="+n.cfgPath)
}

// proc is one running coffer process.
type proc struct {
	t    testing.TB
	addr string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error // set before done is closed
}

// syncBuffer collects a process's output from its copying goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startProc starts coffer with args and waits until addr answers
// sys/health with any status. On test failure the output is logged; at
// cleanup a still-running process is stopped.
func startProc(t testing.TB, addr string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, addr: addr, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(cofferBin, args...)
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
			t.Logf("coffer %v output:\n%s", args, p.out.String())
		}
		p.kill()
	})

	hc := &http.Client{Timeout: 2 * time.Second}
	testutil.Eventually(t, startTimeout, fmt.Sprintf("coffer %v answers on %s", args, addr), func() error {
		select {
		case <-p.done:
			t.Fatalf("coffer %v exited before serving (%v); output:\n%s", args, p.err, p.out.String())
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
func (p *proc) stop() int {
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
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("coffer did not exit within %s of SIGTERM; output:\n%s", stopTimeout, p.out.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// kill ends the process if it still runs (cleanup only).
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// restart stops p (asserting a clean exit) and starts n again.
func (n *node) restart(p *proc) *proc {
	n.t.Helper()
	if code := p.stop(); code != 0 {
		n.t.Fatalf("coffer exited %d on SIGTERM, want 0; output:\n%s", code, p.out.String())
	}
	return n.start()
}

// client returns a vault/api client for addr with token (may be empty).
// Retries are off so that a refused request fails at once and visibly.
func client(t testing.TB, addr, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = "http://" + addr
	cfg.MaxRetries = 0
	cfg.Timeout = 10 * time.Second
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("vault api client: %v", err)
	}
	c.SetToken(token) // overrides any VAULT_TOKEN in the environment
	return c
}

// waitHealthCode polls sys/health (default status codes) until it returns
// want.
func waitHealthCode(t testing.TB, addr string, want int) {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	testutil.Eventually(t, waitTimeout, fmt.Sprintf("sys/health on %s answers %d", addr, want), func() error {
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

// responseError asserts err is a vault/api ResponseError with code and an
// errors[] message containing substr (case-insensitive).
func responseError(t *testing.T, err error, code int, substr string) {
	t.Helper()
	var re *api.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want a %d response error, got %T: %v", code, err, err)
	}
	if re.StatusCode != code {
		t.Fatalf("status %d, want %d (errors %q)", re.StatusCode, code, re.Errors)
	}
	if !containsFold(re.Errors, substr) {
		t.Fatalf("errors %q do not mention %q", re.Errors, substr)
	}
}

func containsFold(msgs []string, substr string) bool {
	for _, m := range msgs {
		if strings.Contains(strings.ToLower(m), strings.ToLower(substr)) {
			return true
		}
	}
	return false
}

// runCLI runs the coffer CLI against addr with token and returns its exit
// code, stdout and stderr. VAULT_* from the test's environment are replaced.
func runCLI(t *testing.T, addr, token, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cofferBin, args...)
	env := []string{}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "VAULT_") {
			env = append(env, e)
		}
	}
	env = append(env, "VAULT_ADDR=http://"+addr, "VAULT_MAX_RETRIES=0")
	if token != "" {
		env = append(env, "VAULT_TOKEN="+token)
	}
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run coffer %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}
