# Coffer: build, test, demo. Everything a fresh machine needs is fetched by these targets.
SHELL := /bin/bash
GO ?= go
BIN := bin
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(shell $(GO) env GOPATH)/bin/staticcheck
TEST_TIMEOUT ?= 30m

.PHONY: build test lint licences unit consul demo clean tools images compose-test failover-drill chaos

build:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/coffer ./cmd/coffer

tools: $(STATICCHECK)

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: tools
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	$(GO) run ./scripts/linelimits

# licences: every Go module linked into the coffer binary must have an
# OSI-approved licence; a Business Source License, a missing licence file or an
# unrecognised text fails, naming the module (docs/licences.md). It reads the
# module cache only: no network once the modules are downloaded.
licences:
	$(GO) run ./scripts/licences -go=$(GO)

# consul: the Consul agent the storage/consul tests start, built once into a
# cache directory from the Go module proxy (scripts/consul.sh, docs/consul.md).
consul:
	GO=$(GO) ./scripts/consul.sh

# unit gets the agent's path from scripts/consul.sh: a build that fails stops
# here, so the consul tests never skip under make test.
# The hvac test gets Debian's python3 with hvac from scripts/hvac.sh, which
# installs python3-hvac when it is missing; the status page test gets a headless
# Chromium from scripts/chromium.sh, which installs Debian's chromium likewise.
unit: consul
	bin=$$(GO=$(GO) ./scripts/consul.sh) && py=$$(./scripts/hvac.sh) && chromium=$$(./scripts/chromium.sh) && \
	  COFFERTEST_CONSUL_BIN=$$bin COFFERTEST_HVAC_PYTHON=$$py COFFERTEST_CHROMIUM=$$chromium $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

# images: static binaries and the FROM scratch images of deploy/compose
# (coffer:dev, coffer-nats:dev, coffer-natscli:dev); nothing is pulled.
images:
	./scripts/images.sh

# compose-test: the fault tests of the compose topology (tests/compose,
# docs/operations.md), when a Docker engine answers; otherwise a log line says
# they were skipped.
compose-test:
	@if docker info >/dev/null 2>&1; then \
	  ./scripts/images.sh && \
	  COFFER_COMPOSE_TESTS=1 $(GO) test -count=1 -v -timeout 20m ./tests/compose/; \
	else \
	  echo "compose-test: SKIPPED: no Docker engine answers (docker info failed); the compose fault tests did not run"; \
	fi

# failover-drill: the DR failover drill (docs/operations.md, "Failover drill")
# on a compose topology it brings up itself and removes (down -v): a client
# writes through dc2, dc1 is killed, dr1 is promoted with a DR operation token
# from dc1's recovery key, dc2 and dc3 follow it. It prints the recovery time
# and the acknowledged writes lost, and fails only when the failover does.
# DRILL_RUNS=3 runs it three times, each on a fresh topology. Not part of test
# (compose-test runs its short variant).
DRILL_RUNS ?= 1
failover-drill:
	@docker info >/dev/null 2>&1 || { echo "failover-drill: no Docker engine answers (docker info failed): start Docker, or run the drill on a machine that has it"; exit 1; }
	./scripts/images.sh
	COFFER_COMPOSE_TESTS=1 COFFER_FAILOVER_DRILL=1 $(GO) test -count=$(DRILL_RUNS) -v -timeout 30m -run '^TestFailoverDrill$$' ./tests/compose/

# chaos: the long fault campaign (tests/chaos, docs/reliability.md): a
# primary, a performance and a DR secondary on a three-node NATS cluster take
# writes while CHAOS_ROUNDS faults hit them, drawn from CHAOS_SEED (empty: the
# time; a failing run prints its seed and schedule); then the checker. The
# short campaign (fourteen rounds, two of each fault) runs in test.
CHAOS_ROUNDS ?= 160
CHAOS_SEED ?=
chaos:
	COFFER_CHAOS_ROUNDS=$(CHAOS_ROUNDS) COFFER_CHAOS_SEED=$(CHAOS_SEED) $(GO) test -count=1 -v -timeout 6h -run '^TestChaos$$' ./tests/chaos/

# test: formatting, vet, staticcheck, the licence check, then every test (unit,
# crash, end-to-end), then the compose fault tests when Docker is there.
test: lint licences unit compose-test

demo: build
	./scripts/demo.sh

clean:
	rm -rf $(BIN)
