package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/nats-io/nats-server/v2/server"
)

// SetOptions describes a replication set `coffer bench` starts itself: a
// primary and its performance secondaries, each a `coffer server` process
// with its own storage, on loopback, the primary's NATS embedded (or, with
// NATSApart, one JetStream server in the bench's process, as production
// runs an external NATS).
type SetOptions struct {
	// Bin is the coffer binary.
	Bin string
	// Dir holds the servers' configurations, storage and NATS store.
	Dir string
	// Storage is "inmem" or "bolt" (fsync on every commit).
	Storage string
	// Secondaries is how many secondaries to activate; with Replication
	// false the primary runs alone (replication off).
	Secondaries int
	Replication bool
	// Log receives the servers' output (nil: discarded).
	Log io.Writer
	// ProfileDir, when set, receives a CPU profile of each server,
	// <name>.pprof, written when the set is closed, and the heap profile
	// at its largest live heap, <name>.heap.pprof.
	ProfileDir string
	// Pin runs the primary on CPU 0 and every other server on CPU 1
	// (taskset): on a 2-core machine the primary then has a core of its own
	// with replication on as off, so its throughput shows its own cost.
	Pin bool
	// NATSApart runs the set's NATS server outside the primary's process
	// (in this one): the primary's CPU is then its own, not the server's.
	NATSApart bool
}

// label names the set's storage and NATS in the bench's table.
func (o SetOptions) label() string {
	if o.NATSApart {
		return o.Storage + ", NATS apart"
	}
	return o.Storage
}

// dirName names the set's directory (and its profiles).
func (o SetOptions) dirName() string {
	if o.NATSApart {
		return o.Storage + "-natsapart"
	}
	return o.Storage
}

// Node is one running server of a set.
type Node struct {
	Name, Addr string
	// Client carries a token good on this node: root on the primary, a
	// userpass login on a secondary (tokens are local to a cluster).
	Client *api.Client
	cmd    *exec.Cmd
	exited chan struct{}
}

// PID is the server's process id (for its CPU time).
func (n *Node) PID() int { return n.cmd.Process.Pid }

// Pause and Resume freeze and thaw the process (a secondary's backlog).
func (n *Node) Pause() error  { return n.cmd.Process.Signal(syscall.SIGSTOP) }
func (n *Node) Resume() error { return n.cmd.Process.Signal(syscall.SIGCONT) }

// Set is a running replication set.
type Set struct {
	Primary     *Node
	Secondaries []*Node
	nodes       []*Node
	nats        *server.Server // NATSApart's server; nil when embedded
	logMu       sync.Mutex     // the servers' lines on Options.Log, one at a time
	// given holds the addresses handed out so far: the kernel may give a
	// port just released by freeAddr again, to the next node of the set.
	given map[string]bool
}

// benchPolicy lets the bench token write and read the kv-v2 mount secret/
// and encrypt and decrypt with transit/.
const benchPolicy = `path "secret/*" { capabilities = ["create", "update", "read", "list", "delete"] }
path "transit/encrypt/*" { capabilities = ["update"] }
path "transit/decrypt/*" { capabilities = ["update"] }`

// StartSet starts the primary, enables replication and activates the
// secondaries; Close stops them all.
func StartSet(ctx context.Context, o SetOptions) (*Set, error) {
	s := &Set{given: map[string]bool{}}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	keyFile := filepath.Join(o.Dir, "seal.key")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		return nil, err
	}
	bus, secBus, err := s.busConfigs(ctx, o)
	if err != nil {
		s.Close()
		return nil, err
	}
	p, err := s.start(ctx, o, "primary", keyFile, bus)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.Primary = p
	if err := setupPrimary(p.Client, o.Replication); err != nil {
		s.Close()
		return nil, err
	}
	for i := range o.Secondaries {
		n, err := s.start(ctx, o, fmt.Sprintf("secondary%d", i+1), keyFile, secBus)
		if err == nil {
			err = activate(ctx, p.Client, n, fmt.Sprintf("bench%d", i+1))
		}
		if err != nil {
			s.Close()
			return nil, err
		}
		s.Secondaries = append(s.Secondaries, n)
	}
	return s, nil
}

