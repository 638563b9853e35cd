package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Validate checks the configuration as a whole and reports every problem it
// finds, each saying what to change.
func (c *Config) Validate() error {
	var p problems
	c.Storage.validate(&p)
	c.Listener.validate(&p)
	if c.Seal != nil {
		c.Seal.validate(&p)
	}
	c.validateServer(&p)
	c.Bus.validate(&p)
	c.Replication.validate(&p)
	c.Telemetry.validate(&p)
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("invalid configuration: %w", errors.Join(p...))
}

// problems collects what Validate finds, in the order it checks.
type problems []error

func (p *problems) add(format string, args ...any) {
	*p = append(*p, fmt.Errorf(format, args...))
}

// validate checks the storage block: a known type, its required path, and no
// keys the backend does not take.
func (s Storage) validate(p *problems) {
	switch s.Type {
	case "bolt":
		if s.Path == "" {
			p.add(`storage "bolt": path is required: set storage "bolt" { path = "/var/lib/coffer/coffer.db" } or COFFER_STORAGE_PATH`)
		}
		if v, ok := s.Options["freelist_sync"]; ok {
			if _, err := strconv.ParseBool(v); err != nil {
				p.add(`storage "bolt": freelist_sync %q: use true or false`, v)
			}
		}
	case "consul":
		if sch, ok := s.Options["scheme"]; ok && sch != "http" && sch != "https" {
			p.add(`storage "consul": scheme %q: use http or https`, sch)
		}
		if s.Path != "" && strings.Trim(s.Path, "/") == "" {
			p.add(`storage "consul": path %q holds no name: use a KV prefix such as "coffer/"`, s.Path)
		}
		if (s.Options["tls_cert_file"] == "") != (s.Options["tls_key_file"] == "") {
			p.add(`storage "consul": tls_cert_file and tls_key_file go together: set both, or neither`)
		}
	case "inmem":
	case "":
		p.add(`storage: no type given: use a storage "<type>" block (HCL) or storage.type (YAML, JSON); supported are %s`, strings.Join(StorageTypes, ", "))
	default:
		p.add("storage: unknown type %q: supported are %s", s.Type, strings.Join(StorageTypes, ", "))
	}
	if !slices.Contains(StorageTypes, s.Type) {
		return
	}
	known := StorageOptions[s.Type]
	var unknown []string
	for k := range s.Options {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return
	}
	sort.Strings(unknown)
	if len(known) == 0 {
		p.add("storage %q: unknown key(s) %s: this backend takes only path", s.Type, strings.Join(unknown, ", "))
		return
	}
	p.add("storage %q: unknown key(s) %s: this backend takes path, %s", s.Type, strings.Join(unknown, ", "), strings.Join(known, ", "))
}

// validate checks the listener block: tcp, a host:port, and TLS files unless
// TLS is disabled.
func (l Listener) validate(p *problems) {
	if l.Type != "tcp" {
		p.add(`listener: unknown type %q: supported is tcp, as in listener "tcp" { address = "127.0.0.1:8200" }`, l.Type)
	}
	if _, _, err := net.SplitHostPort(l.Address); err != nil {
		p.add("listener: address %q is not host:port (such as 127.0.0.1:8200): %v", l.Address, err)
	}
	if !l.TLSDisable && (l.TLSCertFile == "" || l.TLSKeyFile == "") {
		p.add("listener: TLS is enabled but tls_cert_file and tls_key_file are not both set: " +
			"set both, or set tls_disable = true to serve plain HTTP")
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"http_read_header_timeout", l.HTTPReadHeaderTimeout}, {"http_read_timeout", l.HTTPReadTimeout},
		{"http_write_timeout", l.HTTPWriteTimeout}, {"http_idle_timeout", l.HTTPIdleTimeout},
	} {
		if d.v < 0 {
			p.add("listener: %s %s must not be negative (0 means no timeout)", d.key, d.v)
		}
	}
	if l.HTTPReadHeaderTimeout == 0 && l.HTTPReadTimeout == 0 {
		p.add("listener: http_read_header_timeout and http_read_timeout are both 0: a client could hold a connection " +
			"for ever by sending its headers slowly; set at least one (Vault's defaults are 10s and 30s)")
	}
	if l.MaxUnauthenticatedRequestSize <= 0 {
		p.add("listener: max_unauthenticated_request_size %d must be a positive number of bytes, such as \"64KiB\"", l.MaxUnauthenticatedRequestSize)
	}
	if l.MaxUnauthenticatedRequests <= 0 {
		p.add("listener: max_unauthenticated_requests %d must be at least 1 (it bounds the requests without a valid token served at once)", l.MaxUnauthenticatedRequests)
	}
}

// validate checks a seal block that is present: a known type with its key file.
func (s *Seal) validate(p *problems) {
	switch s.Type {
	case "static":
		if s.KeyFile == "" {
			p.add(`seal "static": key_file is required: set seal "static" { key_file = "/etc/coffer/unseal.key" }`)
		}
	case "":
		p.add("seal: no type given: supported are %s; leave the seal block out for the default Shamir seal", strings.Join(SealTypes, ", "))
	default:
		p.add("seal: unknown type %q: supported are %s; leave the seal block out for the default Shamir seal",
			s.Type, strings.Join(SealTypes, ", "))
	}
}

