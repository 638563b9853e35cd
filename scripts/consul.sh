#!/usr/bin/env bash
# consul.sh: print the path of the Consul agent the storage/consul tests start,
# building it first when the cache does not hold it yet.
#
# The agent is a test-only tool (docs/consul.md): it is built from the Go
# module proxy in its own module, tools/consul (never the main module: Consul
# itself is BSL, and coffer links only its MPL-2.0 api module), into
#   ${COFFERTEST_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/coffer}/consul-<version>/consul
# which every later run reuses. The first build takes minutes (3 to 4 on two
# cores here, up to about 7 on a new machine); a cached run prints the path at once.
# It never reads stdin, so it runs the same in CI.
#
# Usage: scripts/consul.sh            # build if needed, print the path on stdout
#        scripts/consul.sh -path      # print the path only, build nothing
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

version=$(awk '$1 == "github.com/hashicorp/consul" { print $2 }' tools/consul/go.mod)
if [ -z "$version" ]; then
  echo "consul.sh: tools/consul/go.mod requires no github.com/hashicorp/consul version" >&2
  exit 1
fi
cache=${COFFERTEST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/coffer}
bin=$cache/consul-$version/consul

if [ "${1:-}" = "-path" ]; then
  echo "$bin"
  exit 0
fi
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$(dirname "$bin")"
tmp=$(mktemp "$bin.XXXXXX")
trap 'rm -f "$tmp"' EXIT
echo "consul.sh: building Consul $version into $bin (a few minutes the first time; later runs reuse it)" >&2
start=$(date +%s)
# consul-awsauth's pseudo-version is not in the checksum database; its hash is
# in tools/consul/go.sum like every other.
(cd tools/consul && GONOSUMDB=github.com/hashicorp/consul-awsauth CGO_ENABLED=0 \
  "$GO" build -trimpath -o "$tmp" github.com/hashicorp/consul) </dev/null
chmod 0755 "$tmp"
mv -f "$tmp" "$bin"
trap - EXIT
echo "consul.sh: built Consul $version in $(($(date +%s) - start)) s" >&2
"$bin" version >&2 || true
echo "$bin"
