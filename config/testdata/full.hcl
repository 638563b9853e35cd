# The example of docs/configuration.md.
storage "bolt" { path = "/var/lib/coffer/coffer.db" }
listener "tcp" {
  address     = "127.0.0.1:8200"
  tls_disable = true                 # else tls_cert_file / tls_key_file
  http_read_timeout            = "20s"
  http_idle_timeout            = 60  # seconds
  max_unauthenticated_requests = 32
}
seal "static" { key_file = "/etc/coffer/unseal.key" }                  # optional
api_addr     = "http://127.0.0.1:8200"
cluster_name = "dc1"

log_level        = "debug"
max_request_size = 1048576
default_lease_ttl = "1h"
max_lease_ttl     = "720h"

bus {
  embedded   = false
  url        = "nats://nats-1:4222,nats://nats-2:4222"
  creds_file = "/etc/coffer/nats.creds"
  tls_ca_file = "/etc/coffer/nats-ca.pem"
}

replication {
  wal_stream_max_age            = "48h"
  wal_stream_max_bytes          = "512MiB"
  wal_stream_max_msgs           = 100000
  best_effort_wal_wait_duration = "3s"
}
