package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cofferhq/coffer/barrier/seal"
	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/config"
	"github.com/cofferhq/coffer/core"
	"github.com/cofferhq/coffer/ha"
	"github.com/cofferhq/coffer/httpapi"
	"github.com/cofferhq/coffer/internal/clock"
	"github.com/cofferhq/coffer/replmode"
	"github.com/cofferhq/coffer/storage"
	"github.com/cofferhq/coffer/storage/bolt"
	"github.com/cofferhq/coffer/storage/consul"
	"github.com/cofferhq/coffer/storage/inmem"
	"github.com/cofferhq/coffer/ui"
	"github.com/rs/zerolog"
)

// shutdownGrace bounds how long in-flight requests may run after SIGINT/SIGTERM.
const shutdownGrace = 30 * time.Second

func runServer(args []string) int {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	configPath := fs.String("config", "", "path to a configuration file (HCL, or YAML/JSON by extension)")
	dev := fs.Bool("dev", false, "run a dev server: in-memory storage, initialized and unsealed, root token printed")
	devRoot := fs.String("dev-root-token-id", "", "root token to create in dev mode (default: generated)")
	devListen := fs.String("dev-listen-address", "127.0.0.1:8200", "API listen address in dev mode")
	devNATS := fs.String("dev-nats-listen", "127.0.0.1:4222", "embedded NATS listen address in dev mode")
	logLevel := fs.String("log-level", "", "log level: trace, debug, info, warn, error (overrides the config file)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile (pprof) of the whole run to this file (coffer bench -profile)")
	memProfile := fs.String("memprofile", "", "keep in this file the heap profile (pprof) taken at the largest live heap while the server serves (coffer bench -profile)")
	clockFile := fs.String("test-clock-offset-file", "", "for fault tests only: move this server's wall clock by the duration in this file (e.g. 5m, -90s), read again every 100ms")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "Usage: coffer server -config=FILE | -dev [-dev-root-token-id=ID] [-dev-listen-address=ADDR] [-dev-nats-listen=ADDR]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 1
	}
	if !*dev && *configPath == "" {
		fmt.Fprintln(os.Stderr, "coffer server: give -config=FILE, or -dev for a throwaway dev server")
		return 1
	}

	var base *config.Config
	if *dev {
		base = config.DevDefaults()
		base.Listener.Address = *devListen
		base.Bus.Listen = *devNATS
	} else {
		base = config.Defaults()
	}
	var cfg *config.Config
	var err error
	if *configPath != "" {
		cfg, err = config.Load(*configPath, base)
	} else {
		cfg, err = config.LoadEnvOnly(base)
	}
	if err == nil {
		if *logLevel != "" {
			cfg.LogLevel = *logLevel
		}
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "coffer server: %v\n", err)
		return 1
	}

	logger, err := newLogger(os.Stderr, cfg.LogLevel)
	if err != nil {
		fmt.Fprintf(os.Stderr, "coffer server: %v\n", err)
		return 1
	}
	for _, w := range cfg.Warnings {
		logger.Warn().Msg(w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *cpuProfile != "" {
		stopProfile, err := startCPUProfile(*cpuProfile)
		if err != nil {
			logger.Error().Err(err).Msg("cannot write the CPU profile")
			return 1
		}
		defer stopProfile()
	}
	if *memProfile != "" {
		stopProfile, err := startHeapProfile(ctx, *memProfile, 500*time.Millisecond)
		if err != nil {
			logger.Error().Err(err).Msg("cannot write the heap profile")
			return 1
		}
		defer stopProfile()
	}
	if *clockFile != "" {
		stopClock, err := followClock(ctx, *clockFile, logger)
		if err != nil {
			logger.Error().Err(err).Msg("cannot read the test clock offset file")
			return 1
		}
		defer stopClock()
	}
	if err := serve(ctx, cfg, *dev, *devRoot, logger); err != nil {
		logger.Error().Err(err).Msg("server stopped with an error")
		return 1
	}
	return 0
}

// followClock moves the wall clock (internal/clock) by the offset in path,
// and follows the file until the returned stop (fault tests only).
func followClock(ctx context.Context, path string, logger zerolog.Logger) (stop func(), err error) {
	if err := clock.Load(path); err != nil {
		return nil, err
	}
	logger.Warn().Str("file", path).Dur("offset", clock.Offset()).Msg("the wall clock follows a test offset file: for fault tests only")
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		clock.Follow(ctx, path, 100*time.Millisecond, func(d time.Duration, err error) {
			if err != nil {
				logger.Error().Err(err).Msg("cannot read the test clock offset file; the clock stays where it is")
				return
			}
			logger.Warn().Dur("offset", d).Msg("the wall clock jumped (test offset file)")
		})
	}()
	return func() { cancel(); <-done }, nil
}

