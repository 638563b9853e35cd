package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// clearEnv blanks every COFFER_* setting, so the runner's environment cannot leak in.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, f := range fields {
		t.Setenv(f.env, "")
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t *testing.T, path string, base *Config) *Config {
	t.Helper()
	c, err := Load(path, base)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return c
}

// wantFull is what every testdata/full.* and vault-style.json hold.
func wantFull() *Config {
	return &Config{
		Storage: Storage{Type: "bolt", Path: "/var/lib/coffer/coffer.db"},
		Listener: Listener{Type: "tcp", Address: "127.0.0.1:8200", TLSDisable: true,
			HTTPReadHeaderTimeout: DefaultHTTPReadHeaderTimeout, HTTPReadTimeout: 20 * time.Second,
			HTTPIdleTimeout: time.Minute, MaxUnauthenticatedRequestSize: DefaultMaxUnauthenticatedRequestSize,
			MaxUnauthenticatedRequests: 32},
		Seal:            &Seal{Type: "static", KeyFile: "/etc/coffer/unseal.key"},
		APIAddr:         "http://127.0.0.1:8200",
		ClusterName:     "dc1",
		LogLevel:        "debug",
		MaxRequestSize:  1 << 20,
		DefaultLeaseTTL: time.Hour,
		MaxLeaseTTL:     720 * time.Hour,
		Bus: Bus{
			URL:       "nats://nats-1:4222,nats://nats-2:4222",
			CredsFile: "/etc/coffer/nats.creds",
			TLSCAFile: "/etc/coffer/nats-ca.pem",
		},
		Replication: Replication{
			WALStreamMaxAge:           48 * time.Hour,
			WALStreamMaxBytes:         512 << 20,
			WALStreamMaxMsgs:          100000,
			BestEffortWALWaitDuration: 3 * time.Second,
			MaxActivationTokenTTL:     24 * time.Hour, // the default: the files leave it out
			ActivationWait:            DefaultActivationWait,
		},
		Telemetry: Telemetry{PrometheusRetentionTime: DefaultPrometheusRetentionTime}, // the files leave it out
	}
}

