package security

// Harness of the WAL shipping attack tests (ship_*_test.go): coffer dev
// servers as real processes, vault/api clients, and a stranger on the
// primary's NATS with nats.go only. Every name here starts with "ship" so as
// not to collide with the other topics of this package.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Deadlines of the ship tests: generous, a passing run never waits for them.
const (
	shipStartTimeout = 60 * time.Second
	shipWaitTimeout  = 60 * time.Second
)

// shipBuild builds the coffer binary into a directory of the test.
func shipBuild(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "coffer")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/coffer")
	cmd.Dir = "../.." // the module root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/coffer: %v\n%s", err, out)
	}
	return bin
}

func shipFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// shipOutput collects a process's output.
type shipOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *shipOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *shipOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// shipDev is one `coffer server -dev` process with its embedded NATS.
type shipDev struct {
	addr, natsAddr string
	out            *shipOutput
}

// shipDevServer starts a dev server with root token rootID on free ports and
// waits until it is unsealed. It is stopped at cleanup; on failure its
// output is logged.
func shipDevServer(t *testing.T, bin, rootID string) *shipDev {
	t.Helper()
	d := &shipDev{addr: shipFreeAddr(t), natsAddr: shipFreeAddr(t), out: &shipOutput{}}
	cmd := exec.Command(bin, "server", "-dev", "-dev-root-token-id="+rootID,
		"-dev-listen-address="+d.addr, "-dev-nats-listen="+d.natsAddr)
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("coffer dev server %s output:\n%s", d.addr, d.out.String())
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	hc := &http.Client{Timeout: 2 * time.Second}
	testutil.Eventually(t, shipStartTimeout, "dev server on "+d.addr+" unsealed", func() error {
		select {
		case <-done:
			t.Fatalf("coffer exited before serving; output:\n%s", d.out.String())
		default:
		}
		resp, err := hc.Get("http://" + d.addr + "/v1/sys/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("sys/health %d", resp.StatusCode)
		}
		return nil
	})
	return d
}

// shipClient is a vault/api client of addr with token, without retries.
func shipClient(t *testing.T, addr, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = "http://" + addr
	cfg.MaxRetries = 0
	cfg.Timeout = 10 * time.Second
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// shipStatus reads sys/replication/performance/status without a token, as
// anyone may.
func shipStatus(t *testing.T, addr string) map[string]any {
	t.Helper()
	s, err := shipClient(t, addr, "").Logical().Read("sys/replication/performance/status")
	if err != nil || s == nil {
		t.Fatalf("sys/replication/performance/status on %s: %v", addr, err)
	}
	return s.Data
}

func shipPut(t *testing.T, c *api.Client, key, v string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.KVv2("secret").Put(ctx, key, map[string]any{"v": v}); err != nil {
		t.Fatalf("kv put secret/%s on %s: %v", key, c.Address(), err)
	}
}

// shipSnapshot reads every key of the kv-v2 mount secret/ as key -> v.
func shipSnapshot(c *api.Client) (map[string]string, error) {
	s, err := c.Logical().List("secret/metadata")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	if s == nil {
		return out, nil
	}
	keys, _ := s.Data["keys"].([]any)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, k := range keys {
		key := fmt.Sprint(k)
		sec, err := c.KVv2("secret").Get(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("get %s: %w", key, err)
		}
		out[key] = fmt.Sprint(sec.Data["v"])
	}
	return out, nil
}

// shipConverged waits until the secondary serves exactly the primary's
// secret/ and its replication state is stream-wals.
func shipConverged(t *testing.T, P, S *api.Client, secAddr string) {
	t.Helper()
	want, err := shipSnapshot(P)
	if err != nil {
		t.Fatalf("read the primary: %v", err)
	}
	testutil.Eventually(t, shipWaitTimeout, "the secondary serves the primary's data and streams again", func() error {
		got, err := shipSnapshot(S)
		if err != nil {
			return err
		}
		var diff []string
		for k, v := range want {
			if got[k] != v {
				diff = append(diff, fmt.Sprintf("%s=%q (primary %q)", k, got[k], v))
			}
		}
		if len(got) != len(want) || len(diff) > 0 {
			return fmt.Errorf("%d keys, %d on the primary; differing: %v", len(got), len(want), diff)
		}
		if st := shipStatus(t, secAddr)["state"]; st != "stream-wals" {
			return fmt.Errorf("secondary state %v", st)
		}
		return nil
	})
}

// shipStranger is anyone on the primary's NATS: a nats.go client knowing
// only the names docs/replication.md publishes and what status shows.
type shipStranger struct {
	js      jetstream.JetStream
	stream  string
	subject string
}

func shipStrangerOn(t *testing.T, natsAddr, clusterID string) *shipStranger {
	t.Helper()
	nc, err := nats.Connect("nats://"+natsAddr, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect to NATS at %s: %v", natsAddr, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &shipStranger{js: js, stream: "COFFER_WAL_" + strings.ReplaceAll(clusterID, "-", "_"), subject: "coffer." + clusterID + ".wal"}
}

func shipCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// lastSeq is the WAL stream's last sequence (0 when it is missing).
func (s *shipStranger) lastSeq(t *testing.T) (uint64, error) {
	st, err := s.js.Stream(shipCtx(t), s.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, err
	}
	if err != nil {
		t.Fatalf("stream %s: %v", s.stream, err)
	}
	return st.CachedInfo().State.LastSeq, nil
}
