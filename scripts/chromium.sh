#!/usr/bin/env bash
# chromium.sh: print the path of a Chromium that runs headless, the browser
# tests/ui_e2e_test.go loads the status page (/ui/replication) with and
# scripts/ui-screenshot.sh photographs it with (docs/operations.md, "Status page").
# When it is missing, Debian's chromium is installed with apt-get (the machine
# reaches Debian's packages; it needs root, or sudo without a password). It
# never reads stdin, so it runs the same in CI.
set -euo pipefail

for bin in /usr/bin/chromium "$(command -v chromium || true)" "$(command -v chromium-browser || true)"; do
  if [ -n "$bin" ] && [ -x "$bin" ] && "$bin" --headless=new --no-sandbox --version >/dev/null 2>&1 </dev/null; then
    echo "$bin"
    exit 0
  fi
done
as_root=()
if [ "$(id -u)" != 0 ]; then
  if ! command -v sudo >/dev/null 2>&1 || ! sudo -n true 2>/dev/null; then
    echo "chromium.sh: chromium is not installed and this user can neither install it (not root) nor sudo without a password; install it: apt-get install chromium" >&2
    exit 1
  fi
  as_root=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
echo "chromium.sh: installing chromium with apt-get" >&2
if ! "${as_root[@]}" apt-get install -y -q --no-install-recommends chromium </dev/null >&2; then
  "${as_root[@]}" apt-get update -q </dev/null >&2
  "${as_root[@]}" apt-get install -y -q --no-install-recommends chromium </dev/null >&2
fi
bin=/usr/bin/chromium
"$bin" --headless=new --no-sandbox --version </dev/null >&2
echo "$bin"