func TestLoadFormatsAgree(t *testing.T) {
	clearEnv(t)
	for _, name := range []string{"full.hcl", "full.yaml", "full.json", "vault-style.json"} {
		t.Run(name, func(t *testing.T) {
			c := load(t, filepath.Join("testdata", name), nil)
			if !reflect.DeepEqual(c, wantFull()) {
				t.Fatalf("got  %+v\nwant %+v", c, wantFull())
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestLoadBriefHCL(t *testing.T) {
	clearEnv(t)
	p := writeFile(t, "coffer.hcl", `
storage "bolt" { path = "/var/lib/coffer/coffer.db" }
listener "tcp" { address = "127.0.0.1:8200"  tls_disable = true }
seal "static" { key_file = "/etc/coffer/unseal.key" }
api_addr     = "http://127.0.0.1:8200"
cluster_name = "dc1"
`)
	c := load(t, p, nil)
	want := Defaults()
	want.Storage.Path = "/var/lib/coffer/coffer.db"
	want.Listener.TLSDisable = true
	want.Seal = &Seal{Type: "static", KeyFile: "/etc/coffer/unseal.key"}
	want.APIAddr = "http://127.0.0.1:8200"
	want.ClusterName = "dc1"
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

// The bus block's credential and TLS keys, as docs/configuration.md shows
// them for an embedded primary and a secondary.
func TestLoadBusCredentials(t *testing.T) {
	clearEnv(t)
	p := writeFile(t, "coffer.hcl", `
storage "bolt" { path = "/var/lib/coffer/coffer.db" }
bus {
  embedded       = true
  listen         = "0.0.0.0:4222"
  store_dir      = "/var/lib/coffer/nats"
  tls_cert_file  = "/etc/coffer/nats.pem"
  tls_key_file   = "/etc/coffer/nats-key.pem"
  nkey_seed_file = "/etc/coffer/dc1-client.nk"
  tls_ca_file    = "/etc/coffer/dc1-nats-ca.pem"
}`)
	c := load(t, p, nil)
	want := Bus{
		Embedded: true, Listen: "0.0.0.0:4222", StoreDir: "/var/lib/coffer/nats",
		TLSCertFile: "/etc/coffer/nats.pem", TLSKeyFile: "/etc/coffer/nats-key.pem",
		NKeySeedFile: "/etc/coffer/dc1-client.nk", TLSCAFile: "/etc/coffer/dc1-nats-ca.pem",
	}
	if c.Bus != want {
		t.Fatalf("bus block %+v\nwant %+v", c.Bus, want)
	}
	t.Setenv("COFFER_BUS_URL", "tls://nats.example.com:4222")
	t.Setenv("COFFER_BUS_EMBEDDED", "false")
	t.Setenv("COFFER_BUS_NKEY_SEED_FILE", "")
	t.Setenv("COFFER_BUS_USER", "coffer")
	t.Setenv("COFFER_BUS_PASSWORD", "from-env")
	c = load(t, p, nil)
	if c.Bus.User != "coffer" || c.Bus.Password != "from-env" || c.Bus.URL != "tls://nats.example.com:4222" {
		t.Fatalf("bus from the environment: %+v", c.Bus)
	}
	// An empty variable counts as unset: the file's seed stays, and with the
	// user it is one credential too many.
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "set only one") {
		t.Fatalf("Validate with a seed file and a user: %v", err)
	}
}

func TestUnknownExtensionIsHCL(t *testing.T) {
	clearEnv(t)
	p := writeFile(t, "coffer.conf", `storage "inmem" {}
listener "tcp" { tls_disable = true }`)
	c := load(t, p, nil)
	if c.Storage.Type != "inmem" || !c.Listener.TLSDisable {
		t.Fatalf("got %+v", c)
	}
}

func TestDefaultsAreCompleteButNeedPathAndTLS(t *testing.T) {
	err := Defaults().Validate()
	for _, want := range []string{`storage "bolt": path is required`, "tls_cert_file and tls_key_file"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Defaults().Validate() = %v, want it to say %q", err, want)
		}
	}
	if err := DevDefaults().Validate(); err != nil {
		t.Fatalf("DevDefaults().Validate(): %v", err)
	}
	d := Defaults()
	if d.MaxRequestSize != 32<<20 || d.LogLevel != "info" || d.Replication.WALStreamMaxAge != 24*time.Hour ||
		d.Replication.WALStreamMaxBytes != 1<<30 || d.Replication.WALStreamMaxMsgs != 0 ||
		d.Replication.BestEffortWALWaitDuration != 2*time.Second || d.Replication.MaxActivationTokenTTL != 24*time.Hour {
		t.Fatalf("Defaults() = %+v", d)
	}
}

func TestFileOverDevDefaults(t *testing.T) {
	clearEnv(t)
	p := writeFile(t, "coffer.hcl", `
listener "tcp" { address = "0.0.0.0:8300" }
cluster_name = "dc2"
replication { wal_stream_max_msgs = 500 }
`)
	c := load(t, p, DevDefaults())
	want := DevDefaults()
	want.Listener.Address = "0.0.0.0:8300" // tls_disable stays from the dev defaults
	want.ClusterName = "dc2"
	want.Replication.WALStreamMaxMsgs = 500 // other replication keys stay
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.AdvertisedAPIAddr(); got != "http://127.0.0.1:8300" {
		t.Fatalf("AdvertisedAPIAddr = %q", got)
	}
}

func TestBaseIsNotModified(t *testing.T) {
	clearEnv(t)
	base := DevDefaults()
	p := writeFile(t, "coffer.yaml", "cluster_name: x\nstorage: {type: bolt, path: /tmp/x.db}\n")
	load(t, p, base)
	if !reflect.DeepEqual(base, DevDefaults()) {
		t.Fatalf("Load modified base: %+v", base)
	}
}

func TestBlockOfAnotherTypeReplacesBase(t *testing.T) {
	clearEnv(t)
	base := Defaults()
	base.Storage = Storage{Type: "consul", Path: "coffer/", Options: map[string]string{"address": "127.0.0.1:8500"}}
	p := writeFile(t, "coffer.hcl", `storage "inmem" {}`)
	c := load(t, p, base)
	if !reflect.DeepEqual(c.Storage, Storage{Type: "inmem"}) {
		t.Fatalf("storage = %+v, want inmem alone", c.Storage)
	}

	// The same type merges key by key.
	p = writeFile(t, "coffer.hcl", `storage "consul" { token = "t" }`)
	c = load(t, p, base)
	want := Storage{Type: "consul", Path: "coffer/", Options: map[string]string{"address": "127.0.0.1:8500", "token": "t"}}
	if !reflect.DeepEqual(c.Storage, want) {
		t.Fatalf("storage = %+v, want %+v", c.Storage, want)
	}
}

// Vault's storage "consul" block and top-level cluster_addr load as they are.
func TestConsulStorageAndClusterAddr(t *testing.T) {
	clearEnv(t)
	p := writeFile(t, "coffer.hcl", `storage "consul" {
  address     = "127.0.0.1:8500"
  path        = "coffer/"
  token       = "secret"
  scheme      = "https"
  tls_ca_file = "/etc/coffer/consul-ca.pem"
}
listener "tcp" { tls_disable = true }
api_addr     = "https://coffer-1.example.com:8200"
cluster_addr = "https://coffer-1.example.com:8201"
`)
	c := load(t, p, nil)
	want := Storage{Type: "consul", Path: "coffer/", Options: map[string]string{
		"address": "127.0.0.1:8500", "token": "secret", "scheme": "https", "tls_ca_file": "/etc/coffer/consul-ca.pem"}}
	if !reflect.DeepEqual(c.Storage, want) {
		t.Fatalf("storage = %+v, want %+v", c.Storage, want)
	}
	if c.ClusterAddr != "https://coffer-1.example.com:8201" || c.APIAddr != "https://coffer-1.example.com:8200" {
		t.Fatalf("api_addr, cluster_addr = %q, %q", c.APIAddr, c.ClusterAddr)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestStorageOptions(t *testing.T) {
	clearEnv(t)
	p := writeFile(t, "coffer.hcl", `storage "bolt" {
  path = "/data/coffer.db"
  pth  = "typo"
  timeout = 5
}`)
	c := load(t, p, DevDefaults())
	if want := map[string]string{"pth": "typo", "timeout": "5"}; !reflect.DeepEqual(c.Storage.Options, want) {
		t.Fatalf("options = %v, want %v", c.Storage.Options, want)
	}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), `storage "bolt": unknown key(s) pth, timeout`) {
		t.Fatalf("Validate = %v, want the unknown storage keys named", err)
	}
}

func TestEnvOverrides(t *testing.T) {
	clearEnv(t)
	p := writeFile(t, "coffer.hcl", `
storage "bolt" { path = "/from/file.db" }
listener "tcp" { address = "127.0.0.1:8200" tls_disable = true }
cluster_name = "file"
`)
	t.Setenv("COFFER_API_ADDR", "https://coffer.example.com:8200")
	t.Setenv("COFFER_CLUSTER_NAME", "env")
	t.Setenv("COFFER_LISTENER_ADDRESS", "0.0.0.0:9200")
	t.Setenv("COFFER_LISTENER_TLS_DISABLE", "false")
	t.Setenv("COFFER_LISTENER_TLS_CERT_FILE", "/c.pem")
	t.Setenv("COFFER_LISTENER_TLS_KEY_FILE", "/k.pem")
	t.Setenv("COFFER_STORAGE_PATH", "/from/env.db")
	t.Setenv("COFFER_SEAL_TYPE", "static")
	t.Setenv("COFFER_SEAL_KEY_FILE", "/etc/coffer/key")
	t.Setenv("COFFER_REPLICATION_WAL_STREAM_MAX_MSGS", "42")
	t.Setenv("COFFER_REPLICATION_WAL_STREAM_MAX_BYTES", "2GiB")
	t.Setenv("COFFER_REPLICATION_BEST_EFFORT_WAL_WAIT_DURATION", "750ms")
	t.Setenv("COFFER_MAX_LEASE_TTL", "3600")
	t.Setenv("COFFER_BUS_EMBEDDED", "true")
	t.Setenv("COFFER_BUS_STORE_DIR", "/var/lib/coffer/nats")
	t.Setenv("COFFER_LISTENER_HTTP_WRITE_TIMEOUT", "90s")
	t.Setenv("COFFER_LOG_LEVEL", "") // empty: not set
	t.Setenv("COFFER_LISTNER_ADDRESS", "typo")

	c := load(t, p, nil)
	want := Defaults()
	want.Storage = Storage{Type: "bolt", Path: "/from/env.db"}
	want.Listener.Address, want.Listener.TLSCertFile, want.Listener.TLSKeyFile = "0.0.0.0:9200", "/c.pem", "/k.pem"
	want.Listener.HTTPWriteTimeout = 90 * time.Second
	want.Seal = &Seal{Type: "static", KeyFile: "/etc/coffer/key"}
	want.APIAddr = "https://coffer.example.com:8200"
	want.ClusterName = "env"
	want.Replication.WALStreamMaxMsgs = 42
	want.Replication.WALStreamMaxBytes = 2 << 30
	want.Replication.BestEffortWALWaitDuration = 750 * time.Millisecond
	want.MaxLeaseTTL = time.Hour
	want.Bus = Bus{Embedded: true, StoreDir: "/var/lib/coffer/nats"}
	warnings := c.Warnings
	c.Warnings = nil
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	found := false
	for _, w := range warnings {
		found = found || strings.Contains(w, "COFFER_LISTNER_ADDRESS")
	}
	if !found {
		t.Fatalf("warnings %q do not name COFFER_LISTNER_ADDRESS", warnings)
	}

	// Env alone, without a file.
	c, err := LoadEnvOnly(DevDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.Type != "inmem" || c.Storage.Path != "/from/env.db" || c.Listener.Address != "0.0.0.0:9200" || c.ClusterName != "env" {
		t.Fatalf("LoadEnvOnly = %+v", c)
	}
}

func TestEnvBadValue(t *testing.T) {
	clearEnv(t)
	t.Setenv("COFFER_REPLICATION_WAL_STREAM_MAX_AGE", "forever")
	_, err := LoadEnvOnly(nil)
	if err == nil || !strings.Contains(err.Error(), "replication.wal_stream_max_age (COFFER_REPLICATION_WAL_STREAM_MAX_AGE)") ||
		!strings.Contains(err.Error(), `"forever" is not a duration`) {
		t.Fatalf("err = %v, want the key, the variable and the bad value named", err)
	}
}

func TestEnvTableCoversEveryKey(t *testing.T) {
	want := []string{
		"api_addr", "bus.creds_file", "bus.embedded", "bus.listen", "bus.nkey_seed_file", "bus.password",
		"bus.store_dir", "bus.tls_ca_file", "bus.tls_cert_file", "bus.tls_key_file", "bus.url", "bus.user",
		"cluster_addr", "cluster_name", "default_lease_ttl", "disable_performance_standby", "listener.address", "listener.http_idle_timeout",
		"listener.http_read_header_timeout", "listener.http_read_timeout", "listener.http_write_timeout",
		"listener.max_unauthenticated_request_size", "listener.max_unauthenticated_requests",
		"listener.telemetry.unauthenticated_metrics_access", "listener.tls_cert_file", "listener.tls_disable",
		"listener.tls_key_file", "listener.type", "log_level", "max_lease_ttl", "max_request_size",
		"replication.activation_wait", "replication.best_effort_wal_wait_duration", "replication.max_activation_token_ttl", "replication.wal_stream_max_age",
		"replication.wal_stream_max_bytes", "replication.wal_stream_max_msgs", "replication.wal_stream_replicas",
		"seal.key_file", "seal.type", "storage.path", "storage.type",
		"telemetry.disable_hostname", "telemetry.prometheus_retention_time",
	}
	if got := Keys(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Keys() = %q\nwant %q", got, want)
	}
	if got := EnvVar("replication.wal_stream_max_msgs"); got != "COFFER_REPLICATION_WAL_STREAM_MAX_MSGS" {
		t.Fatalf("EnvVar = %q", got)
	}
}

func TestUnknownKeys(t *testing.T) {
	clearEnv(t)
	cases := []struct{ name, content, want string }{
		{"top.hcl", `storge "bolt" { path = "x" }
clustr_name = "a"`, `unknown key(s) "clustr_name", "storge": valid top-level keys are api_addr, bus,`},
		{"top.yaml", "api_adr: http://x\n", `unknown key(s) "api_adr"`},
		{"listener.hcl", `listener "tcp" { adress = "x" }`, `unknown key(s) "adress" in the listener block: valid keys are address,`},
		{"bus.json", `{"bus": {"embeded": true}}`, `unknown key(s) "embeded" in the bus block`},
		{"repl.hcl", `replication { wal_max_age = "1h" }`, `unknown key(s) "wal_max_age" in the replication block`},
		{"seal.yaml", "seal: {type: static, keyfile: /k}\n", `unknown key(s) "keyfile" in the seal block`},
		{"two.hcl", `listener "tcp" {}
listener "tcp" {}`, "2 listener blocks: only one is allowed"},
		{"typed.hcl", `storage "bolt" { type = "inmem" }`, `storage "bolt": the type is the block label`},
		{"scalar.yaml", "bus: true\n", "bus must be a block"},
		{"wrongtype.yaml", "max_request_size: [1, 2]\n", "max_request_size (COFFER_MAX_REQUEST_SIZE)"},
		{"badbool.hcl", `listener "tcp" { tls_disable = "maybe" }`, `listener.tls_disable (COFFER_LISTENER_TLS_DISABLE): "maybe" is not a boolean`},
		{"badsize.yaml", "replication: {wal_stream_max_bytes: 1GB!}\n", "replication.wal_stream_max_bytes"},
		{"badduration.hcl", `default_lease_ttl = "1 day"`, `default_lease_ttl (COFFER_DEFAULT_LEASE_TTL): "1 day" is not a duration`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, tc.name, tc.content)
			_, err := Load(p, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v\nwant an error containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), p) && !strings.Contains(err.Error(), "(COFFER_") {
				t.Fatalf("error %q names neither the file nor the setting", err)
			}
		})
	}
}

func TestMissingOrBrokenFile(t *testing.T) {
	clearEnv(t)
	missing := filepath.Join(t.TempDir(), "nope.hcl")
	if _, err := Load(missing, nil); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Load of a missing file = %v, want the path named", err)
	}
	p := writeFile(t, "broken.hcl", `storage "bolt" { path = `)
	if _, err := Load(p, nil); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("Load of broken HCL = %v, want the path named", err)
	}
}

