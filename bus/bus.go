package bus

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

const (
	// reconnectWait is the pause between reconnect attempts (plus jitter).
	reconnectWait = 500 * time.Millisecond
	// readyTimeout bounds the embedded server's start when ctx has no deadline.
	readyTimeout = 10 * time.Second
	// closeTimeout bounds the wait for the NATS client to finish closing.
	closeTimeout = 5 * time.Second
)

// Bus is a NATS connection, with the embedded nats-server behind it in
// embedded mode. It is safe for concurrent use. Close stops everything it
// started.
type Bus struct {
	cfg    Config
	log    zerolog.Logger
	srv    *server.Server // nil in external mode
	tmpDir string         // store dir to remove on Close, "" when none
	auth   *serverAuth    // the embedded server's credentials, nil when none
	cert   []byte         // the embedded server's TLS certificate (DER), nil without TLS
	nc     *nats.Conn
	js     jetstream.JetStream
	url    string
	closed chan struct{} // closed by the NATS client's closed callback

	mu          sync.Mutex
	done        bool
	workers     map[*worker]struct{} // live Consume and Serve calls
	lastConnErr string               // the last failed connection attempt, logged once

	closeOnce sync.Once
	closeErr  error
}

// Open starts the embedded server (embedded mode) or connects to the external
// NATS system. In external mode it returns at once even if NATS is down: the
// connection keeps retrying forever and Connected reports when it is up. ctx
// bounds the embedded server's start.
func Open(ctx context.Context, cfg Config, logger zerolog.Logger) (*Bus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &Bus{
		cfg:     cfg,
		log:     logger.With().Str("component", "bus").Logger(),
		closed:  make(chan struct{}),
		workers: make(map[*worker]struct{}),
	}
	if cfg.Embedded {
		if err := b.startServer(ctx); err != nil {
			b.stopServer()
			return nil, err
		}
	} else {
		b.url = cfg.URL
	}
	if err := b.connect(); err != nil {
		b.stopServer()
		return nil, err
	}
	js, err := jetstream.New(b.nc)
	if err != nil {
		b.nc.Close()
		b.stopServer()
		return nil, fmt.Errorf("open JetStream context: %w", err)
	}
	b.js = js
	return b, nil
}

func (b *Bus) startServer(ctx context.Context) error {
	host, portStr, _ := net.SplitHostPort(b.cfg.Listen) // checked by Validate
	port, _ := strconv.Atoi(portStr)
	if port == 0 {
		port = server.RANDOM_PORT // nats-server reads 0 as its default 4222
	}
	dir := b.cfg.StoreDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "coffer-nats-*")
		if err != nil {
			return fmt.Errorf("embedded NATS: create a temporary JetStream store: %w (set a store dir)", err)
		}
		b.tmpDir, dir = tmp, tmp
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("embedded NATS: create JetStream store dir %q: %w (fix the path or its permissions)", dir, err)
	}
	opts := &server.Options{
		ServerName:             b.cfg.Name,
		Host:                   host,
		Port:                   port,
		JetStream:              true,
		StoreDir:               dir,
		MaxPayload:             b.cfg.MaxPayload,
		NoSigs:                 true,
		DisableJetStreamBanner: true,
	}
	if err := b.secureServer(opts, dir); err != nil {
		return err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("embedded NATS: %w (check the listen address and store dir)", err)
	}
	srv.SetLogger(serverLogger{b.log.With().Str("nats", "server").Logger()}, false, false)
	b.srv = srv
	srv.Start()
	wait := readyTimeout
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
	}
	if !srv.ReadyForConnections(wait) {
		return fmt.Errorf("embedded NATS did not come up on %s within %s: is the port taken, or the store dir %q locked by another coffer?", b.cfg.Listen, wait.Round(time.Millisecond), dir)
	}
	if !srv.JetStreamEnabled() {
		return fmt.Errorf("embedded NATS started without JetStream: check that store dir %q is writable and the disk has space", dir)
	}
	addr, ok := srv.Addr().(*net.TCPAddr)
	if !ok {
		return errors.New("embedded NATS has no TCP listener")
	}
	b.url = b.scheme() + "://" + net.JoinHostPort(dialHost(addr.IP), strconv.Itoa(addr.Port))
	b.log.Debug().Str("url", b.url).Str("store_dir", dir).Bool("auth", b.auth != nil).Bool("tls", b.cert != nil).Msg("embedded NATS started")
	return nil
}

