// Command coffer-compose-setup is the one-shot setup of the compose topology
// in deploy/compose (docs/operations.md). The images are FROM scratch, with no
// shell, so this small static program does what a setup script would:
//
//	coffer-compose-setup keygen FILE   write a random 32-byte static seal key (64 hex
//	                                   characters) to FILE unless it exists
//	coffer-compose-setup [run]         initialize dc1, dc2, dc3 and dr1 when needed, seed
//	                                   the primary, enable it (performance and DR), activate
//	                                   dc2 and dc3 as its performance secondaries and dr1 as
//	                                   its DR secondary, check that a write replicates, exit 0
//	coffer-compose-setup show          print what run wrote to the shared directory
//
// run is idempotent: on a topology that is already set up it only checks that
// it replicates. It writes to the shared directory (COFFER_SETUP_DIR,
// /shared by default): root-token (dc1's root token), recovery-key (dc1's
// recovery key: it also generates a DR operation token on dr1, whose recovery
// key check is dc1's once activated), admin-password (the userpass user "admin", policy "admin",
// which logs in on every cluster: tokens are local to a cluster, and a
// secondary's own root token is wiped by its activation).
//
// dc1 is a cluster of two nodes (dc1a, dc1b) on Consul. The setup reaches it
// at http://dc1:8200 (COFFER_PRIMARY_ADDR), a network alias of both nodes,
// so it works through whichever node answers: a standby forwards to the
// active node, and sys/init answers 503 until a node is active (retried);
// then it waits until both nodes (COFFER_PRIMARY_NODES) serve. It activates the secondaries with the same address as primary_api_addr
// (COFFER_PRIMARY_API_ADDR), so that what they tell clients survives a
// takeover in dc1.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	pathEnable      = "sys/replication/performance/primary/enable"
	pathToken       = "sys/replication/performance/primary/secondary-token"
	pathRevoke      = "sys/replication/performance/primary/revoke-secondary"
	pathSecEnable   = "sys/replication/performance/secondary/enable"
	pathPerfStatus  = "sys/replication/performance/status"
	adminPolicyName = "admin"
	adminPolicy     = `path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }`
)

func main() {
	args := os.Args[1:]
	cmd := "run"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "keygen":
		if len(args) != 1 {
			err = errors.New("usage: coffer-compose-setup keygen FILE")
			break
		}
		err = keygen(args[0])
	case "run":
		err = run()
	case "show":
		err = show()
	default:
		err = fmt.Errorf("unknown command %q: want keygen, run or show", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "coffer-compose-setup:", err)
		os.Exit(1)
	}
}

