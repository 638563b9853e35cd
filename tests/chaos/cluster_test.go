package chaos

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// retention is the WAL stream's max age in the campaign: a partition
// longer than it leaves a secondary behind messages that are gone.
const retention = 8 * time.Second

// node is one coffer cluster of the set (a single process on bolt).
type node struct {
	name  string
	dir   string
	addr  string
	links []*link // to n1, n2, n3
	p     *proc
	// tmpfs is set when its data directory is a size-limited tmpfs the
	// test mounted (the disk-full fault fills it).
	tmpfs bool
	// clockFile holds the offset of the process's wall clock (the
	// clock-jump fault writes it; outside dir, which may be full).
	clockFile string
}

// moveClock moves n's wall clock to d from the system's (a rename of the
// offset file, so the process never reads half of it) and waits until
// sys/health shows it there.
func (n *node) moveClock(d time.Duration) error {
	tmp := n.clockFile + ".new"
	if err := os.WriteFile(tmp, []byte(d.String()), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, n.clockFile); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		at, err := n.serverTime()
		off := time.Until(at)
		if err == nil && off > d-2*time.Second && off < d+2*time.Second {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: its clock is %s off, not %s (%v)", n.name, off.Round(time.Second), d, err)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, with a deadline
	}
}

// serverTime is the wall clock of n's process, from sys/health (in seconds).
func (n *node) serverTime() (time.Time, error) {
	// Every status code: a secondary or a standby answers with its own.
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + n.addr + "/v1/sys/health")
	if err != nil {
		return time.Time{}, err
	}
	defer resp.Body.Close()
	var h struct {
		ServerTimeUTC int64 `json:"server_time_utc"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || h.ServerTimeUTC == 0 {
		return time.Time{}, fmt.Errorf("sys/health of %s: %d, no server time (%v)", n.name, resp.StatusCode, err)
	}
	return time.Unix(h.ServerTimeUTC, 0), nil
}

// busURL names the node's links to n1..n3.
func (n *node) busURL() string {
	var urls []string
	for _, l := range n.links {
		urls = append(urls, "nats://"+l.addr())
	}
	return strings.Join(urls, ",")
}

// set is the campaign's replication set: NATS nodes n1..n3, the primary
// dc1, the performance secondary dc2 and the DR secondary dr1.
type set struct {
	t     testing.TB
	nats  []*proc
	natsC []string // client addresses of n1..n3
	nodes map[string]*node
	root  *api.Client // root on dc1
	user  *api.Client // user chaos on dc2 (its own token: writes are forwarded)
}

func freeAddr(t testing.TB) string { return testutil.FreeAddr(t) }

// startNATS starts the three-node JetStream cluster and waits until it
// has a meta leader.
func (s *set) startNATS() {
	t := s.t
	var routes []string
	clientAddrs := make([]string, 3)
	routeAddrs := make([]string, 3)
	for i := range 3 {
		clientAddrs[i], routeAddrs[i] = freeAddr(t), freeAddr(t)
		routes = append(routes, "nats-route://"+routeAddrs[i])
	}
	s.natsC = clientAddrs
	for i := range 3 {
		dir := t.TempDir()
		host, port, _ := net.SplitHostPort(clientAddrs[i])
		conf := fmt.Sprintf("host: %s\nport: %s\nserver_name: n%d\njetstream { store_dir: %q }\ncluster {\n  name: chaos\n  no_advertise: true\n  listen: %s\n  routes: [%s]\n}\n",
			host, port, i+1, filepath.Join(dir, "js"), routeAddrs[i], strings.Join(routes, ", "))
		cf := filepath.Join(dir, "nats.conf")
		writeFile(t, cf, []byte(conf))
		addr := clientAddrs[i]
		s.nats = append(s.nats, newProc(t, fmt.Sprintf("n%d", i+1), natsBin, []string{"-c", cf}, func() error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return err
			}
			return c.Close()
		}))
	}
	for _, p := range s.nats {
		p.start()
	}
	testutil.Eventually(t, 60*time.Second, "the NATS cluster has JetStream", func() error {
		return jsReady(strings.Join(clientURLs(s.natsC), ","))
	})
}

func clientURLs(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		out = append(out, "nats://"+a)
	}
	return out
}

// jsReady is nil once JetStream answers account info through url.
func jsReady(url string) error {
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// addNode writes the config of coffer cluster name and starts it.
func (s *set) addNode(name string, key []byte, tmpfs bool) *node {
	t := s.t
	n := &node{name: name, dir: t.TempDir(), addr: freeAddr(t), clockFile: filepath.Join(t.TempDir(), "clock-offset")}
	if tmpfs {
		n.tmpfs = mountTmpfs(t, n.dir)
	}
	for _, a := range s.natsC {
		n.links = append(n.links, newLink(t, a))
	}
	keyPath := filepath.Join(n.dir, "unseal.key")
	writeFile(t, keyPath, key)
	cfg := fmt.Sprintf(`storage "bolt" {
  path = %q
}
listener "tcp" {
  address     = %q
  tls_disable = true
}
seal "static" {
  key_file = %q
}
api_addr     = "http://%s"
cluster_name = %q
bus {
  url = %q
}
replication {
  wal_stream_max_age            = %q
  wal_stream_replicas           = 3
  best_effort_wal_wait_duration = "2s"
}
`, filepath.Join(n.dir, "coffer.db"), n.addr, keyPath, n.addr, name, n.busURL(), retention.String())
	cf := filepath.Join(n.dir, "coffer.hcl")
	writeFile(t, cf, []byte(cfg))
	addr := n.addr
	n.p = newProc(t, name, cofferBin, []string{"server", "-config=" + cf, "-test-clock-offset-file=" + n.clockFile}, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	n.p.start()
	s.nodes[name] = n
	return n
}

// mountTmpfs mounts a 96 MiB tmpfs on dir; false (logged) when this
// machine does not let the test mount (no privileges): the disk-full fault
// is then not scheduled.
func mountTmpfs(t testing.TB, dir string) bool {
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Logf("cannot mount a tmpfs for the disk-full fault (%v: %s): it is not scheduled", err, out)
		return false
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s", dir, err, out)
		}
	})
	return true
}

// client returns a vault/api client of addr with token.
func client(t testing.TB, addr, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = "http://" + addr
	cfg.Timeout = 5 * time.Second
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// newSet starts NATS, dc1 (initialised, kv-v2 at chaos/ keeping every
// version, the user chaos), enables performance and DR replication and
// activates dc2 and dr1.
func newSet(t testing.TB) *set {
	s := &set{t: t, nodes: map[string]*node{}}
	s.startNATS()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	dc1 := s.addNode("dc1", key, false)
	init, err := client(t, dc1.addr, "").Sys().Init(&api.InitRequest{RecoveryShares: 1, RecoveryThreshold: 1})
	if err != nil {
		t.Fatalf("sys/init on dc1: %v", err)
	}
	testutil.Eventually(t, 60*time.Second, "dc1 unsealed", healthy(dc1.addr))
	s.root = client(t, dc1.addr, init.RootToken)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("mount chaos/", s.root.Sys().Mount("chaos", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}))
	_, err = s.root.Logical().Write("chaos/config", map[string]any{"max_versions": 2 * putsPerKey}) // every version kept: the checker reads them all
	must("chaos/config", err)
	must("policy", s.root.Sys().PutPolicy("chaos", `path "chaos/*" { capabilities = ["create", "read", "update", "delete", "list"] }`))
	must("userpass", s.root.Sys().EnableAuthWithOptions("userpass", &api.EnableAuthOptions{Type: "userpass"}))
	_, err = s.root.Logical().Write("auth/userpass/users/chaos", map[string]any{"password": "pw", "token_policies": "chaos", "token_ttl": "24h"})
	must("user chaos", err)
	_, err = s.root.Logical().Write("sys/replication/performance/primary/enable", nil)
	must("performance primary", err)
	_, err = s.root.Logical().Write("sys/replication/dr/primary/enable", nil)
	must("DR primary", err)
	for name, kind := range map[string]string{"dc2": "performance", "dr1": "dr"} {
		sec, err := s.root.Logical().Write("sys/replication/"+kind+"/primary/secondary-token", map[string]any{"id": name})
		if err != nil || sec == nil || sec.WrapInfo == nil {
			t.Fatalf("%s token for %s: %v", kind, name, err)
		}
		n := s.addNode(name, key, true)
		ini, err := client(t, n.addr, "").Sys().Init(&api.InitRequest{RecoveryShares: 1, RecoveryThreshold: 1})
		if err != nil {
			t.Fatalf("sys/init on %s: %v", name, err)
		}
		testutil.Eventually(t, 60*time.Second, name+" unsealed", healthy(n.addr))
		// bus_url: the secondary reaches NATS through its own links (the
		// token names the primary's), so a partition cuts it alone.
		_, err = client(t, n.addr, ini.RootToken).Logical().Write("sys/replication/"+kind+"/secondary/enable",
			map[string]any{"token": sec.WrapInfo.Token, "bus_url": n.busURL()})
		must("activate "+name, err)
	}
	dc2 := s.nodes["dc2"]
	testutil.Eventually(t, 60*time.Second, "login on dc2", func() error {
		sec, err := client(t, dc2.addr, "").Logical().Write("auth/userpass/login/chaos", map[string]any{"password": "pw"})
		if err != nil {
			return err
		}
		s.user = client(t, dc2.addr, sec.Auth.ClientToken)
		return nil
	})
	return s
}

// status reads sys/replication/<kind>/status of addr (unauthenticated).
func status(t testing.TB, addr, kind string) (map[string]any, error) {
	s, err := client(t, addr, "").Logical().Read("sys/replication/" + kind + "/status")
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("no status")
	}
	return s.Data, nil
}

// fill writes a ballast file into dir until the file system is full;
// it returns the ballast's path.
func fill(dir string) (string, error) {
	path := filepath.Join(dir, "ballast")
	f, err := os.Create(path)
	if err != nil {
		return path, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			return path, nil // ENOSPC: full
		}
	}
}

// keepLogs writes every process's output to a directory that outlives the
// test (a failing run's evidence) and returns its path.
func (s *set) keepLogs(seed uint64) string {
	dir, err := os.MkdirTemp("", fmt.Sprintf("coffer-chaos-%d-", seed))
	if err != nil {
		return err.Error()
	}
	procs := append([]*proc(nil), s.nats...)
	for _, n := range s.nodes {
		procs = append(procs, n.p)
	}
	for _, p := range procs {
		_ = os.WriteFile(filepath.Join(dir, p.name+".log"), []byte(p.out.String()), 0o600)
	}
	return dir
}
