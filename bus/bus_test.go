package bus_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/bus/bustest"
	"github.com/cofferhq/coffer/internal/testutil"
	"github.com/rs/zerolog"
)

func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).With().Timestamp().Logger()
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// connected is the condition "b's connection to NATS is up".
func connected(b *bus.Bus) func() error {
	return func() error {
		if !b.Connected() {
			return errors.New("not connected")
		}
		return nil
	}
}

func ensureWAL(t *testing.T, b *bus.Bus, sc bus.StreamConfig) {
	t.Helper()
	if sc.Name == "" {
		sc.Name, sc.Subject = "COFFER_WAL_c1", "coffer.c1.wal"
	}
	if err := b.EnsureStream(testCtx(t), sc); err != nil {
		t.Fatalf("ensure stream: %v", err)
	}
}

func publishN(t *testing.T, b *bus.Bus, subject string, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if _, err := b.Publish(testCtx(t), subject, fmt.Appendf(nil, "m%d", i), fmt.Sprintf("id-%d", i), nil); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  bus.Config
		want string // substring of the error, "" = valid
	}{
		{"embedded defaults", bus.Config{Embedded: true}, ""},
		{"external", bus.Config{URL: "nats://a:4222,nats://b:4222"}, ""},
		{"nothing", bus.Config{}, "no NATS url"},
		{"both", bus.Config{Embedded: true, URL: "nats://x:4222"}, "choose one"},
		{"embedded with missing client creds", bus.Config{Embedded: true, CredsFile: "x.creds"}, "cannot be read"},
		{"two client credentials", bus.Config{URL: "nats://a:4222", User: "u", Password: "p", NKeySeedFile: "x.nk"}, "set only one"},
		{"user without password", bus.Config{URL: "nats://a:4222", User: "u"}, "set both, or neither"},
		{"cert without key", bus.Config{Embedded: true, TLSCertFile: "c.pem"}, "tls_cert_file and tls_key_file go together"},
		{"external no_auth", bus.Config{URL: "nats://a:4222", NoAuth: true}, "embedded NATS only"},
		{"bad listen", bus.Config{Embedded: true, Listen: "4222"}, "not host:port"},
		{"no host", bus.Config{Embedded: true, Listen: ":4222"}, "has no host"},
		{"bad port", bus.Config{Embedded: true, Listen: "127.0.0.1:99999"}, "invalid port"},
		{"empty url entry", bus.Config{URL: "nats://a:4222,,nats://b:4222"}, "empty entry"},
		{"missing creds", bus.Config{URL: "nats://a:4222", CredsFile: "/nonexistent/x.creds"}, "cannot be read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
	c := bus.Config{Embedded: true}
	if err := c.Validate(); err != nil || c.Listen != bus.DefaultListen || c.Name != bus.DefaultName || c.MaxPayload != bus.DefaultMaxPayload {
		t.Fatalf("defaults not filled: %+v, %v", c, err)
	}
}

func TestStreamLimitsDiscardOld(t *testing.T) {
	b := bustest.Start(t)
	if !b.Connected() || !strings.HasPrefix(b.ClientURL(), "nats://127.0.0.1:") || strings.HasSuffix(b.ClientURL(), ":0") {
		t.Fatalf("connected=%v url=%q", b.Connected(), b.ClientURL())
	}
	if b.MaxPayload() != bus.DefaultMaxPayload {
		t.Fatalf("max payload = %d, want %d", b.MaxPayload(), bus.DefaultMaxPayload)
	}
	ensureWAL(t, b, bus.StreamConfig{Name: "S", Subject: "s.wal", MaxMsgs: 5})
	publishN(t, b, "s.wal", 1, 10)
	first, last, msgs, err := b.StreamState(testCtx(t), "S")
	if err != nil || first != 6 || last != 10 || msgs != 5 {
		t.Fatalf("state = first %d last %d msgs %d err %v, want 6 10 5", first, last, msgs, err)
	}
	// Raising the limit in place keeps the stream and its messages.
	ensureWAL(t, b, bus.StreamConfig{Name: "S", Subject: "s.wal", MaxMsgs: 100, MaxAge: time.Minute})
	publishN(t, b, "s.wal", 11, 12)
	if first, last, msgs, err = b.StreamState(testCtx(t), "S"); err != nil || first != 6 || last != 12 || msgs != 7 {
		t.Fatalf("after update: first %d last %d msgs %d err %v, want 6 12 7", first, last, msgs, err)
	}
	info, err := b.JetStream().Stream(testCtx(t), "S")
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.CachedInfo().Config
	if cfg.Duplicates != time.Minute || cfg.MaxBytes != -1 || cfg.MaxMsgs != 100 {
		t.Fatalf("config: duplicates %s max bytes %d max msgs %d", cfg.Duplicates, cfg.MaxBytes, cfg.MaxMsgs)
	}

	if err := b.DeleteStream(testCtx(t), "S"); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteStream(testCtx(t), "S"); err != nil {
		t.Fatalf("deleting a missing stream: %v", err)
	}
	if _, _, _, err := b.StreamState(testCtx(t), "S"); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("state of a deleted stream: %v, want ErrNotFound", err)
	}
}

