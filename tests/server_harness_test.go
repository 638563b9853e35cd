package tests

// Starting and stopping coffer server processes: config-file nodes that keep
// their storage and address across restarts, dev servers, signals, a process's
// output, and the bolt file of a stopped server.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/cofferhq/coffer/storage/bolt"
	"github.com/hashicorp/vault/api"
)

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
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
	// Storage, when set, replaces the bolt storage block (a whole block).
	Storage string
	// Extra is appended to the file as it is (top-level keys).
	Extra string
}

// node is one data directory and config file; it can be started and
// stopped many times, keeping its storage and address.
type node struct {
	t       testing.TB
	dir     string
	addr    string
	cfgPath string
	dbPath  string
}

// newNode writes a config file for cfg into a fresh t.TempDir().
func newNode(t testing.TB, cfg serverConfig) *node {
	t.Helper()
	n := &node{t: t, dir: t.TempDir(), addr: testutil.FreeAddr(t)}
	n.dbPath = filepath.Join(n.dir, "coffer.db")
	n.cfgPath = filepath.Join(n.dir, "coffer.hcl")
	name := cfg.ClusterName
	if name == "" {
		name = "dc1"
	}
	var b strings.Builder
	if cfg.Storage != "" {
		b.WriteString(cfg.Storage + "\n")
	} else {
		fmt.Fprintf(&b, "storage \"bolt\" {\n  path = %q\n}\n", n.dbPath)
	}
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
	b.WriteString(cfg.Extra)
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

// restart stops p (asserting a clean exit) and starts n again.
func (n *node) restart(p *proc) *proc {
	n.t.Helper()
	if code := p.stop(); code != 0 {
		n.t.Fatalf("coffer exited %d on SIGTERM, want 0; output:\n%s", code, p.out.String())
	}
	return n.start()
}

// proc is one running coffer process.
type proc struct {
	t    testing.TB
	addr string
	cmd  *exec.Cmd
	out  *testutil.SyncBuffer
	done chan struct{}
	err  error // set before done is closed
}

// startProc starts coffer with args and waits until addr answers
// sys/health with any status. On test failure the output is logged; at
// cleanup a still-running process is stopped.
func startProc(t testing.TB, addr string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, addr: addr, out: &testutil.SyncBuffer{}, done: make(chan struct{})}
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

// signal sends sig to p's process.
func signal(t testing.TB, p *proc, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(p.cmd.Process.Pid, sig); err != nil {
		t.Fatalf("kill -%d %d: %v", sig, p.cmd.Process.Pid, err)
	}
}

// sigkill kills p with SIGKILL and waits for the exit.
func sigkill(t testing.TB, p *proc) {
	t.Helper()
	signal(t, p, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		t.Fatalf("coffer (pid %d) did not exit within %s of SIGKILL", p.cmd.Process.Pid, stopTimeout)
	}
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

// devServer starts `coffer server -dev` with the root token "root" on free
// ports and returns it with a root client once it serves.
func devServer(t *testing.T) (*proc, *api.Client) {
	t.Helper()
	addr := testutil.FreeAddr(t)
	p := startProc(t, addr, "server", "-dev", "-dev-root-token-id=root",
		"-dev-listen-address="+addr, "-dev-nats-listen="+testutil.FreeAddr(t))
	waitHealthCode(t, addr, 200)
	return p, client(t, addr, "root")
}

// staticServer starts a config-file server (bolt storage, static seal),
// initializes it, mounts kv version 2 at secret/ and returns the node, the
// process and the root token.
func staticServer(t *testing.T) (*node, *proc, string) {
	t.Helper()
	n := newNode(t, serverConfig{StaticKey: randomBytes(t, 32)})
	p := n.start()
	res, err := client(t, n.addr, "").Sys().Init(&api.InitRequest{RecoveryShares: 1, RecoveryThreshold: 1})
	if err != nil {
		t.Fatalf("sys/init with the static seal: %v", err)
	}
	waitHealthCode(t, n.addr, 200)
	root := client(t, n.addr, res.RootToken)
	if err := root.Sys().Mount("secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatalf("mount kv-v2 at secret/: %v", err)
	}
	return n, p, res.RootToken
}

// mangleStoredValue opens the bolt file of a stopped server, passes the value
// stored at key to edit and stores what it returns.
func mangleStoredValue(t *testing.T, dbPath, key string, edit func([]byte) []byte) {
	t.Helper()
	b, err := bolt.Open(bolt.Options{Path: dbPath, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open %s: %v", dbPath, err)
	}
	defer b.Close()
	ctx := context.Background()
	e, err := b.Get(ctx, key)
	if err != nil || e == nil {
		t.Fatalf("get %s from %s: %v, %v", key, dbPath, e, err)
	}
	e.Value = edit(e.Value)
	if err := b.Put(ctx, e); err != nil {
		t.Fatalf("put %s into %s: %v", key, dbPath, err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("close %s: %v", dbPath, err)
	}
}

// storedKeys lists the keys under prefix (one level) in a stopped server's bolt file.
func storedKeys(t *testing.T, dbPath, prefix string) []string {
	t.Helper()
	b, err := bolt.Open(bolt.Options{Path: dbPath, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open %s: %v", dbPath, err)
	}
	defer b.Close()
	keys, err := b.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("list %s in %s: %v", prefix, dbPath, err)
	}
	return keys
}
