package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// anchorBucket is the hub's KV bucket, the one Mirror.Put writes to.
	anchorBucket = "BENCH"
	// anchorMirrorBucket is the leaf's KV bucket that mirrors anchorBucket.
	anchorMirrorBucket = "BENCH_MIRROR"

	// anchorHubDomain and anchorLeafDomain are the JetStream domains of the
	// two servers; anchorHubAPIPrefix is how the leaf reaches the hub's
	// JetStream API.
	anchorHubDomain    = "hub"
	anchorLeafDomain   = "leaf"
	anchorHubAPIPrefix = "$JS.hub.API"

	// anchorReadyKey is the key StartMirror writes to the hub's bucket and
	// waits for on the leaf: the proof that the mirror is attached end to end.
	anchorReadyKey = "_bench_anchor_ready"

	// anchorCatchUpStream and anchorCatchUpSubject hold ConsumeRate's
	// messages.
	anchorCatchUpStream  = "BENCH_CATCHUP"
	anchorCatchUpSubject = "bench.catchup"

	// anchorStartTimeout bounds StartMirror and ConsumeRate when ctx has no
	// earlier deadline. A mirror that fails its first attempt retries
	// after seconds, so this is generous.
	anchorStartTimeout = 30 * time.Second
	// anchorSetupPoll is the pause between two checks of a condition
	// waited for during setup.
	anchorSetupPoll = 5 * time.Millisecond
	// anchorCloseTimeout bounds the wait for a NATS client to finish closing.
	anchorCloseTimeout = 5 * time.Second
)

// Mirror is the anchor of replication lag: a NATS KV bucket on one embedded
// JetStream server (the "hub", standing for the primary) mirrored to a
// second embedded JetStream server (the "leaf", standing for a secondary)
// connected to it by a leafnode connection, on loopback, all in process.
//
// The hub's bucket is "BENCH"; the leaf's is "BENCH_MIRROR", a KV mirror
// whose stream sources the hub's stream KV_BENCH through the External API
// prefix "$JS.hub.API". Put and Has each use one connection, to the hub and
// to the leaf, made once and shared by all callers; both are safe for
// concurrent use.
type Mirror struct {
	hub, leaf     *server.Server
	hubNC, leafNC *anchorConn
	put           jetstream.KeyValue // the hub's bucket "BENCH"
	get           jetstream.KeyValue // the leaf's bucket "BENCH_MIRROR"

	closeOnce sync.Once
	closeErr  error
}

// StartMirror starts both servers (random free loopback ports, JetStream file
// storage under dir, sync/fsync defaults as nats-server's) and the buckets:
// the KV bucket "BENCH" on the hub and, on the leaf, a KV bucket "BENCH_MIRROR"
// whose stream mirrors the hub's KV stream across the leafnode (JetStream
// domains "hub" and "leaf", the mirror's External API prefix "$JS.hub.API"),
// and waits until the mirror is attached: until a key written on the hub is
// read back on the leaf. That key, "_bench_anchor_ready", stays in both
// buckets.
//
// The hub stores under dir/hub and the leaf under dir/leaf. ctx bounds the
// start (30 s when it has no deadline). On error everything started is
// stopped.
func StartMirror(ctx context.Context, dir string) (*Mirror, error) {
	ctx, cancel := context.WithTimeout(ctx, anchorStartTimeout)
	defer cancel()
	m := &Mirror{}
	if err := m.start(ctx, dir); err != nil {
		_ = m.Close()
		return nil, err
	}
	return m, nil
}

