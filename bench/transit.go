package bench

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"
)

// The transit measurement: encrypt and decrypt of Options.Size bytes per
// second through the HTTP API, on the primary and on a secondary (which
// computes them itself, with the replicated key), Options.Clients clients
// each, beside the limit: AES-256-GCM of the same size in this process, one
// goroutine per CPU. The server's CPU time per 1,000 operations is printed
// too.

const transitKey = "coffer-bench"

// measureTransit mounts transit on the set's primary, makes the key, waits
// for it on the secondary and measures.
func measureTransit(ctx context.Context, w io.Writer, o Options, st string, set *Set) error {
	p := set.Primary.Client
	if err := p.Sys().Mount("transit", &api.MountInput{Type: "transit"}); err != nil && !strings.Contains(err.Error(), "path is already in use") {
		return fmt.Errorf("mount transit: %w", err)
	}
	if _, err := p.Logical().WriteWithContext(ctx, "transit/keys/"+transitKey, nil); err != nil {
		return fmt.Errorf("create the transit key: %w", err)
	}
	limit := aesGCMRate(o.Size, min(o.ThroughputFor, 3*time.Second))
	nodes := []*Node{set.Primary}
	if len(set.Secondaries) > 0 {
		nodes = append(nodes, set.Secondaries[0])
		if err := waitTransitKey(ctx, set.Secondaries[0].Client); err != nil {
			return err
		}
	}
	for _, n := range nodes {
		role := "primary"
		if n != set.Primary {
			role = "secondary"
		}
		ct, err := transitEncrypt(ctx, n.Client, value(o.Size))
		if err != nil {
			return fmt.Errorf("transit encrypt on the %s: %w", role, err)
		}
		for _, op := range []string{"encrypt", "decrypt"} {
			do := func(ctx context.Context, _ string, v []byte) error {
				if op == "encrypt" {
					_, err := transitEncrypt(ctx, n.Client, v)
					return err
				}
				_, err := n.Client.Logical().WriteWithContext(ctx, "transit/decrypt/"+transitKey, map[string]any{"ciphertext": ct})
				return err
			}
			c0, err := ProcessCPU(n.PID())
			if err != nil {
				return err
			}
			start := time.Now()
			rate, errs := Throughput(ctx, do, o.Clients, o.ThroughputFor, o.Size)
			took := time.Since(start)
			c1, err := ProcessCPU(n.PID())
			if err != nil {
				return err
			}
			if errs > 0 {
				return fmt.Errorf("%d transit %s calls failed on the %s", errs, op, role)
			}
			cpu := time.Duration(float64(c1-c0) / (rate * took.Seconds()) * 1000)
			fmt.Fprintf(w, "transit %s of %d B, %d clients, %s\t%s\t%.0f ops/s, server CPU %s per 1,000\tAES-256-GCM in process: %.0f ops/s (coffer %.4fx)\n",
				op, o.Size, o.Clients, role, st, rate, round(cpu), limit, rate/limit)
		}
	}
	return nil
}

func transitEncrypt(ctx context.Context, c *api.Client, v []byte) (string, error) {
	s, err := c.Logical().WriteWithContext(ctx, "transit/encrypt/"+transitKey, map[string]any{"plaintext": base64.StdEncoding.EncodeToString(v)})
	if err != nil {
		return "", err
	}
	if s == nil || s.Data["ciphertext"] == nil {
		return "", fmt.Errorf("transit encrypt answered no ciphertext")
	}
	return fmt.Sprint(s.Data["ciphertext"]), nil
}

// waitTransitKey waits until the key has reached the secondary.
func waitTransitKey(ctx context.Context, c *api.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if _, err := transitEncrypt(ctx, c, []byte("probe")); err == nil {
			return nil
		} else if ctx.Err() != nil {
			return fmt.Errorf("the transit key did not reach the secondary within 30 s: %w", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// aesGCMRate is AES-256-GCM seals of size bytes per second in this process,
// one goroutine per CPU, for d: the limit a transit encrypt could reach.
func aesGCMRate(size int, d time.Duration) float64 {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	var n atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	start := time.Now()
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pt, nonce := value(size), make([]byte, aead.NonceSize())
			out := make([]byte, 0, size+aead.Overhead())
			for time.Now().Before(deadline) {
				_, _ = rand.Read(nonce)
				out = aead.Seal(out[:0], nonce, pt, nil)
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}