func TestPublishDeduplicates(t *testing.T) {
	b := bustest.Start(t)
	ensureWAL(t, b, bus.StreamConfig{})
	ctx := testCtx(t)
	s1, err := b.Publish(ctx, "coffer.c1.wal", []byte("a"), "c1-1-5", map[string]string{"K": "v"})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := b.Publish(ctx, "coffer.c1.wal", []byte("a"), "c1-1-5", nil)
	if err != nil || s2 != s1 {
		t.Fatalf("duplicate publish: seq %d err %v, want seq %d", s2, err, s1)
	}
	s3, err := b.Publish(ctx, "coffer.c1.wal", []byte("b"), "c1-6-6", nil)
	if err != nil || s3 != s1+1 {
		t.Fatalf("next publish: seq %d err %v", s3, err)
	}
	if _, _, msgs, err := b.StreamState(ctx, "COFFER_WAL_c1"); err != nil || msgs != 2 {
		t.Fatalf("msgs %d err %v, want 2", msgs, err)
	}
	if _, err := b.Publish(ctx, "nostream.here", []byte("x"), "", nil); err == nil {
		t.Fatal("publish to a subject without stream succeeded")
	}
}

// collect starts Consume with a handler that forwards messages to the
// returned channel without settling them; the test acks.
func collect(t *testing.T, b *bus.Bus, durable string, startSeq uint64) (<-chan *bus.Msg, func()) {
	t.Helper()
	ch := make(chan *bus.Msg)
	stop, err := b.Consume(testCtx(t), "COFFER_WAL_c1", durable, startSeq, each(func(ctx context.Context, m *bus.Msg) {
		done := make(chan struct{})
		settle := m.Ack
		m.Ack = func() error { defer close(done); return settle() }
		select {
		case ch <- m:
		case <-ctx.Done():
			return
		}
		select { // hold the handler until the test acked, as an applier would
		case <-done:
		case <-ctx.Done():
		}
	}))
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	t.Cleanup(stop)
	return ch, stop
}

func next[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("nothing delivered within 10s")
		var zero T
		return zero
	}
}

func TestConsumeInOrderAndResume(t *testing.T) {
	b := bustest.Start(t)
	ensureWAL(t, b, bus.StreamConfig{})
	ctx := testCtx(t)
	publishN(t, b, "coffer.c1.wal", 1, 5)

	ch, stop := collect(t, b, "sec_dc2", 0)
	for want := uint64(1); want <= 3; want++ {
		m := next(t, ch)
		if m.StreamSeq != want || string(m.Data) != fmt.Sprintf("m%d", want) {
			t.Fatalf("got seq %d %q, want seq %d", m.StreamSeq, m.Data, want)
		}
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	stop() // idempotent
	// Acks are not waited for: the server takes them shortly after.
	testutil.Eventually(t, 10*time.Second, "ack floor 3", func() error {
		if _, ackFloor, _, err := b.ConsumerInfo(ctx, "COFFER_WAL_c1", "sec_dc2"); err != nil || ackFloor != 3 {
			return fmt.Errorf("ack floor %d err %v", ackFloor, err)
		}
		return nil
	})

	// Same durable: resumes after the last ack; startSeq is ignored.
	ch, stop = collect(t, b, "sec_dc2", 1)
	publishN(t, b, "coffer.c1.wal", 6, 6)
	for want := uint64(4); want <= 6; want++ {
		m := next(t, ch)
		if m.StreamSeq != want {
			t.Fatalf("resumed at seq %d, want %d", m.StreamSeq, want)
		}
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	testutil.Eventually(t, 10*time.Second, "delivered 6, ack floor 6, none pending", func() error {
		delivered, ackFloor, pending, err := b.ConsumerInfo(ctx, "COFFER_WAL_c1", "sec_dc2")
		if err != nil || delivered != 6 || ackFloor != 6 || pending != 0 {
			return fmt.Errorf("info: delivered %d ack floor %d pending %d err %v", delivered, ackFloor, pending, err)
		}
		return nil
	})

	// A new durable with a start sequence begins there.
	ch, stop = collect(t, b, "sec_dc3", 5)
	if m := next(t, ch); m.StreamSeq != 5 {
		t.Fatalf("new durable from 5 started at %d", m.StreamSeq)
	}
	stop()

	if err := b.DeleteConsumer(ctx, "COFFER_WAL_c1", "sec_dc2"); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteConsumer(ctx, "COFFER_WAL_c1", "sec_dc2"); err != nil {
		t.Fatalf("deleting a missing consumer: %v", err)
	}
	if _, _, _, err := b.ConsumerInfo(ctx, "COFFER_WAL_c1", "sec_dc2"); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("info of a deleted consumer: %v, want ErrNotFound", err)
	}
	if _, err := b.Consume(ctx, "NO_SUCH_STREAM", "d", 0, each(func(context.Context, *bus.Msg) {})); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("consume from a missing stream: %v, want ErrNotFound", err)
	}
}

