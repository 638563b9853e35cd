# dc2 of the compose topology (deploy/compose/docker-compose.yml, docs/operations.md).
storage "bolt" {
  path = "/data/coffer.db"
}

listener "tcp" {
  address     = "0.0.0.0:8200"
  tls_disable = true
}

# The same key file for all three clusters: a secondary takes the primary's
# keyring at activation, and the seal material replicates with it.
seal "static" {
  key_file = "/seal/unseal.key"
}

api_addr     = "http://dc2:8200"
cluster_name = "dc2"
log_level    = "info"

bus {
  url = "nats://n1:4222,nats://n2:4222,nats://n3:4222"
}

# Used by the cluster that is the primary (dc1): the limits and replicas of
# its WAL stream COFFER_WAL_<cluster id>. Three replicas: losing one NATS node
# loses no batch and stops nothing.
replication {
  wal_stream_max_age            = "24h"
  wal_stream_max_bytes          = "256MiB"
  wal_stream_max_msgs           = 100000
  wal_stream_replicas           = 3
  best_effort_wal_wait_duration = "2s"
}