func (m *Mirror) start(ctx context.Context, dir string) error {
	var err error
	hubOpts := anchorServerOptions("bench-hub", anchorHubDomain, filepath.Join(dir, "hub"))
	hubOpts.LeafNode.Host = "127.0.0.1"
	hubOpts.LeafNode.Port = server.RANDOM_PORT
	if m.hub, err = startAnchorServer(ctx, hubOpts); err != nil {
		return fmt.Errorf("start the hub: %w", err)
	}
	// The server writes the port it chose back into its options.
	hubLeafURL := &url.URL{Scheme: "nats-leaf", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(hubOpts.LeafNode.Port))}
	leafOpts := anchorServerOptions("bench-leaf", anchorLeafDomain, filepath.Join(dir, "leaf"))
	leafOpts.LeafNode.Remotes = []*server.RemoteLeafOpts{{URLs: []*url.URL{hubLeafURL}}}
	if m.leaf, err = startAnchorServer(ctx, leafOpts); err != nil {
		return fmt.Errorf("start the leaf: %w", err)
	}
	if m.hubNC, err = anchorConnect(m.hub); err != nil {
		return fmt.Errorf("connect to the hub: %w", err)
	}
	if m.leafNC, err = anchorConnect(m.leaf); err != nil {
		return fmt.Errorf("connect to the leaf: %w", err)
	}
	hubJS, err := jetstream.New(m.hubNC.nc)
	if err != nil {
		return fmt.Errorf("hub JetStream: %w", err)
	}
	leafJS, err := jetstream.New(m.leafNC.nc)
	if err != nil {
		return fmt.Errorf("leaf JetStream: %w", err)
	}
	if m.put, err = hubJS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: anchorBucket, Storage: jetstream.FileStorage}); err != nil {
		return fmt.Errorf("create KV bucket %s on the hub: %w", anchorBucket, err)
	}
	if err := waitAnchorHubAPI(ctx, m.leafNC.nc); err != nil {
		return err
	}
	m.get, err = leafJS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:  anchorMirrorBucket,
		Storage: jetstream.FileStorage,
		Mirror: &jetstream.StreamSource{
			Name:     anchorBucket,
			External: &jetstream.ExternalStream{APIPrefix: anchorHubAPIPrefix},
		},
	})
	if err != nil {
		return fmt.Errorf("create KV mirror %s on the leaf: %w", anchorMirrorBucket, err)
	}
	if err := m.Put(ctx, anchorReadyKey, nil); err != nil {
		return fmt.Errorf("write the readiness key: %w", err)
	}
	err = anchorPoll(ctx, func() (bool, error) { return m.Has(ctx, anchorReadyKey) })
	if err != nil {
		return fmt.Errorf("wait for the mirror %s to attach: %w", anchorMirrorBucket, err)
	}
	return nil
}

