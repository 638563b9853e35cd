package tests

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/hashicorp/vault/api"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Acceptance of the write-forwarding issue: real processes, vault/api.

// fwdPair is a dev primary and a dev secondary activated as id "dc2".
type fwdPair struct {
	p, s      *devCluster
	clusterID string // the primary's cluster id
}

func fwdPairT(t testing.TB) *fwdPair {
	t.Helper()
	p := devReplServer(t, "root")
	s := devReplServer(t, "root")
	if _, err := p.root.Logical().Write("sys/replication/performance/primary/enable", nil); err != nil {
		t.Fatalf("primary enable: %v", err)
	}
	sec, err := p.root.Logical().Write("sys/replication/performance/primary/secondary-token", map[string]any{"id": "dc2"})
	if err != nil || sec == nil || sec.WrapInfo == nil {
		t.Fatalf("secondary-token: %v", err)
	}
	if _, err := s.root.Logical().Write("sys/replication/performance/secondary/enable", map[string]any{"token": sec.WrapInfo.Token}); err != nil {
		t.Fatalf("secondary enable: %v", err)
	}
	st, err := p.root.Logical().Read("sys/replication/performance/status")
	if err != nil || st == nil {
		t.Fatalf("primary status: %v", err)
	}
	return &fwdPair{p: p, s: s, clusterID: fmt.Sprint(st.Data["cluster_id"])}
}

// pauseConsumer holds the secondary's WAL consumer on the primary's NATS until resume is called.
func (rp *fwdPair) pauseConsumer(t testing.TB) (resume func()) {
	t.Helper()
	nc, err := nats.Connect("nats://"+rp.p.natsAddr, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect to the primary's NATS: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream := "COFFER_WAL_" + strings.ReplaceAll(rp.clusterID, "-", "_")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.PauseConsumer(ctx, stream, "sec_dc2", time.Now().Add(10*time.Minute)); err != nil {
		t.Fatalf("pause the secondary's consumer: %v", err)
	}
	// A pull the secondary issued before the pause may still deliver one
	// batch: spend it on a probe write, shipped on its own, so that every
	// later write is held back.
	if _, err := kvWrite(rp.p.root, "pause-probe", time.Now().String()); err != nil {
		t.Fatalf("probe write: %v", err)
	}
	testutil.Eventually(t, waitTimeout, "the probe write shipped", func() error {
		st, err := rp.p.root.Logical().Read("sys/replication/performance/status")
		if err != nil || st == nil {
			return fmt.Errorf("status: %v", err)
		}
		if fmt.Sprint(st.Data["last_shipped_wal"]) != fmt.Sprint(st.Data["last_wal"]) {
			return fmt.Errorf("shipped %v of %v", st.Data["last_shipped_wal"], st.Data["last_wal"])
		}
		return nil
	})
	var once sync.Once
	return func() {
		once.Do(func() { resumeConsumer(t, js, nc, stream) })
	}
}

func resumeConsumer(t testing.TB, js jetstream.JetStream, nc *nats.Conn, stream string) {
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.ResumeConsumer(ctx, stream, "sec_dc2"); err != nil {
		t.Errorf("resume the secondary's consumer: %v", err)
	}
}

func kvWrite(c *api.Client, key string, v any) (*api.Secret, error) {
	return c.Logical().Write("secret/data/"+key, map[string]any{"data": map[string]any{"v": v}})
}

func TestForwardReadAfterWrite(t *testing.T) {
	rp := fwdPairT(t)
	sc := rp.s.root
	for i := range 100 {
		key := fmt.Sprintf("fw/%d", i%10)
		want := fmt.Sprintf("value-%d", i)
		s, err := kvWrite(sc, key, want)
		if err != nil {
			t.Fatalf("write %d through the secondary: %v", i, err)
		}
		if len(s.Warnings) > 0 {
			t.Fatalf("write %d: warnings %v, want none (the secondary must wait until it has the write)", i, s.Warnings)
		}
		got, err := sc.Logical().Read("secret/data/" + key)
		if err != nil || got == nil {
			t.Fatalf("read %d back on the secondary: %v", i, err)
		}
		if v := got.Data["data"].(map[string]any)["v"]; v != want {
			t.Fatalf("read %d back on the secondary: %v, want %s", i, v, want)
		}
	}
	// The primary has every value too: the writes were applied there.
	got, err := rp.p.root.Logical().Read("secret/data/fw/9")
	if err != nil || got == nil || got.Data["data"].(map[string]any)["v"] != "value-99" {
		t.Fatalf("primary's fw/9: %v %v", got, err)
	}
	// A forwarded sys write (a policy) lands on the primary and replicates back.
	if err := rp.s.root.Sys().PutPolicy("fwd", `path "secret/*" { capabilities = ["read"] }`); err != nil {
		t.Fatalf("policy write through the secondary: %v", err)
	}
	if p, err := rp.p.root.Sys().GetPolicy("fwd"); err != nil || p == "" {
		t.Fatalf("forwarded policy on the primary: %q %v", p, err)
	}
}