// validateServer checks the top-level settings: api_addr, cluster_addr, log_level,
// max_request_size and the lease TTLs.
func (c *Config) validateServer(p *problems) {
	if c.APIAddr != "" {
		u, err := url.Parse(c.APIAddr)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add("api_addr %q must be an http:// or https:// URL with a host, such as https://coffer.example.com:8200", c.APIAddr)
		}
	}
	if c.ClusterAddr != "" {
		u, err := url.Parse(c.ClusterAddr)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "tcp") || u.Host == "" {
			p.add("cluster_addr %q must be a URL with a host, such as https://coffer-1.example.com:8201 (as Vault's)", c.ClusterAddr)
		}
	}
	if !slices.Contains(LogLevels, c.LogLevel) {
		p.add("log_level %q: supported are %s", c.LogLevel, strings.Join(LogLevels, ", "))
	}
	if c.MaxRequestSize <= 0 {
		p.add("max_request_size %d: must be a positive number of bytes, such as 33554432 or \"32MiB\"", c.MaxRequestSize)
	}
	if c.DefaultLeaseTTL < 0 {
		p.add("default_lease_ttl %s: must not be negative", c.DefaultLeaseTTL)
	}
	if c.MaxLeaseTTL < 0 {
		p.add("max_lease_ttl %s: must not be negative", c.MaxLeaseTTL)
	}
	if c.DefaultLeaseTTL > 0 && c.MaxLeaseTTL > 0 && c.DefaultLeaseTTL > c.MaxLeaseTTL {
		p.add("default_lease_ttl %s is longer than max_lease_ttl %s: lower it or raise max_lease_ttl", c.DefaultLeaseTTL, c.MaxLeaseTTL)
	}
}

// validate checks the bus block: an embedded server with its listen address,
// or NATS URLs, not both; one client credential at most; TLS files in pairs.
// Whether the files exist is checked when the bus opens.
func (b Bus) validate(p *problems) {
	if b.Embedded {
		if b.URL != "" {
			p.add("bus: embedded = true and url are both set: use the embedded server or an external one, not both")
		}
		if _, _, err := net.SplitHostPort(b.Listen); err != nil {
			p.add("bus: listen %q is not host:port (such as 127.0.0.1:4222): %v", b.Listen, err)
		}
	} else if b.URL != "" {
		for _, s := range strings.Split(b.URL, ",") {
			s = strings.TrimSpace(s)
			u, err := url.Parse(s)
			if err != nil || u.Host == "" || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, u.Scheme) {
				p.add("bus: url %q is not a NATS URL such as nats://127.0.0.1:4222 (schemes nats, tls, ws, wss)", s)
			}
		}
	}
	n := 0
	for _, set := range []bool{b.CredsFile != "", b.NKeySeedFile != "", b.User != "" || b.Password != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		p.add("bus: creds_file, nkey_seed_file and user/password are alternatives: set only one")
	}
	if (b.User == "") != (b.Password == "") {
		p.add("bus: user and password go together: set both, or neither")
	}
	if (b.TLSCertFile == "") != (b.TLSKeyFile == "") {
		p.add("bus: tls_cert_file and tls_key_file go together: set both, or neither")
	}
}

// validate checks the replication block: no negative limit, a replica count
// JetStream accepts, and at least one bound on the WAL stream.
// validate checks the telemetry block.
func (t Telemetry) validate(p *problems) {
	if t.PrometheusRetentionTime < 0 {
		p.add("telemetry: prometheus_retention_time %s must not be negative: use a duration such as \"24h\", or 0 to turn the Prometheus format off", t.PrometheusRetentionTime)
	}
}

func (r Replication) validate(p *problems) {
	if r.WALStreamMaxAge < 0 {
		p.add("replication: wal_stream_max_age %s must not be negative (0 means no age limit)", r.WALStreamMaxAge)
	}
	if r.WALStreamMaxBytes < 0 {
		p.add("replication: wal_stream_max_bytes %d must not be negative (0 means no size limit)", r.WALStreamMaxBytes)
	}
	if r.WALStreamMaxMsgs < 0 {
		p.add("replication: wal_stream_max_msgs %d must not be negative (0 means no message limit)", r.WALStreamMaxMsgs)
	}
	if r.WALStreamReplicas < 0 || r.WALStreamReplicas > 5 {
		p.add("replication: wal_stream_replicas %d must be between 1 and 5 (0 means 1)", r.WALStreamReplicas)
	}
	if r.BestEffortWALWaitDuration < 0 {
		p.add("replication: best_effort_wal_wait_duration %s must not be negative", r.BestEffortWALWaitDuration)
	}
	if r.ActivationWait < 0 {
		p.add("replication: activation_wait %s must not be negative (0s answers as soon as the activation is recorded)", r.ActivationWait)
	}
	if r.MaxActivationTokenTTL < 0 {
		p.add("replication: max_activation_token_ttl %s must not be negative (0 means the default, 24h)", r.MaxActivationTokenTTL)
	}
	if r.WALStreamMaxAge == 0 && r.WALStreamMaxBytes == 0 && r.WALStreamMaxMsgs == 0 {
		p.add("replication: wal_stream_max_age, wal_stream_max_bytes and wal_stream_max_msgs are all 0: " +
			"the WAL stream would grow without bound; set at least one limit")
	}
}
