#!/usr/bin/env bash
# Builds the static binaries and the FROM scratch images of the compose topology
# (deploy/compose, docs/operations.md): coffer:dev, coffer-nats:dev, coffer-natscli:dev,
# coffer-consul:dev. No image is pulled. The binaries come from the Go build cache, and an image whose
# binary did not change is a cached layer, so a second run takes seconds.
#   NATSCLI_VERSION  the nats CLI version (v0.5.0)
#   TAG              the image tag (dev)
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
TAG=${TAG:-dev}
NATSCLI_VERSION=${NATSCLI_VERSION:-v0.5.0}
OUT=bin/images
mkdir -p "$OUT/coffer" "$OUT/nats" "$OUT/natscli" "$OUT/consul"
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -trimpath"
LDFLAGS="-s -w -buildid="

step() { printf '== %s\n' "$*"; }
t0=$SECONDS

step "go build: coffer, coffer-compose-setup, nats-server (static, CGO_ENABLED=0)"
$GO build -ldflags="$LDFLAGS" -o "$OUT/coffer/coffer" ./cmd/coffer
$GO build -ldflags="$LDFLAGS" -o "$OUT/coffer/coffer-compose-setup" ./deploy/compose/setup
$GO build -ldflags="$LDFLAGS" -o "$OUT/nats/nats-server" github.com/nats-io/nats-server/v2

# The nats CLI is not a dependency of Coffer: install it from its own module,
# never through this go.mod.
if [ ! -x "$OUT/natscli/nats" ] || [ "$(cat "$OUT/natscli/.version" 2>/dev/null)" != "$NATSCLI_VERSION" ]; then
  step "go install github.com/nats-io/natscli/nats@$NATSCLI_VERSION (first run only)"
  GOBIN="$PWD/$OUT/natscli" GOFLAGS="-trimpath" $GO install -ldflags="$LDFLAGS" "github.com/nats-io/natscli/nats@$NATSCLI_VERSION"
  echo "$NATSCLI_VERSION" >"$OUT/natscli/.version"
fi

# The Consul agent of dc1's storage: the test-only build of scripts/consul.sh
# (tools/consul, BSL: a local image for the demo and the tests, never published;
# docs/consul.md). A FROM scratch image needs it static: consul.sh builds it
# with CGO_ENABLED=0, and a binary built otherwise is refused here.
step "consul agent (scripts/consul.sh: cached, or built once in a few minutes)"
consul_bin=$(GO=$GO ./scripts/consul.sh)
if ! $GO version -m "$consul_bin" | grep -q 'CGO_ENABLED=0'; then
  echo "images.sh: $consul_bin was not built with CGO_ENABLED=0, so it cannot run FROM scratch: delete it and run scripts/consul.sh again (it builds a static agent)" >&2
  exit 1
fi
cmp -s "$consul_bin" "$OUT/consul/consul" || cp -f "$consul_bin" "$OUT/consul/consul"
echo "binaries ready in $((SECONDS - t0))s"

# BuildKit when the buildx plugin is there, else the classic builder (enough for
# FROM scratch + COPY; its deprecation notice is filtered out).
if docker buildx version >/dev/null 2>&1; then builder=(env DOCKER_BUILDKIT=1); else builder=(env DOCKER_BUILDKIT=0); fi
build() { # image dockerfile context
  step "docker build $1"
  local out
  if ! out=$("${builder[@]}" docker build -q -t "$1" -f "deploy/compose/$2" "$3" 2>&1); then
    echo "$out" >&2
    exit 1
  fi
}
t1=$SECONDS
build "coffer:$TAG" Dockerfile.coffer "$OUT/coffer"
build "coffer-nats:$TAG" Dockerfile.nats "$OUT/nats"
build "coffer-natscli:$TAG" Dockerfile.natscli "$OUT/natscli"
build "coffer-consul:$TAG" Dockerfile.consul "$OUT/consul"
echo "images ready in $((SECONDS - t1))s (total $((SECONDS - t0))s):"
docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep -E "^coffer(-nats|-natscli|-consul)?:$TAG " | sed 's/^/  /' || true
