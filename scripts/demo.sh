#!/usr/bin/env bash
# The Coffer demo: a primary and a secondary dev server on embedded defaults
# (in-memory storage, an embedded NATS JetStream each), replicating.
# Run with `make demo`. Stops everything it started on exit or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./bin/coffer
P_ADDR=${DEMO_PRIMARY_ADDR:-127.0.0.1:8200}
P_NATS=${DEMO_PRIMARY_NATS:-127.0.0.1:4222}
S_ADDR=${DEMO_SECONDARY_ADDR:-127.0.0.1:8210}
S_NATS=${DEMO_SECONDARY_NATS:-127.0.0.1:4232}
LOGDIR=$(mktemp -d -t coffer-demo.XXXXXX)
export VAULT_TOKEN=root

pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; fi
  done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ ${#pids[@]} -gt 0 ] && echo "== stopped both servers (SIGTERM: in-flight requests finish, storage closes)"
  rm -rf "$LOGDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n== %s\n' "$*"; }
P() { VAULT_ADDR="http://$P_ADDR" "$BIN" "$@"; }
S() { VAULT_ADDR="http://$S_ADDR" "$BIN" "$@"; }

start() { # name addr nats
  "$BIN" server -dev -dev-root-token-id=root -dev-listen-address="$2" -dev-nats-listen="$3" >"$LOGDIR/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 150); do
    if VAULT_ADDR="http://$2" "$BIN" status >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then echo "the $1 server exited:"; cat "$LOGDIR/$1.log"; exit 1; fi
    sleep 0.1
  done
  echo "the $1 server did not come up:"; cat "$LOGDIR/$1.log"; exit 1
}

step "starting two dev servers: the primary-to-be on $P_ADDR (NATS $P_NATS), the secondary-to-be on $S_ADDR (NATS $S_NATS)"
start primary "$P_ADDR" "$P_NATS"
start secondary "$S_ADDR" "$S_NATS"

step "coffer write -f sys/replication/performance/primary/enable: the primary creates its WAL stream on its NATS"
P write -f sys/replication/performance/primary/enable

step "coffer write sys/replication/performance/primary/secondary-token id=dc2: a wrapped, signed, single-use JWT"
TOKEN=$(P write -field=wrapping_token sys/replication/performance/primary/secondary-token id=dc2)
echo "token: ${TOKEN:0:40}..."

step "coffer write sys/replication/performance/secondary/enable token=...: the secondary wipes itself, takes the primary's keyring and data"
S write sys/replication/performance/secondary/enable token="$TOKEN"

step "coffer kv put secret/app password=s3cr3t on the primary"
P kv put secret/app password=s3cr3t

step "coffer kv get secret/app on the secondary: served from its own storage"
for _ in $(seq 1 100); do S kv get -field=password secret/app >/dev/null 2>&1 && break; sleep 0.1; done
S kv get secret/app

step "coffer kv put on the secondary: forwarded to the primary, answered once replicated back here"
S kv put secret/app password=from-secondary
S kv get -field=password secret/app; echo

step "coffer replication status on the primary: the secondary, its heartbeat and its lag"
P replication status

step "coffer replication status on the secondary"
S replication status

step "done: everything stops now"