// keygen writes a fresh static seal key unless the file exists.
func keygen(file string) error {
	if _, err := os.Stat(file); err == nil {
		fmt.Printf("static seal key %s exists: kept\n", file)
		return nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	if err := writeFile(file, hex.EncodeToString(key)); err != nil {
		return err
	}
	fmt.Printf("static seal key written to %s (shared by dc1, dc2 and dc3)\n", file)
	return nil
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func sharedDir() string { return env("COFFER_SETUP_DIR", "/shared") }

// primaryAPIAddr is the address of dc1 the secondaries keep as the primary's
// (secondary/enable's primary_api_addr: the address their answers tell a
// client to send a write to). Without it a secondary would keep the address
// the token names, the api_addr of the node that was active when the token
// was made, which a takeover leaves dead or standby. http://dc1:8200, the
// alias of both nodes, reaches whichever is up; a standby forwards.
func primaryAPIAddr() string { return env("COFFER_PRIMARY_API_ADDR", "http://dc1:8200") }

func writeFile(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

func show() error {
	for _, name := range []string{"root-token", "recovery-key", "admin-password"} {
		v, err := readFile(filepath.Join(sharedDir(), name))
		if err != nil {
			return fmt.Errorf("%v: has the setup service run?", err)
		}
		fmt.Printf("%-15s %s\n", name, v)
	}
	return nil
}

type cluster struct {
	name string
	addr string
}

func (c cluster) client(token string) (*api.Client, error) {
	cfg := api.DefaultConfig()
	cfg.Address = c.addr
	cfg.Timeout = 15 * time.Second
	cfg.MaxRetries = 0
	cl, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	cl.SetToken(token)
	return cl, nil
}

// stop is an error retry does not retry.
type stop struct{ error }

// retry calls f until it succeeds, returns a stop, or the deadline passes.
func retry(what string, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for attempt := 0; ; attempt++ {
		if last = f(); last == nil {
			return nil
		}
		if s, ok := last.(stop); ok {
			return s.error
		}
		if attempt%10 == 9 {
			fmt.Printf("  still waiting: %s: %v\n", what, last)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: gave up after %s: %w", what, timeout, last)
		}
		time.Sleep(time.Second) // polling interval, not synchronisation
	}
}

// health returns the sys/health HTTP status code.
func health(c cluster) (int, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(c.addr + "/v1/sys/health")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func waitHealth(c cluster, want ...int) error {
	return retry(c.name+" /v1/sys/health", 5*time.Minute, func() error {
		code, err := health(c)
		if err != nil {
			return err
		}
		for _, w := range want {
			if code == w {
				return nil
			}
		}
		return fmt.Errorf("sys/health answered %d", code)
	})
}

// Health codes of a node that answers: 200 active, 501 not initialized, 503
// sealed (auto-unseals shortly), 472 a DR secondary (dr1 once activated),
// 473 and 429 a standby of a cluster of several nodes (dc1a or dc1b).
var (
	healthAnswers = []int{200, 501, 503, 472, 473, 429}
	healthServing = []int{200, 472, 473, 429}
)

// initialize runs sys/init on c when it is not initialized yet and stores
// its root token (and recovery key) under the given file prefix; it returns
// the root token either way. On a cluster of several nodes c.addr may reach
// any node: a standby forwards sys/init to the active node, and answers 503
// while no node is active yet (an election is under way), which is retried.
func initialize(c cluster, prefix string) (string, error) {
	if err := waitHealth(c, healthAnswers...); err != nil {
		return "", err
	}
	tokenFile := filepath.Join(sharedDir(), prefix+"root-token")
	cl, err := c.client("")
	if err != nil {
		return "", err
	}
	inited, err := cl.Sys().InitStatus()
	if err != nil {
		return "", fmt.Errorf("%s sys/init status: %w", c.name, err)
	}
	if !inited {
		var res *api.InitResponse
		err := retry(c.name+" sys/init", 2*time.Minute, func() error {
			var err error
			res, err = cl.Sys().Init(&api.InitRequest{RecoveryShares: 1, RecoveryThreshold: 1})
			if err != nil && statusCode(err) != http.StatusServiceUnavailable {
				return stop{err}
			}
			return err
		})
		if err != nil {
			return "", fmt.Errorf("%s sys/init: %w", c.name, err)
		}
		if err := writeFile(tokenFile, res.RootToken); err != nil {
			return "", err
		}
		if len(res.RecoveryKeysB64) > 0 {
			if err := writeFile(filepath.Join(sharedDir(), prefix+"recovery-key"), res.RecoveryKeysB64[0]); err != nil {
				return "", err
			}
		}
		fmt.Printf("%s: initialized (static seal: one recovery key), root token in %s\n", c.name, tokenFile)
	}
	if err := waitHealth(c, healthServing...); err != nil {
		return "", err
	}
	tok, err := readFile(tokenFile)
	if err != nil && inited {
		return "", fmt.Errorf("%s is initialized but its root token is not in %s: %w", c.name, tokenFile, err)
	}
	return tok, err
}

// statusCode is the HTTP status of a vault/api error; 0 for another error.
func statusCode(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func perfStatus(cl *api.Client) (map[string]any, error) {
	s, err := cl.Logical().Read(pathPerfStatus)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, errors.New("empty replication status")
	}
	return s.Data, nil
}

func run() error {
	// dc1 is two nodes; http://dc1:8200 is their shared network alias,
	// which reaches whichever is up (a standby forwards to the active node).
	primary := cluster{"dc1", env("COFFER_PRIMARY_ADDR", "http://dc1:8200")}
	secondaries := []cluster{
		{"dc2", env("COFFER_DC2_ADDR", "http://dc2:8200")},
		{"dc3", env("COFFER_DC3_ADDR", "http://dc3:8200")},
	}
	dr := cluster{"dr1", env("COFFER_DR1_ADDR", "http://dr1:8200")}
	fmt.Println("== waiting for dc1, dc2, dc3, dr1")
	rootTok, err := initialize(primary, "")
	if err != nil {
		return err
	}
	// The alias answers with either node: wait until both serve (the
	// standby unseals by itself once the active node initialized dc1).
	for _, addr := range strings.Split(env("COFFER_PRIMARY_NODES", "http://dc1a:8200,http://dc1b:8200"), ",") {
		if err := waitHealth(cluster{"dc1 node " + addr, addr}, healthServing...); err != nil {
			return err
		}
	}
	P, err := primary.client(rootTok)
	if err != nil {
		return err
	}
	if err := enablePrimary(P); err != nil {
		return err
	}
	adminPW, err := readFile(filepath.Join(sharedDir(), "admin-password"))
	if err != nil {
		return fmt.Errorf("dc1 is set up but the admin password is not in %s: %w", sharedDir(), err)
	}
	for _, s := range secondaries {
		if err := activate(P, s); err != nil {
			return err
		}
	}
	if err := enableDRPrimary(P); err != nil {
		return err
	}
	if err := activateDR(P, dr); err != nil {
		return err
	}
	if err := checkReplicates(P, secondaries, dr, adminPW); err != nil {
		return err
	}
	fmt.Printf("== done: dc1 is the primary, dc2 and dc3 replicate from it, dr1 is its DR secondary\n")
	fmt.Printf("root token of dc1: %s\n", rootTok)
	fmt.Printf("userpass admin password (every cluster): %s\n", adminPW)
	fmt.Printf("(both are in the setup volume, with dc1's recovery key: docker compose run --rm setup show)\n")
	return nil
}

// enablePrimary seeds dc1 and makes it the performance primary unless it is
// one already.
func enablePrimary(P *api.Client) error {
	st, err := perfStatus(P)
	if err != nil {
		return fmt.Errorf("dc1 replication status: %w", err)
	}
	if st["state"] == "fenced" {
		return fmt.Errorf("dc1 is a fenced primary: another cluster (%v) took its replication set over in a failover, so the setup's topology no longer applies; start over with `down -v`, or carry on by hand (docs/operations.md, \"Failover drill\")", st["set_holder"])
	}
	if st["mode"] == "primary" {
		fmt.Println("dc1 is already a performance primary")
		return nil
	}
	if err := seed(P); err != nil {
		return err
	}
	if err := waitJetStream(env("COFFER_SETUP_NATS_URL", "nats://n1:4222,nats://n2:4222,nats://n3:4222")); err != nil {
		return err
	}
	fmt.Println("== enabling performance replication on dc1 (creates the WAL stream, 3 replicas)")
	return retry("dc1 primary/enable", 3*time.Minute, func() error {
		_, err := P.Logical().Write(pathEnable, nil)
		if err == nil {
			return nil
		}
		if st, serr := perfStatus(P); serr == nil && st["mode"] == "primary" {
			return nil
		}
		if strings.Contains(err.Error(), "already enabled") {
			// A failed enable (its stream could not be created) left the
			// primary's state behind without making dc1 a primary: no retry
			// or restart gets out of it.
			return stop{fmt.Errorf("dc1 primary/enable: %w: dc1 is stuck half-enabled after an earlier failed attempt; start over with `down -v`", err)}
		}
		return err
	})
}

// checkReplicates writes secret/compose-setup on dc1 and waits until dc2
// and dc3 serve it and dr1 has applied it.
func checkReplicates(P *api.Client, secondaries []cluster, dr cluster, adminPW string) error {
	fmt.Println("== checking that a write on dc1 reaches dc2, dc3 and dr1")
	probe := time.Now().UTC().Format(time.RFC3339Nano)
	if _, err := P.KVv2("secret").Put(context.Background(), "compose-setup", map[string]any{"at": probe}); err != nil {
		return fmt.Errorf("write secret/compose-setup on dc1: %w", err)
	}
	for _, s := range secondaries {
		if err := retry("secret/compose-setup on "+s.name, 2*time.Minute, func() error {
			cl, err := login(s, adminPW)
			if err != nil {
				return err
			}
			sec, err := cl.KVv2("secret").Get(context.Background(), "compose-setup")
			if err != nil {
				return err
			}
			if sec.Data["at"] != probe {
				return fmt.Errorf("holds %v, want %s", sec.Data["at"], probe)
			}
			return nil
		}); err != nil {
			return err
		}
		fmt.Printf("%s: replicated\n", s.name)
	}
	return drCaughtUp(P, dr)
}

// seed mounts kv-v2 at secret/ and creates the policy and userpass user
// "admin" on a fresh primary (each step only when missing).
func seed(P *api.Client) error {
	fmt.Println("== seeding dc1: kv-v2 at secret/, policy admin, userpass user admin")
	mounts, err := P.Sys().ListMounts()
	if err != nil {
		return fmt.Errorf("dc1 list mounts: %w", err)
	}
	if _, ok := mounts["secret/"]; !ok {
		if err := P.Sys().Mount("secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
			return fmt.Errorf("dc1 mount kv-v2 at secret/: %w", err)
		}
	}
	if err := P.Sys().PutPolicy(adminPolicyName, adminPolicy); err != nil {
		return fmt.Errorf("dc1 put policy admin: %w", err)
	}
	auths, err := P.Sys().ListAuth()
	if err != nil {
		return fmt.Errorf("dc1 list auth methods: %w", err)
	}
	if _, ok := auths["userpass/"]; !ok {
		if err := P.Sys().EnableAuthWithOptions("userpass", &api.EnableAuthOptions{Type: "userpass"}); err != nil {
			return fmt.Errorf("dc1 enable userpass: %w", err)
		}
	}
	pwFile := filepath.Join(sharedDir(), "admin-password")
	pw, err := readFile(pwFile)
	if err != nil {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		pw = hex.EncodeToString(b)
	}
	if _, err := P.Logical().Write("auth/userpass/users/admin", map[string]any{"password": pw, "token_policies": adminPolicyName}); err != nil {
		return fmt.Errorf("dc1 create userpass user admin: %w", err)
	}
	return writeFile(pwFile, pw)
}

func login(c cluster, pw string) (*api.Client, error) {
	cl, err := c.client("")
	if err != nil {
		return nil, err
	}
	s, err := cl.Logical().Write("auth/userpass/login/admin", map[string]any{"password": pw})
	if err != nil {
		return nil, err
	}
	if s == nil || s.Auth == nil {
		return nil, fmt.Errorf("%s: userpass login returned no token", c.name)
	}
	cl.SetToken(s.Auth.ClientToken)
	return cl, nil
}

// activate makes s a secondary of P unless it is one already.
func activate(P *api.Client, s cluster) error {
	tok, err := initialize(s, s.name+"-")
	if err != nil {
		return err
	}
	anon, err := s.client("")
	if err != nil {
		return err
	}
	st, err := perfStatus(anon)
	if err != nil {
		return fmt.Errorf("%s replication status: %w", s.name, err)
	}
	if st["mode"] == "secondary" {
		fmt.Printf("%s is already a performance secondary (id %v)\n", s.name, st["secondary_id"])
		return nil
	}
	S, err := s.client(tok)
	if err != nil {
		return err
	}
	fmt.Printf("== activating %s: secondary-token id=%s on dc1, secondary/enable on %s\n", s.name, s.name, s.name)
	return retry("activate "+s.name, 3*time.Minute, func() error {
		// An earlier attempt whose answer was lost may have succeeded.
		if st, err := perfStatus(anon); err == nil && st["mode"] == "secondary" {
			fmt.Printf("%s: activated\n", s.name)
			return nil
		}
		w, err := P.Logical().Write(pathToken, map[string]any{"id": s.name})
		if err != nil && strings.Contains(err.Error(), "revoke") {
			// A token from an interrupted earlier run: revoke it, try again.
			if _, rerr := P.Logical().Write(pathRevoke, map[string]any{"id": s.name}); rerr != nil {
				return fmt.Errorf("revoke the stale %s token: %v (after %v)", s.name, rerr, err)
			}
			w, err = P.Logical().Write(pathToken, map[string]any{"id": s.name})
		}
		if err != nil {
			return fmt.Errorf("secondary-token id=%s: %w", s.name, err)
		}
		if w == nil || w.WrapInfo == nil || w.WrapInfo.Token == "" {
			return fmt.Errorf("secondary-token id=%s: no wrap_info.token", s.name)
		}
		if _, err := S.Logical().Write(pathSecEnable, map[string]any{"token": w.WrapInfo.Token, "primary_api_addr": primaryAPIAddr()}); err != nil {
			if _, rerr := P.Logical().Write(pathRevoke, map[string]any{"id": s.name}); rerr != nil {
				fmt.Printf("  revoke %s after a failed activation: %v\n", s.name, rerr)
			}
			return fmt.Errorf("secondary/enable on %s: %w", s.name, err)
		}
		fmt.Printf("%s: activated\n", s.name)
		return nil
	})
}

// waitJetStream waits until the JetStream cluster can place a stream with
// three replicas: a probe stream is created and deleted. Without this wait
// primary/enable can run while the cluster still elects its meta leader, time
// out creating the WAL stream, and leave dc1 half-enabled.
func waitJetStream(url string) error {
	fmt.Println("== waiting for the JetStream cluster to place a 3-replica stream")
	nc, err := nats.Connect(url, nats.Name("coffer-compose-setup"), nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	const probe = "COFFER_SETUP_PROBE"
	return retry("JetStream cluster with 3 peers", 3*time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: probe, Subjects: []string{"coffer.setup.probe"}, Replicas: 3, Storage: jetstream.MemoryStorage,
		}); err != nil {
			return err
		}
		if err := js.DeleteStream(ctx, probe); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return err
		}
		return nil
	})
}
