package config

import (
	"net"
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
	// ClusterAddr is the address other nodes of this cluster use to reach
	// this node (Vault's cluster_addr): sys/leader reports the active
	// node's as leader_cluster_address. Standbys forward requests to the
	// active node's api_addr.
	ClusterAddr string `koanf:"cluster_addr"`
	// DisablePerformanceStandby (Vault's disable_performance_standby): a
	// standby of an HA cluster forwards every request, reads included, and
	// sys/health answers 429 for it rather than 473.
	DisablePerformanceStandby bool `koanf:"disable_performance_standby"`
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
	// Telemetry is Vault's telemetry block: what /v1/sys/metrics serves.
	Telemetry Telemetry `koanf:"telemetry"`

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
	// Path is the bbolt file for bolt, the KV prefix for consul.
	Path string `koanf:"path"`
	// Options holds every other key of the storage block, as strings, for
	// backends that take more settings (StorageOptions: consul's, and
	// bolt's freelist_sync). inmem takes none.
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

	// The HTTP server's timeouts, with Vault's names and defaults. Zero
	// means none, except that Go's server falls back, for the header read,
	// to HTTPReadTimeout, and for the idle wait to HTTPReadTimeout then
	// HTTPReadHeaderTimeout.
	//
	// HTTPReadHeaderTimeout bounds reading a request's headers.
	HTTPReadHeaderTimeout time.Duration `koanf:"http_read_header_timeout"`
	// HTTPReadTimeout bounds reading a whole request, body included: a
	// client that stalls its body is cut off after it.
	HTTPReadTimeout time.Duration `koanf:"http_read_timeout"`
	// HTTPWriteTimeout bounds a request from the end of its headers to the
	// end of its response.
	HTTPWriteTimeout time.Duration `koanf:"http_write_timeout"`
	// HTTPIdleTimeout bounds the wait for the next request on a kept-alive connection.
	HTTPIdleTimeout time.Duration `koanf:"http_idle_timeout"`

	// MaxUnauthenticatedRequestSize caps the body of a request served
	// without a valid token (sys/init, sys/unseal, logins), in bytes; when
	// MaxRequestSize is smaller, it applies instead.
	MaxUnauthenticatedRequestSize int64 `koanf:"max_unauthenticated_request_size" unit:"bytes"`
	// MaxUnauthenticatedRequests is how many requests without a valid token
	// are served at once; more are answered 503.
	MaxUnauthenticatedRequests int64 `koanf:"max_unauthenticated_requests"`

	// Telemetry is the listener's telemetry block, as Vault's.
	Telemetry ListenerTelemetry `koanf:"telemetry"`
}

// ListenerTelemetry is the telemetry block inside a listener block.
type ListenerTelemetry struct {
	// UnauthenticatedMetricsAccess serves /v1/sys/metrics on this listener
	// without a token. Otherwise it takes a token with read on sys/metrics.
	UnauthenticatedMetricsAccess bool `koanf:"unauthenticated_metrics_access"`
}

