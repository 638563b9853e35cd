package bus

import (
	"crypto/tls"
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
//
// The fields fall in two halves. The server half (Embedded, Listen, StoreDir,
// Advertise, MaxPayload, NoAuth, and in embedded mode TLSCertFile and
// TLSKeyFile) describes the nats-server this process runs. The client half
// (URL, CredsFile, NKeySeedFile, User, Password, TLSCAFile, and in external
// mode TLSCertFile and TLSKeyFile) is how this process authenticates to a
// NATS server it does not run: the external URL, and, when this cluster is a
// secondary, its primary's NATS (ClientTemplate). An embedded server's own
// connection never uses the client half: it has credentials of its own (see
// auth.go).
type Config struct {
	// Embedded runs an embedded nats-server with JetStream in this process.
	Embedded bool
	// Listen is the embedded server's client listen address, e.g.
	// "127.0.0.1:4222"; "127.0.0.1:0" picks a random free port. Default
	// DefaultListen.
	Listen string
	// StoreDir is the embedded server's JetStream store directory; it also
	// holds the generated credentials (StoreDir/auth). "" means a temporary
	// directory removed on Close (nothing survives a restart, and the
	// credentials change on every start).
	StoreDir string
	// Advertise is the URL ClientURL returns in embedded mode, for when the
	// listen address is not what others should dial (0.0.0.0, NAT, DNS).
	// Default: nats://<actual listen address> (tls:// with TLSCertFile).
	Advertise string
	// MaxPayload is the embedded server's max_payload in bytes. Default
	// DefaultMaxPayload. External servers have their own setting; see
	// Bus.MaxPayload.
	MaxPayload int32
	// NoAuth runs the embedded server without authentication: any client
	// that reaches Listen is on the bus. For dev servers only. Otherwise the
	// server accepts two nkey users only: this process's own connection (a
	// key held in memory) and the client user whose seed it generates at
	// first start in StoreDir/auth/client.nk (Bus.ClientSeedFile).
	NoAuth bool

	// TLSCertFile and TLSKeyFile are PEM files. In embedded mode: the
	// server's certificate and key, and then every client must use TLS. In
	// external mode: a client certificate for NATS servers that verify
	// clients. Both or neither.
	TLSCertFile string
	TLSKeyFile  string

	// URL is the external NATS system: nats://host:port[,nats://host:port...].
	URL string
	// CredsFile is a NATS credentials file (user JWT and nkey seed), for a
	// NATS system run in operator mode.
	CredsFile string
	// NKeySeedFile is a file holding an nkey user seed ("SU..."), such as the
	// client.nk an embedded coffer NATS generates.
	NKeySeedFile string
	// User and Password authenticate with a plain user and password.
	User     string
	Password string
	// TLSCAFile is the CA certificate file used to verify the NATS servers
	// this process connects to as a client. Default: the system's roots.
	TLSCAFile string

	// Name is the connection name shown by the NATS server, e.g. "coffer-dc1".
	// Default DefaultName.
	Name string
}

// DefaultMaxPayload is the embedded server's max_payload: 8 MiB, room for a
// 1 MiB WAL batch of incompressible ciphertext with all its overhead. NATS'
// own default (1 MiB) is too small for that.
const DefaultMaxPayload = 8 << 20

// ClientTemplate is the client half of c: the configuration this process
// uses to connect to a NATS server it does not run (a secondary connecting
// to its primary's NATS sets URL). In embedded mode the TLS certificate is
// the server's, so it is not part of the template.
func (c Config) ClientTemplate() Config {
	t := Config{
		CredsFile: c.CredsFile, NKeySeedFile: c.NKeySeedFile,
		User: c.User, Password: c.Password,
		TLSCAFile: c.TLSCAFile, Name: c.Name,
	}
	if !c.Embedded {
		t.TLSCertFile, t.TLSKeyFile = c.TLSCertFile, c.TLSKeyFile
	}
	return t
}

// Validate checks the configuration, fills defaults, and says what to fix.
func (c *Config) Validate() error {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if err := c.validateClient(); err != nil {
		return err
	}
	if err := c.validateTLSPair(); err != nil {
		return err
	}
	if c.Embedded {
		return c.validateEmbedded()
	}
	if c.NoAuth {
		return errors.New("bus config: no_auth applies to an embedded NATS only: an external NATS has its own authentication")
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
	return nil
}

func (c *Config) validateEmbedded() error {
	if c.URL != "" {
		return errors.New("bus config: both embedded NATS and an external url are set: choose one (drop the url to embed a server, or disable embedded)")
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

// validateClient checks the client credentials: one method at most, and
// files that exist. It never puts a password or seed in an error.
func (c *Config) validateClient() error {
	methods := 0
	for _, set := range []bool{c.CredsFile != "", c.NKeySeedFile != "", c.User != "" || c.Password != ""} {
		if set {
			methods++
		}
	}
	if methods > 1 {
		return errors.New("bus config: creds_file, nkey_seed_file and user/password are alternatives: set only one")
	}
	if (c.User == "") != (c.Password == "") {
		return errors.New("bus config: user and password go together: set both, or neither")
	}
	for what, f := range map[string]string{"creds file": c.CredsFile, "nkey seed file": c.NKeySeedFile, "TLS CA file": c.TLSCAFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("bus config: NATS %s %q cannot be read: fix the path or its permissions: %w", what, f, err)
		}
	}
	if c.NKeySeedFile != "" {
		if _, err := readUserSeed(c.NKeySeedFile); err != nil {
			return fmt.Errorf("bus config: %w", err)
		}
	}
	return nil
}

// validateTLSPair checks that the certificate and its key load together.
func (c *Config) validateTLSPair() error {
	if c.TLSCertFile == "" && c.TLSKeyFile == "" {
		return nil
	}
	if c.TLSCertFile == "" || c.TLSKeyFile == "" {
		return errors.New("bus config: tls_cert_file and tls_key_file go together: set both, or neither")
	}
	if _, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile); err != nil {
		return fmt.Errorf("bus config: TLS certificate %q with key %q: %w (check that both are PEM and belong together)", c.TLSCertFile, c.TLSKeyFile, err)
	}
	return nil
}