// busConfigs are the bus blocks of the primary's and the secondaries'
// configurations: the primary's NATS embedded, or (NATSApart) a server
// started here that every node reaches by URL.
func (s *Set) busConfigs(ctx context.Context, o SetOptions) (primary, secondary string, err error) {
	storeDir := filepath.Join(o.Dir, "nats")
	// The stream holds the largest backlog measured (1,000,000 writes of
	// 1 KiB is more than the default 1 GiB): a catch-up measures streaming,
	// not a merkle sync.
	const repl = "replication {\n  wal_stream_max_bytes = \"8GiB\"\n}\n"
	if o.NATSApart {
		if s.nats, err = startAnchorServer(ctx, anchorServerOptions("bench-nats", "", storeDir)); err != nil {
			return "", "", err
		}
		bus := fmt.Sprintf("bus {\n  url = %q\n}\n", s.nats.ClientURL())
		return bus + repl, bus, nil
	}
	natsAddr, err := s.freeAddr()
	if err != nil {
		return "", "", err
	}
	primary = fmt.Sprintf("bus {\n  embedded = true\n  listen = %q\n  store_dir = %q\n}\n", natsAddr, storeDir) + repl
	secondary = fmt.Sprintf("bus {\n  url = \"nats://%s\"\n  nkey_seed_file = %q\n}\n", natsAddr, filepath.Join(storeDir, "auth", "client.nk"))
	return primary, secondary, nil
}

// setupPrimary mounts kv-v2 at secret/, writes the bench policy and user,
// and enables replication.
func setupPrimary(c *api.Client, replication bool) error {
	if err := c.Sys().Mount("secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		return fmt.Errorf("mount secret/: %w", err)
	}
	if err := c.Sys().PutPolicy("bench", benchPolicy); err != nil {
		return err
	}
	if err := c.Sys().EnableAuthWithOptions("userpass", &api.EnableAuthOptions{Type: "userpass"}); err != nil {
		return err
	}
	if _, err := c.Logical().Write("auth/userpass/users/bench", map[string]any{"password": "bench", "token_policies": "bench"}); err != nil {
		return err
	}
	if !replication {
		return nil
	}
	_, err := c.Logical().Write("sys/replication/performance/primary/enable", nil)
	return err
}

// activate makes n a secondary of the primary and logs in on it.
func activate(ctx context.Context, primary *api.Client, n *Node, id string) error {
	s, err := primary.Logical().Write("sys/replication/performance/primary/secondary-token", map[string]any{"id": id})
	if err != nil || s == nil || s.WrapInfo == nil {
		return fmt.Errorf("secondary-token %s: %v", id, err)
	}
	if _, err := n.Client.Logical().Write("sys/replication/performance/secondary/enable", map[string]any{"token": s.WrapInfo.Token}); err != nil {
		return fmt.Errorf("activate %s: %w", n.Name, err)
	}
	return poll(ctx, 60*time.Second, func() error {
		s, err := n.Client.Logical().Write("auth/userpass/login/bench", map[string]any{"password": "bench"})
		if err != nil {
			return err
		}
		n.Client.SetToken(s.Auth.ClientToken)
		return nil
	})
}

