package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// Config is the whole server configuration. The koanf tags are the keys of the
// YAML and JSON shape; HCL uses the same names, with the type of storage,
// listener and seal given as the block label.
type Config struct {
	Storage  Storage  `koanf:"storage"`
	Listener Listener `koanf:"listener"`
	// Seal is nil when the file has no seal block: the server then uses the
	// default Shamir seal and asks for unseal keys.
	Seal *Seal `koanf:"seal"`

	// APIAddr is the address clients and secondaries use to reach this
	// cluster's API. Empty means derived from the listener (see AdvertisedAPIAddr).
	APIAddr string `koanf:"api_addr"`
	// ClusterName names this cluster in status output. Empty lets the core pick one at init.
	ClusterName string `koanf:"cluster_name"`
	// LogLevel is one of trace, debug, info, warn, error.
	LogLevel string `koanf:"log_level"`
	// MaxRequestSize caps an HTTP request body, in bytes.
	MaxRequestSize int64 `koanf:"max_request_size" unit:"bytes"`

	// Bus is the NATS connection replication runs over.
	Bus Bus `koanf:"bus"`
	// Replication tunes log shipping and forwarding.
	Replication Replication `koanf:"replication"`

	// DefaultLeaseTTL and MaxLeaseTTL bound token and secret leases.
	DefaultLeaseTTL time.Duration `koanf:"default_lease_ttl"`
	MaxLeaseTTL     time.Duration `koanf:"max_lease_ttl"`

	// Warnings are problems Load found that do not stop the server, such as
	// a COFFER_* environment variable that names no setting. The server logs them.
	Warnings []string `koanf:"-"`
}

// Storage selects the physical backend.
type Storage struct {
	// Type is one of StorageTypes.
	Type string `koanf:"type"`
	// Path is the bbolt file for bolt.
	Path string `koanf:"path"`
	// Options holds every other key of the storage block, as strings, for
	// backends that take more settings. bolt and inmem take none.
	Options map[string]string `koanf:"-"`
}

// Listener is the HTTP API listener.
type Listener struct {
	// Type is "tcp", the only kind there is.
	Type string `koanf:"type"`
	// Address is host:port to listen on.
	Address string `koanf:"address"`
	// TLSDisable serves plain HTTP. Otherwise TLSCertFile and TLSKeyFile are required.
	TLSDisable  bool   `koanf:"tls_disable"`
	TLSCertFile string `koanf:"tls_cert_file"`
	TLSKeyFile  string `koanf:"tls_key_file"`
}

// Seal selects how the barrier key is protected.
type Seal struct {
	// Type is one of SealTypes.
	Type string `koanf:"type"`
	// KeyFile holds the static seal's key.
	KeyFile string `koanf:"key_file"`
}

// Bus is the NATS JetStream connection: an embedded nats-server, or a URL of
// an external cluster. Neither set means replication is unavailable.
type Bus struct {
	// Embedded runs nats-server with JetStream inside this process.
	Embedded bool `koanf:"embedded"`
	// Listen is the embedded server's client address, host:port.
	Listen string `koanf:"listen"`
	// StoreDir is the embedded server's JetStream directory; empty means a
	// directory the bus package chooses (a temporary one in dev mode).
	StoreDir string `koanf:"store_dir"`
	// URL of an external NATS cluster; several may be given, comma-separated.
	URL string `koanf:"url"`
	// CredsFile is a NATS user credentials (JWT + nkey) file.
	CredsFile string `koanf:"creds_file"`
	// TLSCAFile verifies the NATS servers' certificates.
	TLSCAFile string `koanf:"tls_ca_file"`
}

// Replication tunes the WAL stream and forwarding. Zero stream limits mean no limit.
type Replication struct {
	// WALStreamMaxAge is the age past which WAL batches leave the stream.
	WALStreamMaxAge time.Duration `koanf:"wal_stream_max_age"`
	// WALStreamMaxBytes caps the stream's size in bytes ("1GiB", "512MiB" or a plain number).
	WALStreamMaxBytes int64 `koanf:"wal_stream_max_bytes" unit:"bytes"`
	// WALStreamMaxMsgs caps the number of batches in the stream.
	WALStreamMaxMsgs int64 `koanf:"wal_stream_max_msgs"`
	// WALStreamReplicas is the WAL stream's JetStream replica count (1, or 3
	// on a three-node NATS cluster so that losing one node loses nothing).
	WALStreamReplicas int64 `koanf:"wal_stream_replicas"`
	// BestEffortWALWaitDuration is how long a secondary holds a forwarded
	// write's response waiting to apply its WAL index.
	BestEffortWALWaitDuration time.Duration `koanf:"best_effort_wal_wait_duration"`
}