func TestDurationsAndNumbers(t *testing.T) {
	clearEnv(t)
	p := writeFile(t, "c.hcl", `
default_lease_ttl = 60
max_lease_ttl = "90m"
max_request_size = "64MiB"
replication { best_effort_wal_wait_duration = "250ms" wal_stream_max_bytes = 1000 max_activation_token_ttl = "72h" }
`)
	c := load(t, p, nil)
	if c.DefaultLeaseTTL != time.Minute || c.MaxLeaseTTL != 90*time.Minute || c.MaxRequestSize != 64<<20 ||
		c.Replication.BestEffortWALWaitDuration != 250*time.Millisecond || c.Replication.WALStreamMaxBytes != 1000 ||
		c.Replication.MaxActivationTokenTTL != 72*time.Hour {
		t.Fatalf("got %+v", c)
	}
	// JSON numbers arrive as float64.
	p = writeFile(t, "c.json", `{"max_request_size": 33554432, "default_lease_ttl": 30, "listener": {"tls_disable": 1}}`)
	c = load(t, p, nil)
	if c.MaxRequestSize != 32<<20 || c.DefaultLeaseTTL != 30*time.Second || !c.Listener.TLSDisable {
		t.Fatalf("got %+v", c)
	}
	p = writeFile(t, "frac.json", `{"max_request_size": 1.5}`)
	if _, err := Load(p, nil); err == nil || !strings.Contains(err.Error(), "1.5 is not a byte size") {
		t.Fatalf("fractional size: %v", err)
	}
}

