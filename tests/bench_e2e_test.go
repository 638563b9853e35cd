package tests

// HTTP benchmarks of kv version 2 through vault/api against a real coffer
// process: bolt storage (fsync on every commit, the default), static seal.
// They run only with -bench:
//
//	go test ./tests -run '^$' -bench 'KVv2' -benchtime 5s
//
// Each reports ops/s for 1, 16 and 64 concurrent clients, each client its own
// vault/api.Client (its own connection pool).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
)

// benchKeys is how many distinct keys the benchmarks spread over.
const benchKeys = 1024

var benchPayload = map[string]any{"password": "correct horse battery staple", "user": "bench", "n": 42}

// benchServer starts a config-file server with bolt storage and the static
// seal, initializes it, mounts kv-v2 at secret/ and returns its address and
// root token. It stops at cleanup.
func benchServer(b *testing.B) (string, string) {
	b.Helper()
	dir := b.TempDir()
	addr := testutil.FreeAddr(b)
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i*7 + 1)
	}
	keyPath := filepath.Join(dir, "unseal.key")
	if err := os.WriteFile(keyPath, key, 0o600); err != nil {
		b.Fatal(err)
	}
	cfg := fmt.Sprintf("storage \"bolt\" {\n  path = %q\n}\nlistener \"tcp\" {\n  address = %q\n  tls_disable = true\n}\nseal \"static\" {\n  key_file = %q\n}\napi_addr = %q\ncluster_name = \"bench\"\n",
		filepath.Join(dir, "coffer.db"), addr, keyPath, "http://"+addr)
	cfgPath := filepath.Join(dir, "coffer.hcl")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	out := &testutil.SyncBuffer{}
	cmd := exec.Command(cofferBin, "server", "-config="+cfgPath)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-done
		}
		if b.Failed() {
			b.Logf("coffer output:\n%s", out.String())
		}
	})

	hc := &http.Client{Timeout: 2 * time.Second}
	health := func() (int, error) {
		resp, err := hc.Get("http://" + addr + "/v1/sys/health")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	benchWait(b, "coffer answers", done, out, func() error { _, err := health(); return err })

	c := benchClient(b, addr, "")
	res, err := c.Sys().Init(&api.InitRequest{RecoveryShares: 1, RecoveryThreshold: 1})
	if err != nil {
		b.Fatalf("sys/init: %v", err)
	}
	benchWait(b, "coffer unsealed", done, out, func() error {
		code, err := health()
		if err == nil && code != 200 {
			err = fmt.Errorf("health %d", code)
		}
		return err
	})
	root := benchClient(b, addr, res.RootToken)
	if err := root.Sys().Mount("secret", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		b.Fatalf("mount kv-v2: %v", err)
	}
	return addr, res.RootToken
}

// benchWait waits until cond holds, failing at once if coffer exits (the
// cleanup of benchServer logs its output on failure).
func benchWait(b *testing.B, what string, done <-chan struct{}, out *testutil.SyncBuffer, cond func() error) {
	b.Helper()
	testutil.Eventually(b, startTimeout, what, func() error {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			b.Fatalf("%s: coffer exited:\n%s", what, out.String())
		default:
		}
		return err
	})
}

func benchClient(b *testing.B, addr, token string) *api.Client {
	b.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = "http://" + addr
	cfg.MaxRetries = 0
	cfg.Timeout = 30 * time.Second
	c, err := api.NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// runClients runs b.N calls of op spread over n goroutines, each with its own
// client, and reports ops/s.
func runClients(b *testing.B, addr, token string, n int, op func(ctx context.Context, kv *api.KVv2, i int) error) {
	b.Helper()
	kvs := make([]*api.KVv2, n)
	for i := range kvs {
		kvs[i] = benchClient(b, addr, token).KVv2("secret")
	}
	ctx := context.Background()
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func(kv *api.KVv2) {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				if err := op(ctx, kv, i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}(kvs[g])
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := firstErr.Load().(error); err != nil {
		b.Fatalf("operation failed: %v", err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
}

func BenchmarkKVv2PutHTTP(b *testing.B) {
	addr, token := benchServer(b)
	for _, n := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			runClients(b, addr, token, n, func(ctx context.Context, kv *api.KVv2, i int) error {
				_, err := kv.Put(ctx, fmt.Sprintf("bench/k%d", i%benchKeys), benchPayload)
				return err
			})
		})
	}
}

func BenchmarkKVv2GetHTTP(b *testing.B) {
	addr, token := benchServer(b)
	kv := benchClient(b, addr, token).KVv2("secret")
	for i := 0; i < benchKeys; i++ {
		if _, err := kv.Put(context.Background(), fmt.Sprintf("bench/k%d", i), benchPayload); err != nil {
			b.Fatalf("populate: %v", err)
		}
	}
	for _, n := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			runClients(b, addr, token, n, func(ctx context.Context, kv *api.KVv2, i int) error {
				s, err := kv.Get(ctx, fmt.Sprintf("bench/k%d", i%benchKeys))
				if err == nil && s.Data["user"] != "bench" {
					err = errors.New("read back the wrong data")
				}
				return err
			})
		})
	}
}