// secureServer adds authentication (unless NoAuth) and TLS (with a
// certificate) to the embedded server's options.
func (b *Bus) secureServer(opts *server.Options, dir string) error {
	if !b.cfg.NoAuth {
		a, err := loadServerAuth(dir)
		if err != nil {
			return err
		}
		b.auth = a
		opts.Nkeys = []*server.NkeyUser{{Nkey: a.ownPub}, {Nkey: a.clientPub}}
	}
	if b.cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(b.cfg.TLSCertFile, b.cfg.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("embedded NATS: TLS certificate %q with key %q: %w", b.cfg.TLSCertFile, b.cfg.TLSKeyFile, err)
		}
		b.cert = cert.Certificate[0]
		opts.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return nil
}

// scheme is "tls" when the embedded server requires TLS, else "nats".
func (b *Bus) scheme() string {
	if b.cert != nil {
		return "tls"
	}
	return "nats"
}

// ownConnOptions are the credentials of the embedded server's own
// connection: its in-memory nkey, and TLS pinned to the server's own
// certificate (the connection dials a loopback or listen address, which the
// certificate need not name).
func (b *Bus) ownConnOptions() []nats.Option {
	var opts []nats.Option
	if b.auth != nil {
		opts = append(opts, nats.Nkey(b.auth.ownPub, b.auth.sign))
	}
	if b.cert != nil {
		want := b.cert
		opts = append(opts, nats.Secure(&tls.Config{
			MinVersion: tls.VersionTLS12,
			// Verification is the pin below, not a CA chain.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, want) {
					return errors.New("the embedded NATS server presented a certificate other than its own: is another process listening on its address?")
				}
				return nil
			},
		}))
	}
	return opts
}

// clientOptions are the client half of the configuration as nats.go options.
func (c *Config) clientOptions() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nkey seed file %q: %w", c.NKeySeedFile, err)
		}
		opts = append(opts, o)
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(c.TLSCAFile))
	}
	if c.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(c.TLSCertFile, c.TLSKeyFile))
	}
	return opts, nil
}

// dialHost turns a listen IP into one this process can dial.
func dialHost(ip net.IP) string {
	if ip == nil || ip.IsUnspecified() {
		return "127.0.0.1"
	}
	return ip.String()
}

func (b *Bus) connect() error {
	opts := []nats.Option{
		nats.Name(b.cfg.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(reconnectWait),
		nats.PingInterval(10 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				b.log.Warn().Err(err).Msg("lost the NATS connection; reconnecting: check that NATS is running and reachable")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS connection restored")
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			b.log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS connected")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			ev := b.log.Warn().Err(err)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("NATS asynchronous error")
		}),
		nats.ReconnectErrHandler(b.connectFailed),
		// Refused credentials stay a reason to retry: the operator may fix
		// the seed file, or the primary may be restarted with the right user.
		nats.IgnoreAuthErrorAbort(),
		nats.ClosedHandler(func(*nats.Conn) { close(b.closed) }),
	}
	if b.cfg.Embedded {
		opts = append(opts, b.ownConnOptions()...)
	} else {
		co, err := b.cfg.clientOptions()
		if err != nil {
			return err
		}
		opts = append(opts, co...)
	}
	nc, err := nats.Connect(b.url, opts...)
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w (check the url, the credentials and the CA file)", b.url, err)
	}
	b.nc = nc
	if !nc.IsConnected() {
		b.log.Warn().Str("url", b.url).Msg("NATS not reachable yet; retrying in the background")
	}
	return nil
}

// ClientURL is the URL to hand to others (secondaries, the nats CLI): in
// embedded mode Config.Advertise or nats://<actual listen address>
// (tls://... when the server requires TLS, so that a client insists on it),
// in external mode Config.URL.
func (b *Bus) ClientURL() string {
	if b.cfg.Embedded && b.cfg.Advertise != "" {
		return b.cfg.Advertise
	}
	if b.srv != nil {
		// After Close the server has no address: the URL it had stays the answer.
		addr, ok := b.srv.Addr().(*net.TCPAddr)
		if ok && addr.IP.IsUnspecified() {
			if h, err := os.Hostname(); err == nil {
				return b.scheme() + "://" + net.JoinHostPort(h, strconv.Itoa(addr.Port))
			}
		}
	}
	return b.url
}

