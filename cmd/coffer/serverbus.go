package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/cofferhq/coffer/bus"
	"github.com/cofferhq/coffer/config"
	"github.com/rs/zerolog"
)

// busConfig turns the bus block into the bus package's configuration. Outside
// dev mode the embedded server requires credentials, and its store (which
// holds them) must survive a restart: with no store_dir it goes next to the
// bolt file, as <dir of the bolt file>/nats. Dev servers, and inmem storage,
// keep the temporary store.
func busConfig(cfg *config.Config, dev bool) bus.Config {
	b := cfg.Bus
	bc := bus.Config{
		Embedded: b.Embedded, Listen: b.Listen, StoreDir: b.StoreDir, NoAuth: dev && b.Embedded, // an external NATS has its own authentication
		URL: b.URL, CredsFile: b.CredsFile, NKeySeedFile: b.NKeySeedFile, User: b.User, Password: b.Password,
		TLSCAFile: b.TLSCAFile, TLSCertFile: b.TLSCertFile, TLSKeyFile: b.TLSKeyFile,
		Name: "coffer-" + cfg.ClusterName,
	}
	if bc.Embedded && bc.StoreDir == "" && !dev && cfg.Storage.Type == "bolt" && cfg.Storage.Path != "" {
		bc.StoreDir = filepath.Join(filepath.Dir(cfg.Storage.Path), "nats")
	}
	return bc
}

// openBus opens the bus the configuration names (nil without one) and says
// how others authenticate to an embedded server.
func openBus(ctx context.Context, bc bus.Config, logger zerolog.Logger) (*bus.Bus, error) {
	if !bc.Embedded && bc.URL == "" {
		return nil, nil
	}
	nb, err := bus.Open(ctx, bc, logger.With().Str("component", "bus").Logger())
	if err != nil {
		return nil, fmt.Errorf("open the NATS bus: %w", err)
	}
	ev := logger.Info().Str("url", nb.ClientURL()).Bool("embedded", bc.Embedded)
	switch {
	case bc.Embedded && bc.NoAuth:
		ev.Msg("NATS bus ready")
		logger.Warn().Str("url", nb.ClientURL()).Msg("dev mode: the embedded NATS server requires no credentials: anyone who reaches it is on the bus")
	case bc.Embedded:
		ev.Str("client_seed_file", nb.ClientSeedFile()).Str("client_public_key", nb.ClientPublicKey()).
			Msg("NATS bus ready; the embedded server requires credentials: secondaries and tools connect with a copy of the client seed file (bus { nkey_seed_file } on a secondary; see docs/security.md)")
		if bc.StoreDir == "" {
			logger.Warn().Msg("the embedded NATS store is temporary (no bus.store_dir, no bolt file): its client seed changes at every start, so copies given to secondaries stop working")
		}
	default:
		ev.Msg("NATS bus ready")
	}
	return nb, nil
}
