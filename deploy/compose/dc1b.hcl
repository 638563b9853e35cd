# dc1b: one of the two nodes of the primary cluster dc1 (deploy/compose/docker-compose.yml,
# docs/operations.md). dc1a and dc1b share dc1's storage, a path of the Consul server "consul"; the node that
# holds the Consul lock is active, the other is a standby that serves reads and forwards the rest to it.
# The two files differ only in api_addr and cluster_addr.
storage "consul" {
  address        = "consul:8500"
  path           = "coffer-dc1/"
  session_ttl    = "10s" # Consul's minimum: the lock outlives a node that dies without releasing it at most this long...
  lock_delay     = "1s"
  check_interval = "1s"  # ...but the agent's health check of api_addr ends it within about a second
}

listener "tcp" {
  address     = "0.0.0.0:8200"
  tls_disable = true
}

# The same key file for all clusters: a secondary takes the primary's keyring at
# activation, and the seal material replicates with it. With the static seal a
# node unseals by itself once the cluster is initialized (through either node).
seal "static" {
  key_file = "/seal/unseal.key"
}

# This node's own address: the other node forwards to it when it is active, and
# the Consul agent's health check of the lock polls its sys/health. The
# cluster's address, for clients and secondaries, is http://dc1:8200, a network
# alias of both nodes (docker-compose.yml).
api_addr     = "http://dc1b:8200"
cluster_addr = "http://dc1b:8201"
cluster_name = "dc1"
log_level    = "info"

bus {
  url = "nats://n1:4222,nats://n2:4222,nats://n3:4222"
}

# The limits and replicas of dc1's WAL stream COFFER_WAL_<cluster id>, used by
# whichever node is active. Three replicas: losing one NATS node loses no batch
# and stops nothing.
replication {
  wal_stream_max_age            = "24h"
  wal_stream_max_bytes          = "256MiB"
  wal_stream_max_msgs           = 100000
  wal_stream_replicas           = 3
  best_effort_wal_wait_duration = "2s"
}