// waitAnchorHubAPI waits until the hub's JetStream API answers through the leaf,
// that is until the leafnode connection is up and has carried the hub's
// interest in "$JS.hub.API.>" over. Creating the mirror earlier would work
// too, but its first failed attempt would be retried only seconds later.
func waitAnchorHubAPI(ctx context.Context, leafNC *nats.Conn) error {
	js, err := jetstream.NewWithDomain(leafNC, anchorHubDomain)
	if err != nil {
		return fmt.Errorf("hub JetStream through the leaf: %w", err)
	}
	var last error
	err = anchorPoll(ctx, func() (bool, error) {
		actx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, last = js.AccountInfo(actx)
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("wait for the hub's JetStream API across the leafnode: %w (last: %v)", err, last)
	}
	return nil
}

// Put writes key=value into the hub's bucket, synchronously: it returns once
// the hub's JetStream acknowledged it. It is safe for concurrent use.
func (m *Mirror) Put(ctx context.Context, key string, value []byte) error {
	if _, err := m.put.Put(ctx, key, value); err != nil {
		return fmt.Errorf("put %q on the hub: %w", key, err)
	}
	return nil
}

// Has reports whether the leaf's mirror holds key (any value). It asks the
// leaf alone: a KV Get on the mirror bucket is a direct get of the last
// message of subject "$KV.BENCH.<key>" addressed to the mirror's stream
// (KV_BENCH_MIRROR), which only the leaf serves. A key whose last entry is a
// delete or purge marker is reported absent. It is safe for concurrent use.
func (m *Mirror) Has(ctx context.Context, key string) (bool, error) {
	_, err := m.get.Get(ctx, key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return false, nil
	default:
		return false, fmt.Errorf("get %q on the leaf: %w", key, err)
	}
}

// Close closes both connections and stops both servers, waiting for each.
// It removes nothing: dir belongs to the caller. It is safe to call more
// than once.
func (m *Mirror) Close() error {
	m.closeOnce.Do(func() {
		m.closeErr = errors.Join(m.leafNC.close(), m.hubNC.close())
		// The leaf first, so that the hub does not see its leafnode drop
		// while it is itself shutting down.
		stopAnchorServer(m.leaf)
		stopAnchorServer(m.hub)
	})
	return m.closeErr
}

// ConsumeRate is the anchor of catch-up: it publishes n messages of size
// bytes to a stream on a fresh embedded JetStream server (file storage under
// dir), then reads all n with an ordered consumer and returns the messages per
// second of the read alone.
//
// The stream is BENCH_CATCHUP, purged first if dir already holds it. The read
// is timed from the creation of the ordered consumer (nats.go's defaults: a
// pull consumer buffering up to 500 messages) to the receipt of the n-th
// message. The server is stopped before ConsumeRate returns; dir is kept.
func ConsumeRate(ctx context.Context, dir string, n, size int) (float64, error) {
	if n <= 0 || size < 0 {
		return 0, fmt.Errorf("consume rate: need n > 0 and size >= 0, got n=%d size=%d", n, size)
	}
	ctx, cancel := context.WithTimeout(ctx, anchorStartTimeout)
	defer cancel()
	srv, err := startAnchorServer(ctx, anchorServerOptions("bench-catchup", "", dir))
	if err != nil {
		return 0, fmt.Errorf("consume rate: start the server: %w", err)
	}
	defer stopAnchorServer(srv)
	c, err := anchorConnect(srv)
	if err != nil {
		return 0, fmt.Errorf("consume rate: connect: %w", err)
	}
	rate, err := consumeRateOn(ctx, c.nc, n, size)
	return rate, errors.Join(err, c.close())
}

func consumeRateOn(ctx context.Context, nc *nats.Conn, n, size int) (float64, error) {
	var pubErrs atomic.Int64
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) {
		pubErrs.Add(1)
	}))
	if err != nil {
		return 0, fmt.Errorf("consume rate: JetStream: %w", err)
	}
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:     anchorCatchUpStream,
		Subjects: []string{anchorCatchUpSubject},
		Storage:  jetstream.FileStorage,
	})
	if err != nil {
		return 0, fmt.Errorf("consume rate: create stream %s: %w", anchorCatchUpStream, err)
	}
	if err := stream.Purge(ctx); err != nil {
		return 0, fmt.Errorf("consume rate: purge stream %s: %w", anchorCatchUpStream, err)
	}
	if err := publishCatchUp(ctx, js, n, size); err != nil {
		return 0, err
	}
	if e := pubErrs.Load(); e > 0 {
		return 0, fmt.Errorf("consume rate: %d of %d publishes failed", e, n)
	}
	return readCatchUp(ctx, js, n)
}

// publishCatchUp publishes n messages of size bytes and waits for every
// acknowledgement.
func publishCatchUp(ctx context.Context, js jetstream.JetStream, n, size int) error {
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	// In windows: nats.go refuses a publish once too many wait for their
	// acknowledgement (4,000, "stalled"), which a slow machine reaches.
	const window = 512
	for i := 0; i < n; i++ {
		if _, err := js.PublishAsync(anchorCatchUpSubject, payload); err != nil {
			return fmt.Errorf("consume rate: publish %d of %d: %w", i+1, n, err)
		}
		if (i+1)%window == 0 || i == n-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				return fmt.Errorf("consume rate: wait for %d acknowledgements: %w", js.PublishAsyncPending(), ctx.Err())
			}
		}
	}
	return nil
}