// Telemetry is Vault's telemetry block, the part Coffer implements.
type Telemetry struct {
	// PrometheusRetentionTime is how long a metric not updated stays in
	// /v1/sys/metrics; zero turns the Prometheus format off, as in Vault.
	PrometheusRetentionTime time.Duration `koanf:"prometheus_retention_time"`
	// DisableHostname leaves the host name out of gauge names
	// (vault.<host>.runtime.alloc_bytes becomes vault.runtime.alloc_bytes).
	DisableHostname bool `koanf:"disable_hostname"`
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
//
// Outside dev mode the embedded server requires an nkey: it generates one for
// its clients at first start in <store_dir>/auth/client.nk. The client keys
// (creds_file, nkey_seed_file, user and password, tls_ca_file) are how this
// server authenticates to a NATS it does not run: the external url, and, on a
// secondary, its primary's NATS. See docs/security.md, "The bus".
type Bus struct {
	// Embedded runs nats-server with JetStream inside this process.
	Embedded bool `koanf:"embedded"`
	// Listen is the embedded server's client address, host:port.
	Listen string `koanf:"listen"`
	// StoreDir is the embedded server's JetStream directory and holds its
	// generated credentials; empty means a directory the server chooses
	// (next to a bolt file, or a temporary one in dev mode).
	StoreDir string `koanf:"store_dir"`
	// URL of an external NATS cluster; several may be given, comma-separated.
	URL string `koanf:"url"`
	// CredsFile is a NATS user credentials (JWT + nkey) file.
	CredsFile string `koanf:"creds_file"`
	// NKeySeedFile holds an nkey user seed, such as a copy of the primary's
	// <store_dir>/auth/client.nk.
	NKeySeedFile string `koanf:"nkey_seed_file"`
	// User and Password authenticate with a NATS user and password.
	User     string `koanf:"user"`
	Password string `koanf:"password"`
	// TLSCAFile verifies the NATS servers' certificates.
	TLSCAFile string `koanf:"tls_ca_file"`
	// TLSCertFile and TLSKeyFile: the embedded server's certificate (it then
	// requires TLS), or with a url a client certificate.
	TLSCertFile string `koanf:"tls_cert_file"`
	TLSKeyFile  string `koanf:"tls_key_file"`
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
	// MaxActivationTokenTTL is the longest ttl a primary grants an
	// activation token (secondary-token ttl=...); 0 means the default, 24h.
	MaxActivationTokenTTL time.Duration `koanf:"max_activation_token_ttl"`
	// ActivationWait is how long secondary/enable waits for the activation's
	// first sync before it answers; the sync continues in the background
	// after the answer either way ("0s": answer as soon as the activation is
	// recorded).
	ActivationWait time.Duration `koanf:"activation_wait"`
}

// Supported kinds of each block.
var (
	StorageTypes = []string{"bolt", "consul", "inmem"}
	// StorageOptions are the keys besides path each storage type takes.
	StorageOptions = map[string][]string{
		"bolt":   {"freelist_sync"},
		"consul": {"address", "scheme", "tls_ca_file", "tls_cert_file", "tls_key_file", "token", "ha_enabled", "session_ttl", "lock_delay", "check_interval"},
	}
	SealTypes = []string{"static"}
	LogLevels = []string{"trace", "debug", "info", "warn", "error"}
)

// Default values.
const (
	DefaultListenAddress  = "127.0.0.1:8200"
	DefaultMaxRequestSize = 32 << 20
	// DefaultActivationWait stays below vault/api's 60 s client timeout.
	DefaultActivationWait = 50 * time.Second
	DefaultLeaseTTL       = 768 * time.Hour
	DefaultMaxLeaseTTL    = 768 * time.Hour
	DefaultBusListen      = "127.0.0.1:4222"

	// Vault's listener defaults.
	DefaultHTTPReadHeaderTimeout = 10 * time.Second
	DefaultHTTPReadTimeout       = 30 * time.Second
	DefaultHTTPWriteTimeout      = 0
	DefaultHTTPIdleTimeout       = 5 * time.Minute

	// DefaultPrometheusRetentionTime is Vault's documented default.
	DefaultPrometheusRetentionTime = 24 * time.Hour

	DefaultMaxUnauthenticatedRequestSize = 64 << 10
	DefaultMaxUnauthenticatedRequests    = 64
)

// Defaults is the base of a production server: bolt storage whose path the
// operator must set, a TLS listener on 127.0.0.1:8200 whose certificate the
// operator must set (or tls_disable), no bus.
func Defaults() *Config {
	return &Config{
		Storage: Storage{Type: "bolt"},
		Listener: Listener{
			Type: "tcp", Address: DefaultListenAddress,
			HTTPReadHeaderTimeout: DefaultHTTPReadHeaderTimeout, HTTPReadTimeout: DefaultHTTPReadTimeout,
			HTTPWriteTimeout: DefaultHTTPWriteTimeout, HTTPIdleTimeout: DefaultHTTPIdleTimeout,
			MaxUnauthenticatedRequestSize: DefaultMaxUnauthenticatedRequestSize,
			MaxUnauthenticatedRequests:    DefaultMaxUnauthenticatedRequests,
		},
		LogLevel:       "info",
		MaxRequestSize: DefaultMaxRequestSize,
		Replication: Replication{
			WALStreamMaxAge:           24 * time.Hour,
			WALStreamMaxBytes:         1 << 30,
			WALStreamMaxMsgs:          0,
			BestEffortWALWaitDuration: 2 * time.Second,
			MaxActivationTokenTTL:     24 * time.Hour,
			ActivationWait:            DefaultActivationWait,
		},
		Telemetry:       Telemetry{PrometheusRetentionTime: DefaultPrometheusRetentionTime},
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