func TestConsumeNakRedeliversInOrder(t *testing.T) {
	b := bustest.Start(t)
	ensureWAL(t, b, bus.StreamConfig{})
	publishN(t, b, "coffer.c1.wal", 1, 3)
	got := make(chan uint64, 16)
	tries := map[uint64]int{} // only the delivery goroutine touches it
	stop, err := b.Consume(testCtx(t), "COFFER_WAL_c1", "d", 0, each(func(ctx context.Context, m *bus.Msg) {
		tries[m.StreamSeq]++
		switch {
		case m.StreamSeq == 2 && tries[2] == 1:
			if err := m.Nak(); err != nil {
				t.Error(err)
			}
			return
		case m.StreamSeq == 3 && tries[3] == 1:
			return // unsettled: naked by Consume, delivered again
		}
		if err := m.Ack(); err != nil {
			t.Error(err)
		}
		got <- m.StreamSeq
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for _, want := range []uint64{1, 2, 3} {
		select {
		case seq := <-got:
			if seq != want {
				t.Fatalf("got seq %d, want %d (order broken by a nak)", seq, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("seq %d not delivered", want)
		}
	}
}

func TestExternalSeesEmbeddedStream(t *testing.T) {
	a := bustest.Start(t)
	ensureWAL(t, a, bus.StreamConfig{})
	publishN(t, a, "coffer.c1.wal", 1, 2)

	b, err := bus.Open(testCtx(t), bus.Config{URL: a.ClientURL(), Name: "coffer-dc2"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	testutil.Eventually(t, 10*time.Second, "external connection", connected(b))
	if b.ClientURL() != a.ClientURL() {
		t.Fatalf("external ClientURL %q, want %q", b.ClientURL(), a.ClientURL())
	}
	first, last, msgs, err := b.StreamState(testCtx(t), "COFFER_WAL_c1")
	if err != nil || first != 1 || last != 2 || msgs != 2 {
		t.Fatalf("external view: first %d last %d msgs %d err %v", first, last, msgs, err)
	}
	ch, _ := collect(t, b, "sec_dc2", 0)
	m := next(t, ch)
	if m.StreamSeq != 1 || string(m.Data) != "m1" {
		t.Fatalf("external consumer got seq %d %q", m.StreamSeq, m.Data)
	}
	if err := m.Ack(); err != nil {
		t.Fatal(err)
	}
}

func TestServeRequest(t *testing.T) {
	a := bustest.Start(t)
	b, err := bus.Open(testCtx(t), bus.Config{URL: a.ClientURL()}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	testutil.Eventually(t, 10*time.Second, "external connection", connected(b))

	stop, err := a.Serve("coffer.c1.rpc.echo", func(ctx context.Context, data []byte) []byte {
		return append([]byte("echo:"), data...)
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply, err := b.Request(ctx, "coffer.c1.rpc.echo", []byte("hi"))
	if err != nil || string(reply) != "echo:hi" {
		t.Fatalf("reply %q err %v", reply, err)
	}

	// Many concurrent requests: all answered (bounded concurrency queues).
	errs := make(chan error, 64)
	for i := range 64 {
		go func() {
			want := fmt.Sprintf("echo:%d", i)
			r, err := b.Request(ctx, "coffer.c1.rpc.echo", fmt.Appendf(nil, "%d", i))
			if err == nil && string(r) != want {
				err = fmt.Errorf("got %q want %q", r, want)
			}
			errs <- err
		}()
	}
	for range 64 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}

	stop()
	stop()
	start := time.Now()
	_, err = b.Request(ctx, "coffer.c1.rpc.echo", []byte("hi"))
	if !errors.Is(err, bus.ErrUnreachable) {
		t.Fatalf("after stop: %v, want ErrUnreachable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("no-responders took %s; want it fast", d)
	}
}

func TestServeBoundsConcurrency(t *testing.T) {
	a := bustest.Start(t)
	var inflight, peak atomic.Int32
	release := make(chan struct{})
	stop, err := a.Serve("busy", func(ctx context.Context, d []byte) []byte {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		return d
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	const n = 2 * bus.ServeConcurrency
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := a.Request(testCtx(t), "busy", []byte("x"))
			errs <- err
		}()
	}
	testutil.Eventually(t, 10*time.Second, "the handler pool to fill", func() error {
		if n := inflight.Load(); n != bus.ServeConcurrency {
			return fmt.Errorf("%d handlers running, want %d", n, bus.ServeConcurrency)
		}
		return nil
	})
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if p := peak.Load(); p != bus.ServeConcurrency {
		t.Fatalf("peak concurrency %d, want %d", p, bus.ServeConcurrency)
	}
}

func TestRequestTimeoutIsUnreachable(t *testing.T) {
	a := bustest.Start(t)
	release := make(chan struct{})
	stop, err := a.Serve("slow", func(ctx context.Context, _ []byte) []byte {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = a.Request(ctx, "slow", nil)
	if !errors.Is(err, bus.ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow handler: %v, want ErrUnreachable and DeadlineExceeded", err)
	}
}

func TestExternalOpenBeforeServerIsUp(t *testing.T) {
	addr := testutil.FreeAddr(t)
	ctx := testCtx(t)
	b, err := bus.Open(ctx, bus.Config{URL: "nats://" + addr}, testLogger(t))
	if err != nil {
		t.Fatalf("open with NATS down should succeed: %v", err)
	}
	defer b.Close()
	if b.Connected() {
		t.Fatal("connected with nothing listening")
	}
	// Requests fail fast while down; Consume is accepted and waits.
	start := time.Now()
	if _, err = b.Request(ctx, "x", nil); !errors.Is(err, bus.ErrUnreachable) || time.Since(start) > time.Second {
		t.Fatalf("request with NATS down: %v after %s, want ErrUnreachable at once", err, time.Since(start))
	}
	ch, _ := collect(t, b, "sec_dc2", 0)

	a := bustest.StartConfig(t, bus.Config{Listen: addr})
	testutil.Eventually(t, 15*time.Second, "reconnect to the late server", connected(b))
	ensureWAL(t, a, bus.StreamConfig{})
	publishN(t, a, "coffer.c1.wal", 1, 1)
	if _, _, msgs, err := b.StreamState(ctx, "COFFER_WAL_c1"); err != nil || msgs != 1 {
		t.Fatalf("msgs %d err %v", msgs, err)
	}
	if m := next(t, ch); m.StreamSeq != 1 {
		t.Fatalf("consumer started while NATS was down got seq %d, want 1", m.StreamSeq)
	}
}

func TestConsumeSurvivesOutage(t *testing.T) {
	addr := testutil.FreeAddr(t)
	dir := t.TempDir()
	a := bustest.StartConfig(t, bus.Config{Listen: addr, StoreDir: dir})
	ensureWAL(t, a, bus.StreamConfig{})
	publishN(t, a, "coffer.c1.wal", 1, 1)

	b, err := bus.Open(testCtx(t), bus.Config{URL: "nats://" + addr}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ch, _ := collect(t, b, "sec_dc2", 0)
	if m := next(t, ch); m.StreamSeq != 1 || m.Ack() != nil {
		t.Fatalf("first message: seq %d", m.StreamSeq)
	}

	// NATS goes away and comes back with the same store.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "disconnect noticed", func() error {
		if b.Connected() {
			return errors.New("still connected")
		}
		return nil
	})
	a = bustest.StartConfig(t, bus.Config{Listen: addr, StoreDir: dir})
	publishN(t, a, "coffer.c1.wal", 2, 2)
	m := next(t, ch)
	if m.StreamSeq == 1 {
		// Its ack was not waited for and NATS went away at once: the
		// message comes again, and the handler skips it (Msg.Ack).
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
		m = next(t, ch)
	}
	if m.StreamSeq != 2 {
		t.Fatalf("after the outage got seq %d, want 2", m.StreamSeq)
	}
	if err := m.Ack(); err != nil {
		t.Fatal(err)
	}
}

func TestRestartKeepsMessages(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t)
	a := bustest.StartConfig(t, bus.Config{StoreDir: dir})
	ensureWAL(t, a, bus.StreamConfig{})
	publishN(t, a, "coffer.c1.wal", 1, 3)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a = bustest.StartConfig(t, bus.Config{StoreDir: dir})
	first, last, msgs, err := a.StreamState(ctx, "COFFER_WAL_c1")
	if err != nil || first != 1 || last != 3 || msgs != 3 {
		t.Fatalf("after restart: first %d last %d msgs %d err %v", first, last, msgs, err)
	}
	// Dedup state survives too: the same id is still a duplicate.
	if seq, err := a.Publish(ctx, "coffer.c1.wal", []byte("m3"), "id-3", nil); err != nil || seq != 3 {
		t.Fatalf("republish after restart: seq %d err %v, want 3", seq, err)
	}
}

func TestTempStoreRemovedOnClose(t *testing.T) {
	b, err := bus.Open(testCtx(t), bus.Config{Embedded: true, Listen: "127.0.0.1:0"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := bus.TmpDir(b)
	if dir == "" {
		t.Fatal("no temporary store")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Consume(testCtx(t), "S", "d", 0, each(func(context.Context, *bus.Msg) {})); err == nil {
		t.Fatal("consume on a closed bus succeeded")
	}
	if _, err := b.Serve("x", func(context.Context, []byte) []byte { return nil }); err == nil {
		t.Fatal("serve on a closed bus succeeded")
	}
	testutil.Eventually(t, time.Second, "temp store removed", func() error {
		if _, err := os.Stat(dir); err == nil {
			return fmt.Errorf("%s still exists", dir)
		}
		return nil
	})
}

func TestCloseStopsEverything(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		a, err := bus.Open(testCtx(t), bus.Config{Embedded: true, Listen: "127.0.0.1:0", StoreDir: t.TempDir()}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		b, err := bus.Open(testCtx(t), bus.Config{URL: a.ClientURL(), NKeySeedFile: a.ClientSeedFile()}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, "connected", connected(b))
		ensureWAL(t, a, bus.StreamConfig{})
		publishN(t, a, "coffer.c1.wal", 1, 3)
		handled := make(chan struct{}, 3)
		// Left running on purpose: Close must stop them.
		if _, err := b.Consume(testCtx(t), "COFFER_WAL_c1", "d", 0, each(func(ctx context.Context, m *bus.Msg) {
			_ = m.Ack()
			handled <- struct{}{}
		})); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Serve("rpc", func(ctx context.Context, d []byte) []byte { return d }); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Request(testCtx(t), "rpc", []byte("x")); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			<-handled
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil { // idempotent
			t.Fatal(err)
		}
	}()
	testutil.Eventually(t, 10*time.Second, "the goroutines started by Open to end", func() error {
		runtime.Gosched()
		if now := runtime.NumGoroutine(); now > base {
			buf := make([]byte, 1<<20)
			return fmt.Errorf("goroutines: %d before, %d after Close\n%s", base, now, buf[:runtime.Stack(buf, true)])
		}
		return nil
	})
}

// A stream deleted and re-created (anyone on the bus may) numbers its
// messages from 1 again: a consumer whose position is past the new stream's
// end reads it from its first message instead of waiting for a sequence
// that may never come.
func TestConsumeFollowsARecreatedStream(t *testing.T) {
	b := bustest.Start(t)
	ctx := testCtx(t)
	ensureWAL(t, b, bus.StreamConfig{})
	for i := range 5 {
		if _, err := b.Publish(ctx, "coffer.c1.wal", []byte{byte(i)}, fmt.Sprintf("c1-%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	ch, _ := collect(t, b, "d", 0)
	for range 5 {
		if err := next(t, ch).Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.DeleteStream(ctx, "COFFER_WAL_c1"); err != nil {
		t.Fatal(err)
	}
	ensureWAL(t, b, bus.StreamConfig{})
	if _, err := b.Publish(ctx, "coffer.c1.wal", []byte("after"), "c1-after", nil); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ch); string(m.Data) != "after" {
		t.Fatalf("delivered %q after the stream was re-created, want \"after\"", m.Data)
	}
}