// newLogger builds the one zerolog logger passed down to every component.
func newLogger(w io.Writer, level string) (zerolog.Logger, error) {
	if level == "" {
		level = "info"
	}
	lvl, err := zerolog.ParseLevel(strings.ToLower(level))
	if err != nil {
		return zerolog.Logger{}, fmt.Errorf("log_level %q: use trace, debug, info, warn or error", level)
	}
	return zerolog.New(zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339, NoColor: true}).Level(lvl).With().Timestamp().Logger(), nil
}

func openStorage(cfg *config.Config) (storage.Transactional, error) {
	switch cfg.Storage.Type {
	case "inmem":
		return inmem.New(), nil
	case "bolt":
		sync, _ := strconv.ParseBool(cfg.Storage.Options["freelist_sync"]) // validated: absent is false
		return bolt.Open(bolt.Options{Path: cfg.Storage.Path, FreelistSync: sync})
	case "consul":
		opts, err := consul.FromMap(cfg.Storage.Path, cfg.Storage.Options)
		if err != nil {
			return nil, err
		}
		return consul.Open(opts)
	}
	return nil, fmt.Errorf("storage %q is not supported: use bolt, consul or inmem", cfg.Storage.Type)
}

func openSeal(cfg *config.Config) (seal.Seal, error) {
	if cfg.Seal == nil || cfg.Seal.Type == "" || cfg.Seal.Type == "shamir" {
		return seal.NewShamir(), nil
	}
	if cfg.Seal.Type == "static" {
		return seal.NewStatic(cfg.Seal.KeyFile)
	}
	return nil, fmt.Errorf("seal %q is not supported: use static, or no seal block for shamir", cfg.Seal.Type)
}

// serve runs one server until ctx is cancelled, then drains HTTP and closes storage.
func serve(ctx context.Context, cfg *config.Config, dev bool, devRoot string, logger zerolog.Logger) error {
	// The listener is bound first: a port in use fails before storage and
	// the bus open, and an embedded NATS server on a random port cannot be
	// given the listener's port.
	ln, err := net.Listen("tcp", cfg.Listener.Address)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another server using the port?)", cfg.Listener.Address, err)
	}
	defer ln.Close() // serving closes it too; this covers the failures before
	phys, err := openStorage(cfg)
	if err != nil {
		return err
	}
	sl, err := openSeal(cfg)
	if err != nil {
		if cl, ok := phys.(io.Closer); ok {
			_ = cl.Close()
		}
		return err
	}
	busCfg := busConfig(cfg, dev)
	nb, err := openBus(ctx, busCfg, logger)
	if err != nil {
		if cl, ok := phys.(io.Closer); ok {
			_ = cl.Close()
		}
		return err
	}
	if nb != nil {
		defer func() {
			if err := nb.Close(); err != nil {
				logger.Warn().Err(err).Msg("closing the NATS bus")
			}
		}()
	}
	haStore, _ := phys.(*consul.Backend)
	if haStore != nil && !haStore.HAEnabled() {
		haStore = nil
	}
	c, err := core.New(ctx, core.Config{
		Standby:            haStore != nil,
		DisablePerfStandby: cfg.DisablePerformanceStandby,
		Physical:           phys,
		StorageType:        cfg.Storage.Type,
		Seal:               sl,
		ClusterName:        cfg.ClusterName,
		APIAddr:            cfg.AdvertisedAPIAddr(),
		DefaultLeaseTTL:    cfg.DefaultLeaseTTL,
		MaxLeaseTTL:        cfg.MaxLeaseTTL,
		Logger:             logger.With().Str("component", "core").Logger(),
	})
	if err != nil {
		if cl, ok := phys.(io.Closer); ok {
			_ = cl.Close()
		}
		return err
	}
	repl := attachReplication(c, cfg, busCfg, nb, dev, logger)
	installTelemetry(cfg, repl)
	defer func() {
		if err := c.Close(); err != nil {
			logger.Error().Err(err).Msg("closing storage")
			return
		}
		logger.Info().Msg("storage closed")
	}()
	// Runs before the core closes: a running activation stops, to resume at
	// the next start.
	defer repl.Close()

	if haStore != nil {
		node := newHANode(c, repl, haStore, cfg, logger)
		// Runs first: the core stops writing and the lock is given up
		// before replication and storage close.
		defer node.Stop()
		if err := c.Start(ctx); err != nil {
			return err
		}
		return serveHTTP(ctx, ln, c, cfg, node, logger)
	}

	resumed, err := repl.ResumeActivation(ctx)
	if err != nil {
		return fmt.Errorf("read the activation record: %w", err)
	}
	switch {
	case resumed:
		// The data belongs to the activation: the core stays sealed until
		// it completes (sys/replication/status shows it).
	case dev:
		if err := initDev(ctx, c, repl, devRoot, cfg, logger); err != nil {
			return err
		}
	default:
		if err := c.Start(ctx); err != nil {
			return err
		}
	}
	return serveHTTP(ctx, ln, c, cfg, nil, logger)
}