// start writes a node's configuration, runs it, initializes it and waits
// until it is unsealed.
func (s *Set) start(ctx context.Context, o SetOptions, name, keyFile, bus string) (*Node, error) {
	dir := filepath.Join(o.Dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	addr, err := s.freeAddr()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	switch o.Storage {
	case "inmem":
		b.WriteString("storage \"inmem\" {}\n")
	case "bolt":
		fmt.Fprintf(&b, "storage \"bolt\" {\n  path = %q\n}\n", filepath.Join(dir, "coffer.db"))
	default:
		return nil, fmt.Errorf("storage %q: use inmem or bolt", o.Storage)
	}
	fmt.Fprintf(&b, "listener \"tcp\" {\n  address = %q\n  tls_disable = true\n}\nseal \"static\" {\n  key_file = %q\n}\n", addr, keyFile)
	fmt.Fprintf(&b, "api_addr = \"http://%s\"\ncluster_name = %q\nlog_level = \"warn\"\n%s", addr, name, bus)
	cfg := filepath.Join(dir, "coffer.hcl")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	args := []string{"server", "-config=" + cfg}
	if o.ProfileDir != "" {
		base := filepath.Join(o.ProfileDir, filepath.Base(o.Dir)+"-"+name)
		args = append(args, "-cpuprofile="+base+".pprof", "-memprofile="+base+".heap.pprof")
	}
	cpu := ""
	if o.Pin {
		cpu = "1"
		if name == "primary" {
			cpu = "0"
		}
	}
	cmd := serverCmd(o.Bin, args, cpu)
	n := &Node{Name: name, Addr: addr, cmd: cmd, exited: make(chan struct{})}
	if o.Log == nil || o.Log == io.Discard {
		n.cmd.Stdout, n.cmd.Stderr = o.Log, o.Log
	} else {
		out := &prefixed{mu: &s.logMu, w: o.Log, prefix: []byte(name + " ")}
		n.cmd.Stdout, n.cmd.Stderr = out, out
	}
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { _ = n.cmd.Wait(); close(n.exited) }()
	s.nodes = append(s.nodes, n)
	if n.Client, err = newClient("http://"+addr, ""); err != nil {
		return nil, err
	}
	if err := poll(ctx, 30*time.Second, func() error { return healthCode(addr, -1) }); err != nil {
		return nil, fmt.Errorf("%s does not answer: %w", name, err)
	}
	res, err := n.Client.Sys().Init(&api.InitRequest{RecoveryShares: 1, RecoveryThreshold: 1})
	if err != nil {
		return nil, fmt.Errorf("init %s: %w", name, err)
	}
	n.Client.SetToken(res.RootToken)
	if err := poll(ctx, 60*time.Second, func() error { return healthCode(addr, http.StatusOK) }); err != nil {
		return nil, fmt.Errorf("%s is not unsealed: %w", name, err)
	}
	return n, nil
}

// serverCmd is the command of one server: bin with args, on CPU cpu (""
// for any; taskset execs, so the pid is the server's), in a process group
// of its own. A server frozen for a catch-up (SIGSTOP) must stay frozen: in
// the bench's process group it would get SIGHUP and SIGCONT from the kernel
// should that group become orphaned (the bench run in the background of a
// shell that exits), and die of the SIGHUP; the bench stops its servers
// itself (Close), also on SIGINT and SIGTERM.
func serverCmd(bin string, args []string, cpu string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	if cpu != "" {
		cmd = exec.Command("taskset", append([]string{"-c", cpu, bin}, args...)...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// Close stops every server (SIGTERM, then SIGKILL after 10 s).
func (s *Set) Close() {
	for _, n := range s.nodes {
		_ = n.cmd.Process.Signal(syscall.SIGCONT)
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, n := range s.nodes {
		select {
		case <-n.exited:
		case <-time.After(10 * time.Second):
			_ = n.cmd.Process.Kill()
			<-n.exited
		}
	}
	stopAnchorServer(s.nats)
}

// newClient is a vault/api client for the API address addr (with its
// scheme) without retries, for a set's server or a running cluster.
func newClient(addr, token string) (*api.Client, error) {
	cfg := api.DefaultConfig()
	cfg.Address = addr
	cfg.MaxRetries = 0
	cfg.Timeout = 30 * time.Second
	cfg.HttpClient.Transport.(*http.Transport).MaxIdleConnsPerHost = 256
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", addr, err)
	}
	c.SetToken(token)
	return c, nil
}

// freeAddr returns a loopback address free now and not given to another
// node of the set.
func (s *Set) freeAddr() (string, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		_ = l.Close()
		if !s.given[addr] {
			s.given[addr] = true
			return addr, nil
		}
	}
	return "", errors.New("no free loopback port found that the set has not used: free some ports and run again")
}

// healthCode is nil when sys/health answers want (-1: any code).
func healthCode(addr string, want int) error {
	resp, err := http.Get("http://" + addr + "/v1/sys/health")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if want >= 0 && resp.StatusCode != want {
		return fmt.Errorf("sys/health %d", resp.StatusCode)
	}
	return nil
}

// poll calls f until it returns nil, ctx ends or within passes.
func poll(ctx context.Context, within time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