// Supported kinds of each block.
var (
	StorageTypes = []string{"bolt", "inmem"}
	SealTypes    = []string{"static"}
	LogLevels    = []string{"trace", "debug", "info", "warn", "error"}
)

// Default values.
const (
	DefaultListenAddress  = "127.0.0.1:8200"
	DefaultMaxRequestSize = 32 << 20
	DefaultLeaseTTL       = 768 * time.Hour
	DefaultMaxLeaseTTL    = 768 * time.Hour
	DefaultBusListen      = "127.0.0.1:4222"
)

// Defaults is the base of a production server: bolt storage whose path the
// operator must set, a TLS listener on 127.0.0.1:8200 whose certificate the
// operator must set (or tls_disable), no bus.
func Defaults() *Config {
	return &Config{
		Storage:        Storage{Type: "bolt"},
		Listener:       Listener{Type: "tcp", Address: DefaultListenAddress},
		LogLevel:       "info",
		MaxRequestSize: DefaultMaxRequestSize,
		Replication: Replication{
			WALStreamMaxAge:           24 * time.Hour,
			WALStreamMaxBytes:         1 << 30,
			WALStreamMaxMsgs:          0,
			BestEffortWALWaitDuration: 2 * time.Second,
		},
		DefaultLeaseTTL: DefaultLeaseTTL,
		MaxLeaseTTL:     DefaultMaxLeaseTTL,
	}
}

// DevDefaults is the base of `coffer server -dev`: everything in memory, plain
// HTTP on 127.0.0.1:8200, an embedded NATS server on 127.0.0.1:4222.
func DevDefaults() *Config {
	c := Defaults()
	c.Storage = Storage{Type: "inmem"}
	c.Listener.TLSDisable = true
	c.Bus = Bus{Embedded: true, Listen: DefaultBusListen}
	return c
}