// readCatchUp reads n messages with an ordered consumer and returns the rate of
// the read.
func readCatchUp(ctx context.Context, js jetstream.JetStream, n int) (float64, error) {
	start := time.Now()
	cons, err := js.OrderedConsumer(ctx, anchorCatchUpStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return 0, fmt.Errorf("consume rate: create ordered consumer: %w", err)
	}
	done := make(chan struct{})
	got := 0 // the handler runs on one goroutine at a time
	cc, err := cons.Consume(func(jetstream.Msg) {
		got++
		if got == n {
			close(done)
		}
	})
	if err != nil {
		return 0, fmt.Errorf("consume rate: consume: %w", err)
	}
	var elapsed time.Duration
	select {
	case <-done:
		elapsed = time.Since(start)
	case <-ctx.Done():
		err = fmt.Errorf("consume rate: read %d messages: %w", n, ctx.Err())
	}
	cc.Stop()
	select {
	case <-cc.Closed():
	case <-time.After(anchorCloseTimeout):
		err = errors.Join(err, errors.New("consume rate: the consumer did not stop"))
	}
	if err != nil {
		return 0, err
	}
	return float64(n) / elapsed.Seconds(), nil
}

// anchorServerOptions are the options of one embedded JetStream server: loopback,
// a random client port, file storage under dir with nats-server's sync
// defaults, no log, no signal handler. domain "" means no JetStream domain.
func anchorServerOptions(name, domain, dir string) *server.Options {
	return &server.Options{
		ServerName:             name,
		Host:                   "127.0.0.1",
		Port:                   server.RANDOM_PORT,
		JetStream:              true,
		JetStreamDomain:        domain,
		StoreDir:               dir,
		NoLog:                  true,
		NoSigs:                 true,
		DisableJetStreamBanner: true,
	}
}

// startAnchorServer starts an embedded server (no logger is set, so it prints
// nothing) and waits until it accepts connections with JetStream enabled.
// On error the server, if created, is stopped.
func startAnchorServer(ctx context.Context, opts *server.Options) (*server.Server, error) {
	if err := os.MkdirAll(opts.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("create JetStream store dir %q: %w", opts.StoreDir, err)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS %s: %w", opts.ServerName, err)
	}
	srv.Start()
	wait := anchorStartTimeout
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
	}
	if !srv.ReadyForConnections(wait) {
		stopAnchorServer(srv)
		return nil, fmt.Errorf("embedded NATS %s did not come up within %s", opts.ServerName, wait.Round(time.Millisecond))
	}
	if !srv.JetStreamEnabled() {
		stopAnchorServer(srv)
		return nil, fmt.Errorf("embedded NATS %s started without JetStream: is store dir %q writable?", opts.ServerName, opts.StoreDir)
	}
	return srv, nil
}

// stopAnchorServer shuts srv down and waits for its goroutines; nil is a no-op.
func stopAnchorServer(srv *server.Server) {
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// anchorConn is a NATS connection and the signal that it has finished closing.
type anchorConn struct {
	nc     *nats.Conn
	closed chan struct{} // closed by the client's closed callback
}

// anchorConnect opens one connection to the in-process server srv.
func anchorConnect(srv *server.Server) (*anchorConn, error) {
	c := &anchorConn{closed: make(chan struct{})}
	nc, err := nats.Connect(srv.ClientURL(),
		nats.Name("coffer-bench"),
		nats.NoReconnect(),
		nats.ClosedHandler(func(*nats.Conn) { close(c.closed) }),
	)
	if err != nil {
		return nil, err
	}
	c.nc = nc
	return c, nil
}

// close closes the connection and waits for the client to stop; nil is a
// no-op.
func (c *anchorConn) close() error {
	if c == nil {
		return nil
	}
	c.nc.Close()
	select {
	case <-c.closed:
		return nil
	case <-time.After(anchorCloseTimeout):
		return errors.New("close NATS connection: timed out waiting for the client to stop")
	}
}

// anchorPoll calls cond every anchorSetupPoll until it reports true, fails, or ctx ends.
func anchorPoll(ctx context.Context, cond func() (bool, error)) error {
	t := time.NewTicker(anchorSetupPoll)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