// attachReplication gives the core its replication layer on the bus.
func attachReplication(c *core.Core, cfg *config.Config, busCfg bus.Config, nb *bus.Bus, dev bool, logger zerolog.Logger) *replmode.Manager {
	return replmode.Attach(c, replmode.Config{
		Bus:               nb,
		BusTemplate:       busCfg.ClientTemplate(),
		WALStreamMaxAge:   cfg.Replication.WALStreamMaxAge,
		WALStreamMaxBytes: cfg.Replication.WALStreamMaxBytes,
		WALStreamMaxMsgs:  cfg.Replication.WALStreamMaxMsgs,
		WALStreamReplicas: int(cfg.Replication.WALStreamReplicas),
		BestEffortWALWait: cfg.Replication.BestEffortWALWaitDuration,
		MaxTokenTTL:       cfg.Replication.MaxActivationTokenTTL,
		ActivationWait:    cfg.Replication.ActivationWait,
		Dev:               dev,
		Logger:            logger.With().Str("component", "replication").Logger(),
	})
}

// newHANode makes the node one of its cluster's HA nodes on Consul: a
// standby until it holds the lock (ha.Node), resuming on each activation a
// replication activation the previous active node left unfinished.
func newHANode(c *core.Core, repl *replmode.Manager, store *consul.Backend, cfg *config.Config, logger zerolog.Logger) *ha.Node {
	o := store.Options()
	node := ha.New(c, ha.Options{
		Storage: store, APIAddr: cfg.AdvertisedAPIAddr(), ClusterAddr: cfg.ClusterAddr,
		SessionTTL: o.SessionTTL, LockDelay: o.LockDelay, CheckInterval: o.CheckInterval,
		OnActive: func(ctx context.Context) {
			if _, err := repl.ResumeActivation(ctx); err != nil {
				logger.Error().Err(err).Msg("read the activation record")
			}
		},
		Logger: logger,
	})
	c.SetHA(node)
	return node
}