// AdvertisedAPIAddr is APIAddr, or when empty the listener's address with the
// scheme its TLS setting implies (an unspecified host becomes 127.0.0.1).
func (c *Config) AdvertisedAPIAddr() string {
	if c.APIAddr != "" {
		return c.APIAddr
	}
	scheme := "https"
	if c.Listener.TLSDisable {
		scheme = "http"
	}
	host, port, err := net.SplitHostPort(c.Listener.Address)
	if err != nil {
		return scheme + "://" + c.Listener.Address
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// Validate checks the configuration as a whole and reports every problem it
// finds, each saying what to change.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	switch c.Storage.Type {
	case "bolt":
		if c.Storage.Path == "" {
			add(`storage "bolt": path is required: set storage "bolt" { path = "/var/lib/coffer/coffer.db" } or COFFER_STORAGE_PATH`)
		}
	case "inmem":
	case "":
		add(`storage: no type given: use a storage "<type>" block (HCL) or storage.type (YAML, JSON); supported are %s`, strings.Join(StorageTypes, ", "))
	default:
		add("storage: unknown type %q: supported are %s", c.Storage.Type, strings.Join(StorageTypes, ", "))
	}
	if slices.Contains(StorageTypes, c.Storage.Type) && len(c.Storage.Options) > 0 {
		keys := make([]string, 0, len(c.Storage.Options))
		for k := range c.Storage.Options {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		add("storage %q: unknown key(s) %s: this backend takes only path", c.Storage.Type, strings.Join(keys, ", "))
	}

	if c.Listener.Type != "tcp" {
		add(`listener: unknown type %q: supported is tcp, as in listener "tcp" { address = "127.0.0.1:8200" }`, c.Listener.Type)
	}
	if _, _, err := net.SplitHostPort(c.Listener.Address); err != nil {
		add("listener: address %q is not host:port (such as 127.0.0.1:8200): %v", c.Listener.Address, err)
	}
	if !c.Listener.TLSDisable && (c.Listener.TLSCertFile == "" || c.Listener.TLSKeyFile == "") {
		add("listener: TLS is enabled but tls_cert_file and tls_key_file are not both set: " +
			"set both, or set tls_disable = true to serve plain HTTP")
	}

	if c.Seal != nil {
		switch c.Seal.Type {
		case "static":
			if c.Seal.KeyFile == "" {
				add(`seal "static": key_file is required: set seal "static" { key_file = "/etc/coffer/unseal.key" }`)
			}
		case "":
			add("seal: no type given: supported are %s; leave the seal block out for the default Shamir seal", strings.Join(SealTypes, ", "))
		default:
			add("seal: unknown type %q: supported are %s; leave the seal block out for the default Shamir seal",
				c.Seal.Type, strings.Join(SealTypes, ", "))
		}
	}

	if c.APIAddr != "" {
		u, err := url.Parse(c.APIAddr)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("api_addr %q must be an http:// or https:// URL with a host, such as https://coffer.example.com:8200", c.APIAddr)
		}
	}
	if !slices.Contains(LogLevels, c.LogLevel) {
		add("log_level %q: supported are %s", c.LogLevel, strings.Join(LogLevels, ", "))
	}
	if c.MaxRequestSize <= 0 {
		add("max_request_size %d: must be a positive number of bytes, such as 33554432 or \"32MiB\"", c.MaxRequestSize)
	}
	if c.DefaultLeaseTTL < 0 {
		add("default_lease_ttl %s: must not be negative", c.DefaultLeaseTTL)
	}
	if c.MaxLeaseTTL < 0 {
		add("max_lease_ttl %s: must not be negative", c.MaxLeaseTTL)
	}
	if c.DefaultLeaseTTL > 0 && c.MaxLeaseTTL > 0 && c.DefaultLeaseTTL > c.MaxLeaseTTL {
		add("default_lease_ttl %s is longer than max_lease_ttl %s: lower it or raise max_lease_ttl", c.DefaultLeaseTTL, c.MaxLeaseTTL)
	}

	if c.Bus.Embedded {
		if c.Bus.URL != "" {
			add("bus: embedded = true and url are both set: use the embedded server or an external one, not both")
		}
		if _, _, err := net.SplitHostPort(c.Bus.Listen); err != nil {
			add("bus: listen %q is not host:port (such as 127.0.0.1:4222): %v", c.Bus.Listen, err)
		}
	} else if c.Bus.URL != "" {
		for _, s := range strings.Split(c.Bus.URL, ",") {
			s = strings.TrimSpace(s)
			u, err := url.Parse(s)
			if err != nil || u.Host == "" || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, u.Scheme) {
				add("bus: url %q is not a NATS URL such as nats://127.0.0.1:4222 (schemes nats, tls, ws, wss)", s)
			}
		}
	}

	r := c.Replication
	if r.WALStreamMaxAge < 0 {
		add("replication: wal_stream_max_age %s must not be negative (0 means no age limit)", r.WALStreamMaxAge)
	}
	if r.WALStreamMaxBytes < 0 {
		add("replication: wal_stream_max_bytes %d must not be negative (0 means no size limit)", r.WALStreamMaxBytes)
	}
	if r.WALStreamMaxMsgs < 0 {
		add("replication: wal_stream_max_msgs %d must not be negative (0 means no message limit)", r.WALStreamMaxMsgs)
	}
	if r.WALStreamReplicas < 0 || r.WALStreamReplicas > 5 {
		add("replication: wal_stream_replicas %d must be between 1 and 5 (0 means 1)", r.WALStreamReplicas)
	}
	if r.BestEffortWALWaitDuration < 0 {
		add("replication: best_effort_wal_wait_duration %s must not be negative", r.BestEffortWALWaitDuration)
	}
	if r.WALStreamMaxAge == 0 && r.WALStreamMaxBytes == 0 && r.WALStreamMaxMsgs == 0 {
		add("replication: wal_stream_max_age, wal_stream_max_bytes and wal_stream_max_msgs are all 0: " +
			"the WAL stream would grow without bound; set at least one limit")
	}

	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid configuration: %w", errors.Join(errs...))
}