func TestForwardWaitWarning(t *testing.T) {
	rp := fwdPairT(t)
	if _, err := kvWrite(rp.s.root, "held", "before"); err != nil {
		t.Fatal(err)
	}
	resume := rp.pauseConsumer(t)
	start := time.Now()
	s, err := kvWrite(rp.s.root, "held", "after")
	took := time.Since(start)
	if err != nil {
		t.Fatalf("forwarded write with replication held back: %v", err)
	}
	if len(s.Warnings) == 0 || !strings.Contains(strings.Join(s.Warnings, " "), "may not show it yet") {
		t.Fatalf("warnings %v, want the not-yet-visible warning", s.Warnings)
	}
	if took < 2*time.Second {
		t.Fatalf("answered after %s: the secondary must hold the answer for best_effort_wal_wait_duration (2s)", took)
	}
	if err := kvHas(rp.s.root, "secret", "held", "before"); err != nil {
		t.Fatalf("while held back the secondary should still have the old value: %v", err)
	}
	resume()
	waitKV(t, rp.s.root, "secret", "held", "after", replTimeout)
}

func TestForwardXVaultIndex(t *testing.T) {
	rp := fwdPairT(t)
	resume := rp.pauseConsumer(t)
	defer resume()
	var state string
	pc := rp.p.root.WithResponseCallbacks(api.RecordState(&state))
	if _, err := kvWrite(pc, "idx", "new"); err != nil {
		t.Fatal(err)
	}
	if state == "" {
		t.Fatal("a write on the primary returned no X-Vault-Index")
	}
	if _, err := api.ParseReplicationState(state, nil); err != nil {
		t.Fatalf("X-Vault-Index %q does not parse as Vault's: %v", state, err)
	}
	// The lagging secondary refuses a read that needs the newer state...
	lag := rp.s.root.WithRequestCallbacks(api.RequireState(state))
	_, err := lag.Logical().Read("secret/data/idx")
	if statusOf(err) != http.StatusPreconditionFailed {
		t.Fatalf("read with a newer X-Vault-Index on a lagging secondary: %v, want 412", err)
	}
	// ...or forwards it to the primary when asked to.
	fwd := rp.s.root.WithRequestCallbacks(api.RequireState(state), api.ForwardInconsistent())
	got, err := fwd.Logical().Read("secret/data/idx")
	if err != nil || got == nil || got.Data["data"].(map[string]any)["v"] != "new" {
		t.Fatalf("read forwarded to the primary: %v %v, want the new value", got, err)
	}
	// A tampered index is refused.
	bad := rp.s.root.WithRequestCallbacks(api.RequireState(state[:len(state)-4] + "AAAA"))
	if _, err := bad.Logical().Read("secret/data/idx"); statusOf(err) != http.StatusBadRequest {
		t.Fatalf("read with a tampered X-Vault-Index: %v, want 400", err)
	}
	resume()
	// Once caught up, the same state is served locally.
	waitKV(t, rp.s.root, "secret", "idx", "new", replTimeout)
	if _, err := lag.Logical().Read("secret/data/idx"); err != nil {
		t.Fatalf("read with the index after catching up: %v", err)
	}
}

