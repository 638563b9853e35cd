# Coffer: build, test, demo. Everything a fresh machine needs is fetched by these targets.
SHELL := /bin/bash
GO ?= go
BIN := bin
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(shell $(GO) env GOPATH)/bin/staticcheck
TEST_TIMEOUT ?= 30m

.PHONY: build test lint unit demo clean tools

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

unit:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

# test: formatting, vet, staticcheck, then every test (unit, crash, end-to-end).
test: lint unit

demo: build
	./scripts/demo.sh

clean:
	rm -rf $(BIN)