// connectFailed logs a failed (re)connection attempt once per distinct
// error, so that a retry every half second does not flood the log.
func (b *Bus) connectFailed(_ *nats.Conn, err error) {
	if err == nil {
		return
	}
	msg := err.Error()
	b.mu.Lock()
	same := msg == b.lastConnErr
	b.lastConnErr = msg
	b.mu.Unlock()
	if same {
		return
	}
	ev := b.log.Warn().Err(err).Str("url", b.url)
	if errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(msg), "authorization") {
		ev.Msg("NATS refused this server's credentials; retrying: check bus { nkey_seed_file, creds_file or user/password } (on a secondary: a current copy of the primary's <store_dir>/auth/client.nk)")
		return
	}
	ev.Msg("cannot connect to NATS yet; retrying: check that it runs, the url and the TLS settings")
}

// ClientSeedFile is the path of the embedded server's client seed file, for
// secondaries and tools to copy ("" without authentication or in external
// mode). See auth.go.
func (b *Bus) ClientSeedFile() string {
	if b.auth == nil {
		return ""
	}
	return b.auth.clientFile
}

// ClientPublicKey is the public nkey of that client user ("" when none).
func (b *Bus) ClientPublicKey() string {
	if b.auth == nil {
		return ""
	}
	return b.auth.clientPub
}

// Connected reports whether the connection to NATS is up right now.
func (b *Bus) Connected() bool { return b.nc.IsConnected() }

// Conn is the underlying connection, for what this package does not wrap.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// JetStream is the JetStream context on the connection.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// MaxPayload is the largest message the connected server accepts, in bytes
// (0 while not connected). Publishers size their batches below it.
func (b *Bus) MaxPayload() int64 { return b.nc.MaxPayload() }

// Close stops every Consume and Serve started on b and waits for their
// goroutines, closes the connection, shuts the embedded server down and waits
// for it, and removes a temporary store. It is safe to call more than once.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.done = true
		stops := make([]func(), 0, len(b.workers))
		for w := range b.workers {
			stops = append(stops, w.stop)
		}
		b.mu.Unlock()
		var wg sync.WaitGroup
		for _, stop := range stops {
			wg.Add(1)
			go func() {
				defer wg.Done()
				stop()
			}()
		}
		wg.Wait()
		if b.nc.IsConnected() {
			_ = b.nc.FlushTimeout(time.Second)
		}
		b.nc.Close()
		select {
		case <-b.closed:
		case <-time.After(closeTimeout):
			b.closeErr = errors.New("close NATS connection: timed out waiting for the client to stop")
		}
		b.stopServer()
		b.log.Debug().Msg("bus closed")
	})
	return b.closeErr
}

func (b *Bus) stopServer() {
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
	if b.auth != nil {
		b.auth.wipe()
	}
	if b.tmpDir != "" {
		if err := os.RemoveAll(b.tmpDir); err != nil {
			b.log.Warn().Err(err).Str("dir", b.tmpDir).Msg("remove temporary JetStream store: delete it by hand")
		}
	}
}

// worker is a running Consume or Serve; stop ends it and waits.
type worker struct{ stop func() }

// register records w so that Close stops it; it fails once b is closed.
func (b *Bus) register(w *worker) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return ErrClosed
	}
	b.workers[w] = struct{}{}
	return nil
}

func (b *Bus) unregister(w *worker) {
	b.mu.Lock()
	delete(b.workers, w)
	b.mu.Unlock()
}

// serverLogger routes nats-server's log through zerolog: notices, debug and
// trace at debug level (the server is chatty on start and stop), warnings and
// errors at their own level so that disk or store trouble stays visible.
type serverLogger struct{ log zerolog.Logger }

func (l serverLogger) Noticef(format string, v ...any) { l.log.Debug().Msgf(format, v...) }
func (l serverLogger) Warnf(format string, v ...any)   { l.log.Warn().Msgf(format, v...) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l serverLogger) Errorf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l serverLogger) Debugf(format string, v ...any)  { l.log.Debug().Msgf(format, v...) }
func (l serverLogger) Tracef(format string, v ...any)  { l.log.Trace().Msgf(format, v...) }
