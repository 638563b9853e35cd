#!/usr/bin/env bash
# The Coffer demo: a primary and two secondary dev servers on embedded
# defaults (in-memory storage, an embedded NATS JetStream each), replicating.
# Run with `make demo`. Stops everything it started on exit or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./bin/coffer
P_ADDR=${DEMO_PRIMARY_ADDR:-127.0.0.1:8200}
P_NATS=${DEMO_PRIMARY_NATS:-127.0.0.1:4222}
S_ADDR=${DEMO_SECONDARY_ADDR:-127.0.0.1:8210}
S_NATS=${DEMO_SECONDARY_NATS:-127.0.0.1:4232}
T_ADDR=${DEMO_THIRD_ADDR:-127.0.0.1:8220}
T_NATS=${DEMO_THIRD_NATS:-127.0.0.1:4242}
LOGDIR=$(mktemp -d -t coffer-demo.XXXXXX)
export VAULT_TOKEN=root

pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; fi
  done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ ${#pids[@]} -gt 0 ] && echo "== stopped the servers (SIGTERM: in-flight requests finish, storage closes)"
  rm -rf "$LOGDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n== %s\n' "$*"; }
P() { VAULT_ADDR="http://$P_ADDR" "$BIN" "$@"; }
S() { VAULT_ADDR="http://$S_ADDR" "$BIN" "$@"; }
T() { VAULT_ADDR="http://$T_ADDR" "$BIN" "$@"; }

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

step "starting three dev servers: the primary-to-be on $P_ADDR (NATS $P_NATS), secondaries-to-be on $S_ADDR and $T_ADDR"
start primary "$P_ADDR" "$P_NATS"
start dc2 "$S_ADDR" "$S_NATS"
start dc3 "$T_ADDR" "$T_NATS"

step "coffer write -f sys/replication/performance/primary/enable: the primary creates its WAL stream on its NATS"
P write -f sys/replication/performance/primary/enable

step "coffer write sys/replication/performance/primary/secondary-token id=dc2: a wrapped, signed, single-use JWT"
TOKEN=$(P write -field=wrapping_token sys/replication/performance/primary/secondary-token id=dc2)
echo "token: ${TOKEN:0:40}..."

step "coffer write sys/replication/performance/secondary/enable token=...: dc2 wipes itself, takes the primary's keyring and data"
S write sys/replication/performance/secondary/enable token="$TOKEN"

step "the same for dc3, with its own single-use token"
TOKEN3=$(P write -field=wrapping_token sys/replication/performance/primary/secondary-token id=dc3)
T write sys/replication/performance/secondary/enable token="$TOKEN3"

step "coffer kv put secret/app password=s3cr3t on the primary"
P kv put secret/app password=s3cr3t

step "coffer kv get secret/app on each secondary: served from its own storage, no round trip to the primary"
for _ in $(seq 1 100); do S kv get -field=password secret/app >/dev/null 2>&1 && break; sleep 0.1; done
for _ in $(seq 1 100); do T kv get -field=password secret/app >/dev/null 2>&1 && break; sleep 0.1; done
echo "dc2: $(S kv get -field=password secret/app)"
echo "dc3: $(T kv get -field=password secret/app)"

step "coffer kv put on the secondary: forwarded to the primary, answered once replicated back here"
S kv put secret/app password=from-secondary
echo "dc2 right after its write: $(S kv get -field=password secret/app)"
for _ in $(seq 1 100); do [ "$(T kv get -field=password secret/app 2>/dev/null)" = from-secondary ] && break; sleep 0.1; done
echo "dc3: $(T kv get -field=password secret/app)"

step "coffer replication status on the primary: the secondaries, their heartbeats and their lag (once a heartbeat arrived)"
for _ in $(seq 1 50); do
  st=$(P read -format=json sys/replication/performance/status 2>/dev/null || true)
  [ "$(grep -c '"last_remote_wal": [1-9]' <<<"$st")" -ge 2 ] && break
  sleep 0.1
done
P replication status

step "coffer replication status on the secondary"
S replication status

step "done: everything stops now"