func TestForwardPrimaryDown(t *testing.T) {
	rp := fwdPairT(t)
	if _, err := kvWrite(rp.s.root, "kept", "v1"); err != nil {
		t.Fatal(err)
	}
	if code := rp.p.p.stop(); code != 0 {
		t.Fatalf("primary exit %d", code)
	}
	// The secondary may not know yet that the primary is gone: then the
	// write is sent, unanswered, and its outcome is unknown (504: "no
	// responders" can be forged on the bus, so it proves nothing); once its
	// heartbeats failed, the write is not sent at all (503, not applied).
	_, err := kvWrite(rp.s.root, "kept", "v2")
	if code := statusOf(err); (code != http.StatusServiceUnavailable && code != http.StatusGatewayTimeout) || !strings.Contains(err.Error(), "primary could not be reached") {
		t.Fatalf("forwarded write with the primary stopped: %v, want 503 or 504 naming the primary", err)
	}
	if err := kvHas(rp.s.root, "secret", "kept", "v1"); err != nil {
		t.Fatalf("reads on the secondary with the primary stopped: %v", err)
	}
}

// BenchmarkForwardedWrite compares a write forwarded through a secondary with
// a direct write on the primary (latency percentiles) and measures forwarded
// throughput with 16 clients.
func BenchmarkForwardedWrite(b *testing.B) {
	rp := fwdPairT(b)
	for _, mode := range []struct {
		name string
		c    *api.Client
	}{{"direct-primary", rp.p.root}, {"forwarded", rp.s.root}} {
		b.Run(mode.name+"/latency", func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				if _, err := kvWrite(mode.c, fmt.Sprintf("bench/%d", i%100), i); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
	b.Run("forwarded/16-clients", func(b *testing.B) {
		var wg sync.WaitGroup
		work := make(chan int)
		start := time.Now()
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					if _, err := kvWrite(rp.s.root, fmt.Sprintf("tp/%d", i%256), i); err != nil {
						b.Error(err)
					}
				}
			}()
		}
		for i := 0; i < b.N; i++ {
			work <- i
		}
		close(work)
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
	})
}

// seen412 is a RoundTripper that reports the first 412 it carries.
type seen412 struct {
	next http.RoundTripper
	once sync.Once
	ch   chan struct{}
}

func (s *seen412) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusPreconditionFailed {
		s.once.Do(func() { close(s.ch) })
	}
	return resp, err
}

// vault/api's own 412 retry: a read that needs a state the secondary has not
// reached is refused, retried by the client, and served once the secondary
// catches up.
func TestForwardClientRetries412(t *testing.T) {
	rp := fwdPairT(t)
	resume := rp.pauseConsumer(t)
	defer resume()
	var state string
	if _, err := kvWrite(rp.p.root.WithResponseCallbacks(api.RecordState(&state)), "retry", "new"); err != nil {
		t.Fatal(err)
	}
	cfg := api.DefaultConfig()
	cfg.Address = "http://" + rp.s.addr
	cfg.MaxRetries = 10
	obs := &seen412{next: cfg.HttpClient.Transport, ch: make(chan struct{})}
	cfg.HttpClient.Transport = obs
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("root")
	c = c.WithRequestCallbacks(api.RequireState(state))
	type result struct {
		s   *api.Secret
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := c.Logical().Read("secret/data/retry")
		done <- result{s, err}
	}()
	select {
	case <-obs.ch:
	case <-time.After(replTimeout):
		t.Fatal("the lagging secondary never answered 412")
	}
	resume()
	select {
	case r := <-done:
		if r.err != nil || r.s == nil || r.s.Data["data"].(map[string]any)["v"] != "new" {
			t.Fatalf("read after the client's 412 retries: %v %v", r.s, r.err)
		}
	case <-time.After(replTimeout):
		t.Fatal("the retried read never completed")
	}
}

// Every WAL batch carries the primary's merkle root as its guard: batches are
// cut where the primary's index stands.
func TestBatchesCarryTheGuard(t *testing.T) {
	rp := fwdPairT(t)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				if _, err := kvWrite(rp.p.root, fmt.Sprintf("g%d/%d", w, i), i); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	ws := openWALStream(t, "nats://"+rp.p.natsAddr, rp.clusterID)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := ws.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	guarded, total := 0, 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := ws.stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		total++
		// versions 4 and 5: version(1) epoch(4) first(8) last(8) generation(8) DR len(4) guard len(1) guard
		if len(m.Data) > 34 && (m.Data[0] == 4 || m.Data[0] == 5) && m.Data[33] == 32 {
			guarded++
		}
	}
	if total == 0 || guarded != total {
		t.Fatalf("%d of %d WAL batches carry a merkle guard, want all", guarded, total)
	}
	t.Logf("%d of %d batches guarded", guarded, total)
}
