#!/usr/bin/env bash
# The Coffer demo: one dev server and a scripted tour of what it does today.
# Run with `make demo`. Stops everything it started on exit or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./bin/coffer
ADDR=${DEMO_ADDR:-127.0.0.1:8200}
NATS=${DEMO_NATS:-127.0.0.1:4222}
LOG=$(mktemp -t coffer-demo.XXXXXX.log)
export VAULT_ADDR="http://$ADDR" VAULT_TOKEN=root

pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    echo "== stopping the dev server (SIGTERM: in-flight requests finish, storage closes)"
    kill -TERM "$pid"; wait "$pid" || true
  fi
  rm -f "$LOG"
}
trap cleanup EXIT INT TERM

step() { printf '\n== %s\n' "$*"; }

step "starting a dev server on $ADDR: in-memory storage, initialized and unsealed, root token 'root'"
"$BIN" server -dev -dev-root-token-id=root -dev-listen-address="$ADDR" -dev-nats-listen="$NATS" >"$LOG" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  if "$BIN" status >/dev/null 2>&1; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then echo "the dev server exited:"; cat "$LOG"; exit 1; fi
  sleep 0.1
done
"$BIN" status >/dev/null || { echo "the dev server did not come up:"; cat "$LOG"; exit 1; }
grep -E '^(Unseal Key|Root Token):' "$LOG" || true
UNSEAL_KEY=$(sed -n 's/^Unseal Key: //p' "$LOG")

step "coffer status: seal type shamir, initialized, unsealed (exit code 0)"
"$BIN" status

step "coffer operator rotate: the barrier gets key term 2; older data stays readable with term 1"
"$BIN" operator rotate

step "coffer operator seal: the barrier forgets its keys; every data access is refused"
"$BIN" operator seal
set +e; "$BIN" status; code=$?; set -e
echo "(coffer status exits $code while sealed, as vault status does)"

step "coffer operator unseal: the dev server has one key share, so one share unseals it"
"$BIN" operator unseal "$UNSEAL_KEY"

step "coffer status -format=json: the same state for machines"
"$BIN" status -format=json

step "done: replication between a primary and a secondary arrives with the replication issues"
