package bustest

import (
	"context"
	"testing"
	"time"

	"github.com/cofferhq/coffer/bus"
	"github.com/rs/zerolog"
)

// openTimeout bounds the embedded server's start.
const openTimeout = 30 * time.Second

// Start starts an embedded NATS server with JetStream on a random loopback
// port, storing in t.TempDir(), and returns the bus connected to it; the bus
// is closed (the server stopped) when the test ends. Its ClientURL is the
// nats:// URL for other clients. The server requires no credentials (as a
// dev server's): any client may connect.
func Start(t testing.TB) *bus.Bus {
	t.Helper()
	return StartConfig(t, bus.Config{})
}

// StartConfig is Start with cfg, for a test that restarts a server on the same
// address and store, or needs another setting. Embedded is always on; an
// empty Listen means 127.0.0.1:0 (a random port), an empty StoreDir
// t.TempDir(), an empty Name "test-<test name>". NoAuth is always on: a test
// of the embedded server's authentication calls bus.Open itself. Closing the
// returned bus before the test ends (an outage) is fine.
func StartConfig(t testing.TB, cfg bus.Config) *bus.Bus {
	t.Helper()
	cfg.Embedded = true
	cfg.NoAuth = true
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.StoreDir == "" {
		cfg.StoreDir = t.TempDir()
	}
	if cfg.Name == "" {
		cfg.Name = "test-" + t.Name()
	}
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	logger := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	b, err := bus.Open(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("start embedded NATS on %s: %v", cfg.Listen, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}
