#!/usr/bin/env bash
# ui-screenshot.sh: photograph the replication status page (/ui/replication,
# package ui) into docs/img/replication-ui.png, the picture docs/operations.md
# shows ("Status page"). It builds coffer into a temporary directory, starts
# a primary and two performance secondaries (dev servers, embedded NATS each,
# on loopback ports), activates them, writes on the primary while headless
# Chromium (scripts/chromium.sh) loads the primary's page, and stops the
# servers at the end or on Ctrl-C. OUT=<file> writes elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
OUT=${OUT:-docs/img/replication-ui.png}
P_ADDR=${UI_PRIMARY_ADDR:-127.0.0.1:8300}
P_NATS=${UI_PRIMARY_NATS:-127.0.0.1:4322}
S_ADDR=${UI_SECONDARY_ADDR:-127.0.0.1:8310}
S_NATS=${UI_SECONDARY_NATS:-127.0.0.1:4332}
T_ADDR=${UI_THIRD_ADDR:-127.0.0.1:8320}
T_NATS=${UI_THIRD_NATS:-127.0.0.1:4342}

chromium=$(./scripts/chromium.sh)
WORK=$(mktemp -d -t coffer-ui-shot.XXXXXX)
BIN=$WORK/coffer
export VAULT_TOKEN=root
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; fi
  done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CGO_ENABLED=0 "$GO" build -o "$BIN" ./cmd/coffer

start() { # name addr nats
  "$BIN" server -dev -dev-root-token-id=root -dev-listen-address="$2" -dev-nats-listen="$3" >"$WORK/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 150); do
    if VAULT_ADDR="http://$2" "$BIN" status >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then echo "ui-screenshot: the $1 server exited:" >&2; cat "$WORK/$1.log" >&2; exit 1; fi
    sleep 0.1
  done
  echo "ui-screenshot: the $1 server did not come up:" >&2; cat "$WORK/$1.log" >&2; exit 1
}
P() { VAULT_ADDR="http://$P_ADDR" "$BIN" "$@"; }

start dc1 "$P_ADDR" "$P_NATS"
start dc2 "$S_ADDR" "$S_NATS"
start dc3 "$T_ADDR" "$T_NATS"
P write -f sys/replication/performance/primary/enable >/dev/null
for sec in dc2:"$S_ADDR" dc3:"$T_ADDR"; do
  token=$(P write -field=wrapping_token sys/replication/performance/primary/secondary-token id="${sec%%:*}")
  VAULT_ADDR="http://${sec#*:}" "$BIN" write sys/replication/performance/secondary/enable token="$token" >/dev/null
done
for i in $(seq 1 20); do P kv put "secret/app/$i" value="$i" >/dev/null; done

# Writes go on while the page loads and samples, so its chart has something to draw.
( for i in $(seq 21 400); do P kv put "secret/app/$i" value="$i" >/dev/null 2>&1 || break; done ) &
writer=$!
pids+=("$writer")
profile=$WORK/profile
mkdir -p "$profile" "$(dirname "$OUT")"
HOME=$WORK XDG_CONFIG_HOME=$WORK XDG_CACHE_HOME=$WORK "$chromium" --headless=new --no-sandbox --disable-gpu \
  --disable-dev-shm-usage --no-first-run --no-default-browser-check --disable-extensions --hide-scrollbars \
  --user-data-dir="$profile" --window-size=1200,800 --virtual-time-budget=30000 \
  --screenshot="$WORK/shot.png" "http://$P_ADDR/ui/replication" </dev/null >/dev/null 2>"$WORK/chromium.log" || {
  echo "ui-screenshot: chromium failed:" >&2; tail -20 "$WORK/chromium.log" >&2; exit 1; }
kill -TERM "$writer" 2>/dev/null || true
mv "$WORK/shot.png" "$OUT"
echo "ui-screenshot: wrote $OUT"
