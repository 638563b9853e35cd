#!/usr/bin/env bash
# hvac.sh: print the path of a python3 that imports hvac, the Python client
# of Vault that tests/hvac drives Coffer with (docs/operations.md, "Clients").
# When it is missing, Debian's python3-hvac is installed with apt-get (the
# machine reaches Debian's packages; it needs root, or sudo without a
# password). It never reads stdin, so it runs the same in CI.
set -euo pipefail

# Debian's python3 first: python3-hvac installs into its dist-packages, which
# another python3 on PATH (pyenv's, /usr/local's) does not read.
for py in /usr/bin/python3 "$(command -v python3 || true)"; do
  if [ -n "$py" ] && [ -x "$py" ] && "$py" -c 'import hvac' >/dev/null 2>&1; then
    echo "$py"
    exit 0
  fi
done
as_root=()
if [ "$(id -u)" != 0 ]; then
  if ! sudo -n true 2>/dev/null; then
    echo "hvac.sh: python3-hvac is not installed and this user can neither install it (not root) nor sudo without a password; install it: apt-get install python3-hvac" >&2
    exit 1
  fi
  as_root=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
echo "hvac.sh: installing python3-hvac with apt-get" >&2
if ! "${as_root[@]}" apt-get install -y -q --no-install-recommends python3-hvac </dev/null >&2; then
  "${as_root[@]}" apt-get update -q </dev/null >&2
  "${as_root[@]}" apt-get install -y -q --no-install-recommends python3-hvac </dev/null >&2
fi
py=/usr/bin/python3
"$py" -c 'import hvac' >&2
echo "$py"
