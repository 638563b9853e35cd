# dr1 of the compose topology (deploy/compose/docker-compose.yml, docs/operations.md):
# the DR secondary of dc1. It holds everything dc1 holds (tokens too), serves
# no client request (sys/health 472) and is promoted when dc1 is lost
# (`make failover-drill`).
storage "bolt" {
  path = "/data/coffer.db"
}

listener "tcp" {
  address     = "0.0.0.0:8200"
  tls_disable = true
}

# The same key file as dc1..dc3: a DR secondary takes the primary's keyring at
# activation, and the seal material (dc1's recovery key check) replicates with it.
seal "static" {
  key_file = "/seal/unseal.key"
}

api_addr     = "http://dr1:8200"
cluster_name = "dr1"
log_level    = "info"

bus {
  url = "nats://n1:4222,nats://n2:4222,nats://n3:4222"
}

# Used once dr1 is promoted: the limits and replicas of the set's WAL stream,
# the same as dc1's.
replication {
  wal_stream_max_age            = "24h"
  wal_stream_max_bytes          = "256MiB"
  wal_stream_max_msgs           = 100000
  wal_stream_replicas           = 3
  best_effort_wal_wait_duration = "2s"
}