// serveHTTP serves the API of c on ln, the configured listener, until ctx is
// cancelled, then lets in-flight requests finish (up to shutdownGrace). With
// node (HA), the node joins the election once the listener is up (Consul's
// health check of it must pass).
func serveHTTP(ctx context.Context, ln net.Listener, c *core.Core, cfg *config.Config, node *ha.Node, logger zerolog.Logger) error {
	l := cfg.Listener
	srv := &http.Server{
		// /ui/replication, the status page (package ui); the rest is the API.
		Handler: ui.Wrap(httpapi.New(c, httpapi.Options{
			MaxRequestSize:                cfg.MaxRequestSize,
			MaxUnauthenticatedRequestSize: l.MaxUnauthenticatedRequestSize,
			MaxUnauthenticatedRequests:    int(l.MaxUnauthenticatedRequests),
			Logical:                       httpapi.NewLogical(c, logger.With().Str("component", "http").Logger()),
			Standby:                       standbyOf(node),
			UnauthenticatedMetricsAccess:  l.Telemetry.UnauthenticatedMetricsAccess,
		}, logger.With().Str("component", "http").Logger())),
		ReadHeaderTimeout: l.HTTPReadHeaderTimeout,
		ReadTimeout:       l.HTTPReadTimeout,
		WriteTimeout:      l.HTTPWriteTimeout,
		IdleTimeout:       l.HTTPIdleTimeout,
	}
	scheme := "http"
	if !cfg.Listener.TLSDisable {
		cert, err := tls.LoadX509KeyPair(cfg.Listener.TLSCertFile, cfg.Listener.TLSKeyFile)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("load TLS certificate %s / key %s: %w", cfg.Listener.TLSCertFile, cfg.Listener.TLSKeyFile, err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info().Str("address", scheme+"://"+ln.Addr().String()).Str("storage", cfg.Storage.Type).Msg("coffer server listening")
	if node != nil {
		node.Start()
	}

	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	logger.Info().Msg("shutting down: finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// standbyOf is node as httpapi's Standby, nil without HA.
func standbyOf(node *ha.Node) httpapi.Standby {
	if node == nil {
		return nil
	}
	return node
}

// initDev initializes and unseals a fresh dev server with one key share and
// prints what a developer needs, like Vault's dev mode.
func initDev(ctx context.Context, c *core.Core, repl *replmode.Manager, rootID string, cfg *config.Config, logger zerolog.Logger) error {
	init, err := c.Initialized(ctx)
	if err != nil {
		return err
	}
	if init {
		logger.Warn().Msg("dev mode on storage that is already initialized: unsealing only works with an auto-unseal seal")
		return c.Start(ctx)
	}
	res, err := c.Initialize(ctx, core.InitRequest{SecretShares: 1, SecretThreshold: 1, RootTokenID: rootID})
	if err != nil {
		return fmt.Errorf("dev init: %w", err)
	}
	repl.SetDevRootToken(res.RootToken)
	if len(res.Keys) > 0 {
		if _, err := c.Unseal(ctx, res.Keys[0]); err != nil {
			return fmt.Errorf("dev unseal: %w", err)
		}
	}
	// As in Vault's dev mode: a kv version 2 engine at secret/.
	if err := c.EnableMount(ctx, &core.MountEntry{Table: core.SecretTable, Path: "secret/", Type: "kv", Description: "key/value secret storage", Options: map[string]string{"version": "2"}}); err != nil {
		return fmt.Errorf("dev mount secret/: %w", err)
	}
	addr := "http://" + cfg.Listener.Address
	if !cfg.Listener.TLSDisable {
		addr = "https://" + cfg.Listener.Address
	}
	fmt.Fprintf(os.Stdout, `WARNING! dev mode is enabled! Storage is in memory and everything is lost on exit.
%s
You may need to set the following environment variables:

    $ export VAULT_ADDR='%s'

Unseal Key: %s
Root Token: %s

Development mode should NOT be used in production installations!
`, devBusWarning(cfg), addr, encodeKey(res), res.RootToken)
	return nil
}

// devBusWarning is the dev banner's line about an embedded NATS server, which
// dev mode runs without authentication ("" without one).
func devBusWarning(cfg *config.Config) string {
	if !cfg.Bus.Embedded {
		return ""
	}
	return fmt.Sprintf("The embedded NATS server on nats://%s takes no credentials: anyone who can reach it is on the bus.\n", cfg.Bus.Listen)
}

func encodeKey(res *core.InitResult) string {
	if len(res.Keys) == 0 {
		return "(auto-unseal)"
	}
	return base64.StdEncoding.EncodeToString(res.Keys[0])
}