func TestParseByteSize(t *testing.T) {
	good := map[string]int64{
		"0":       0,
		"1048576": 1 << 20,
		"1GiB":    1 << 30,
		"512MiB":  512 << 20,
		"512mib":  512 << 20,
		"64 KiB":  64 << 10,
		"2TiB":    2 << 40,
		"1.5GiB":  3 << 29,
		"1GB":     1_000_000_000,
		"10MB":    10_000_000,
		"3kb":     3000,
		"100B":    100,
		" 7 ":     7,
	}
	for in, want := range good {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "-1", "-1MiB", "1.5B", "1G", "1 gigabyte", "1e3MiB", "NaNGiB", "infGiB", "9000000TiB", "0x10"} {
		if got, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		modify func(c *Config)
		want   string
	}{
		{"unknown storage", func(c *Config) { c.Storage.Type = "s3" }, `storage: unknown type "s3": supported are bolt, consul, inmem`},
		{"consul option", func(c *Config) {
			c.Storage = Storage{Type: "consul", Options: map[string]string{"adress": "x", "token": "t"}}
		}, `storage "consul": unknown key(s) adress: this backend takes path, address, scheme,`},
		{"consul scheme", func(c *Config) { c.Storage = Storage{Type: "consul", Options: map[string]string{"scheme": "ftp"}} },
			`storage "consul": scheme "ftp": use http or https`},
		{"cluster addr", func(c *Config) { c.ClusterAddr = "coffer-1:8201" }, `cluster_addr "coffer-1:8201" must be a URL`},
		{"no storage type", func(c *Config) { c.Storage.Type = "" }, "storage: no type given"},
		{"bolt without path", func(c *Config) { c.Storage = Storage{Type: "bolt"} }, `storage "bolt": path is required`},
		{"bolt freelist_sync", func(c *Config) {
			c.Storage = Storage{Type: "bolt", Path: "/d/coffer.db", Options: map[string]string{"freelist_sync": "sometimes"}}
		}, `storage "bolt": freelist_sync "sometimes": use true or false`},
		{"bolt option", func(c *Config) {
			c.Storage = Storage{Type: "bolt", Path: "/d/coffer.db", Options: map[string]string{"no_sync": "true"}}
		}, `storage "bolt": unknown key(s) no_sync`},
		{"tls without files", func(c *Config) { c.Listener.TLSDisable = false; c.Listener.TLSCertFile = "/c.pem" },
			"TLS is enabled but tls_cert_file and tls_key_file are not both set"},
		{"listener type", func(c *Config) { c.Listener.Type = "unix" }, `listener: unknown type "unix"`},
		{"listener address", func(c *Config) { c.Listener.Address = "8200" }, `listener: address "8200" is not host:port`},
		{"unknown seal", func(c *Config) { c.Seal = &Seal{Type: "awskms"} }, `seal: unknown type "awskms": supported are static`},
		{"static seal without key", func(c *Config) { c.Seal = &Seal{Type: "static"} }, `seal "static": key_file is required`},
		{"api addr", func(c *Config) { c.APIAddr = "127.0.0.1:8200" }, `api_addr "127.0.0.1:8200" must be an http:// or https:// URL`},
		{"log level", func(c *Config) { c.LogLevel = "verbose" }, `log_level "verbose": supported are trace, debug, info, warn, error`},
		{"request size", func(c *Config) { c.MaxRequestSize = 0 }, "max_request_size 0: must be a positive number"},
		{"negative ttl", func(c *Config) { c.DefaultLeaseTTL = -time.Second }, "default_lease_ttl -1s: must not be negative"},
		{"ttl order", func(c *Config) { c.DefaultLeaseTTL = 2 * time.Hour; c.MaxLeaseTTL = time.Hour }, "default_lease_ttl 2h0m0s is longer than max_lease_ttl 1h0m0s"},
		{"bus both", func(c *Config) { c.Bus.URL = "nats://x:4222" }, "embedded = true and url are both set"},
		{"bus listen", func(c *Config) { c.Bus.Listen = "" }, `bus: listen "" is not host:port`},
		{"bus url", func(c *Config) { c.Bus = Bus{URL: "nats://a:4222, http://b:4222"} }, `bus: url "http://b:4222" is not a NATS URL`},
		{"bus two credentials", func(c *Config) { c.Bus.CredsFile, c.Bus.NKeySeedFile = "/a.creds", "/b.nk" }, "are alternatives: set only one"},
		{"bus user alone", func(c *Config) { c.Bus.User = "coffer" }, "user and password go together"},
		{"bus cert alone", func(c *Config) { c.Bus.TLSCertFile = "/nats.pem" }, "tls_cert_file and tls_key_file go together"},
		{"negative wait", func(c *Config) { c.Replication.BestEffortWALWaitDuration = -1 }, "best_effort_wal_wait_duration -1ns must not be negative"},
		{"negative bytes", func(c *Config) { c.Replication.WALStreamMaxBytes = -1 }, "wal_stream_max_bytes -1 must not be negative"},
		{"negative token ttl", func(c *Config) { c.Replication.MaxActivationTokenTTL = -time.Hour }, "max_activation_token_ttl -1h0m0s must not be negative"},
		{"negative timeout", func(c *Config) { c.Listener.HTTPIdleTimeout = -time.Second }, "http_idle_timeout -1s must not be negative"},
		{"no header timeout", func(c *Config) { c.Listener.HTTPReadHeaderTimeout, c.Listener.HTTPReadTimeout = 0, 0 },
			"http_read_header_timeout and http_read_timeout are both 0"},
		{"unauth size", func(c *Config) { c.Listener.MaxUnauthenticatedRequestSize = 0 }, "max_unauthenticated_request_size 0 must be a positive"},
		{"unauth requests", func(c *Config) { c.Listener.MaxUnauthenticatedRequests = 0 }, "max_unauthenticated_requests 0 must be at least 1"},
		{"no stream limit", func(c *Config) {
			c.Replication.WALStreamMaxAge, c.Replication.WALStreamMaxBytes, c.Replication.WALStreamMaxMsgs = 0, 0, 0
		}, "the WAL stream would grow without bound"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DevDefaults()
			tc.modify(c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v\nwant an error containing %q", err, tc.want)
			}
		})
	}

	// Every problem is reported at once.
	c := DevDefaults()
	c.Storage.Type = "s3"
	c.LogLevel = "loud"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "s3") || !strings.Contains(err.Error(), "loud") {
		t.Fatalf("Validate = %v, want both problems", err)
	}

	ok := DevDefaults()
	ok.Listener.Address, ok.Listener.TLSDisable, ok.Listener.TLSCertFile, ok.Listener.TLSKeyFile = "[::1]:8200", false, "/c", "/k"
	ok.Bus = Bus{URL: "tls://a:4222,nats://b:4222"}
	ok.APIAddr = "https://coffer.example.com"
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate of a good config: %v", err)
	}
	if got := ok.AdvertisedAPIAddr(); got != "https://coffer.example.com" {
		t.Fatalf("AdvertisedAPIAddr = %q", got)
	}
	ok.APIAddr = ""
	if got := ok.AdvertisedAPIAddr(); got != "https://[::1]:8200" {
		t.Fatalf("AdvertisedAPIAddr = %q", got)
	}
}

// bolt takes freelist_sync (bbolt writes its free-page list with every
// commit again: a faster start on a large file, slower writes).
func TestBoltFreelistSync(t *testing.T) {
	clearEnv(t)
	p := writeFile(t, "coffer.hcl", `storage "bolt" {
  path          = "/var/lib/coffer/coffer.db"
  freelist_sync = true
}
listener "tcp" { tls_disable = true }
`)
	c := load(t, p, nil)
	want := Storage{Type: "bolt", Path: "/var/lib/coffer/coffer.db", Options: map[string]string{"freelist_sync": "true"}}
	if !reflect.DeepEqual(c.Storage, want) {
		t.Fatalf("storage = %+v, want %+v", c.Storage, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}
