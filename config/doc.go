// Package config owns the server configuration: the Config struct with its
// defaults (Defaults, DevDefaults), loading it from a file and the COFFER_*
// environment with koanf (Load, LoadEnvOnly), and checking it (Validate).
//
// Precedence, lowest first: the base Config the caller passes (Defaults, or
// DevDefaults for -dev), the file, the environment, and last the command-line
// flags, which the caller applies to the returned Config before calling
// Validate.
//
// The file is HCL in Vault's style unless its name ends in .yaml, .yml or
// .json. In HCL the type of storage, listener and seal is the block label:
//
//	storage "bolt" { path = "/var/lib/coffer/coffer.db" }
//	listener "tcp" {
//	  address       = "127.0.0.1:8200"
//	  tls_cert_file = "/etc/coffer/tls.crt"
//	  tls_key_file  = "/etc/coffer/tls.key"
//	}
//	seal "static" { key_file = "/etc/coffer/unseal.key" }
//	api_addr     = "https://coffer-1.example.com:8200"
//	cluster_name = "dc1"
//	bus { url = "nats://nats-1:4222" creds_file = "/etc/coffer/nats.creds" }
//	replication { wal_stream_max_age = "24h" wal_stream_max_bytes = "1GiB" }
//
// In YAML and JSON the type is a key of the block:
//
//	storage:  {type: bolt, path: /var/lib/coffer/coffer.db}
//	listener: {type: tcp, address: 127.0.0.1:8200, tls_disable: true}
//	seal:     {type: static, key_file: /etc/coffer/unseal.key}
//	api_addr: http://127.0.0.1:8200
//
// (JSON in Vault's nesting, {"storage": {"bolt": {"path": ...}}}, is accepted
// too.) Every setting can also come from COFFER_ + its flattened key upper-cased
// with _ for ., such as COFFER_LISTENER_ADDRESS or
// COFFER_REPLICATION_WAL_STREAM_MAX_MSGS; Keys lists them all. Durations are Go
// durations ("24h", "500ms") or whole seconds; byte sizes are plain numbers or
// take a unit ("512MiB", "1GiB", "1GB"). docs/configuration.md is the
// operator's reference.
//
// An unknown key in the file is an error, never ignored: an operator's typo
// must not silently fall back to a default. An unknown COFFER_* variable is
// reported in Config.Warnings for the server to log, since the environment is
// shared with other tools.
//
// This package must never open the files it names (storage path, key files,
// certificates), start anything, or import another Coffer package: it only
// describes what the server should do, and the server checks that the files
// are usable when it opens them.
package config
