package bus

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// DefaultListen is the embedded server's client address when Config.Listen is
// empty.
const DefaultListen = "127.0.0.1:4222"

// DefaultName is the connection name when Config.Name is empty.
const DefaultName = "coffer"

// Config chooses between an embedded nats-server and an external NATS system.
// Validate fills the defaults; Open calls it.
type Config struct {
	// Embedded runs an embedded nats-server with JetStream in this process.
	Embedded bool
	// Listen is the embedded server's client listen address, e.g.
	// "127.0.0.1:4222"; "127.0.0.1:0" picks a random free port. Default
	// DefaultListen.
	Listen string
	// StoreDir is the embedded server's JetStream store directory. "" means a
	// temporary directory removed on Close (nothing survives a restart).
	StoreDir string
	// Advertise is the URL ClientURL returns in embedded mode, for when the
	// listen address is not what others should dial (0.0.0.0, NAT, DNS).
	// Default: nats://<actual listen address>.
	Advertise string
	// MaxPayload is the embedded server's max_payload in bytes. Default
	// DefaultMaxPayload. External servers have their own setting; see
	// Bus.MaxPayload.
	MaxPayload int32

	// URL is the external NATS system: nats://host:port[,nats://host:port...].
	URL string
	// CredsFile is an external NATS credentials file (JWT and seed).
	CredsFile string
	// TLSCAFile is the CA certificate file used to verify an external server.
	TLSCAFile string

	// Name is the connection name shown by the NATS server, e.g. "coffer-dc1".
	// Default DefaultName.
	Name string
}

// DefaultMaxPayload is the embedded server's max_payload: 8 MiB, room for a
// 1 MiB WAL batch of incompressible ciphertext with all its overhead. NATS'
// own default (1 MiB) is too small for that.
const DefaultMaxPayload = 8 << 20

// Validate checks the configuration, fills defaults, and says what to fix.
func (c *Config) Validate() error {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Embedded {
		if c.URL != "" {
			return errors.New("bus config: both embedded NATS and an external url are set: choose one (drop the url to embed a server, or disable embedded)")
		}
		if c.CredsFile != "" || c.TLSCAFile != "" {
			return errors.New("bus config: creds_file and tls_ca_file apply to an external NATS only: remove them or disable embedded")
		}
		if c.Listen == "" {
			c.Listen = DefaultListen
		}
		host, port, err := net.SplitHostPort(c.Listen)
		if err != nil {
			return fmt.Errorf("bus config: listen address %q is not host:port (e.g. 127.0.0.1:4222): %w", c.Listen, err)
		}
		if host == "" {
			return fmt.Errorf("bus config: listen address %q has no host: use 127.0.0.1:%s, or 0.0.0.0:%s for every interface", c.Listen, port, port)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return fmt.Errorf("bus config: listen address %q has an invalid port: use 0-65535 (0 picks a free one)", c.Listen)
		}
		if c.MaxPayload == 0 {
			c.MaxPayload = DefaultMaxPayload
		}
		if c.MaxPayload < 0 {
			return fmt.Errorf("bus config: max payload %d is negative: leave it 0 for the default of %d bytes", c.MaxPayload, DefaultMaxPayload)
		}
		return nil
	}
	if c.URL == "" {
		return errors.New("bus config: no NATS url: set the external url (nats://host:4222) or enable the embedded server")
	}
	for _, u := range strings.Split(c.URL, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			return fmt.Errorf("bus config: NATS url %q has an empty entry: separate servers with single commas", c.URL)
		}
	}
	for what, f := range map[string]string{"creds file": c.CredsFile, "TLS CA file": c.TLSCAFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("bus config: NATS %s %q cannot be read: fix the path or its permissions: %w", what, f, err)
		}
	}
	return nil
}
