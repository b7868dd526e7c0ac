# Courier — make targets. `make help` lists them.
SHELL := /bin/bash
GO    ?= go
PKGS  ?= ./...

.PHONY: help demo test test-short integration bench bench-peers lint fmt vet brokers-up brokers-down images integration-containers

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

demo: ## run the quickstart on memory:// (or on $$COURIER_URL)
	$(GO) run ./examples/quickstart

test: ## unit tests + in-process conformance (race detector on); skips what needs a missing broker and says so
	@bash .ci/test.sh

# Packages run one at a time (-p 1): fault tests stop and reconfigure the shared brokers.
integration: brokers-up ## start native brokers, then run every test against them (COURIER_REQUIRE_BROKERS=1)
	@set -a; source .brokers/env; set +a; export COURIER_REQUIRE_BROKERS=1; \
		bash .ci/gotest.sh -race -tags integration -count=1 -p 1 -timeout 28m $(PKGS)

# Containers (testcontainers-go) instead of native brokers: local images built here without a
# registry (images/build.sh), started by the test binaries on the host's network. See README.
images: ## build local broker images (Debian base by debootstrap, brokers as brokers-up installs them); FORCE=1 rebuilds
	@bash images/build.sh $(if $(FORCE),--force)

integration-containers: ## start dockerd if needed, build missing images, run the broker tests against containers the tests start
	@bash images/integration.sh

# Broker benchmarks (Courier vs the raw client, same run) need the brokers: `make brokers-up`
# first; without them they skip. BENCH narrows the set, COUNT sets repetitions.
BENCH ?= .
COUNT ?= 5
bench: ## benchmarks: engine, memory://, middleware, and Courier vs each raw client side by side
	@if [ -f .brokers/env ]; then set -a; source .brokers/env; set +a; fi; \
		$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count $(COUNT) -timeout 60m $(PKGS)

# Peer comparison (bench/, its own module so Courier's users never download the peers): Courier
# vs Watermill, Go CDK and franz-go on the brokers of `make brokers-up`, interleaved rounds, one
# BENCH line per comparison (bench/README.md). PEERS_FLAGS passes flags, e.g. -brokers kafka -rounds 3.
PEERS_FLAGS ?=
bench-peers: ## Courier vs Watermill, Go CDK and franz-go on the running brokers (~10 min; needs make brokers-up)
	@if [ ! -f .brokers/env ]; then echo "bench-peers: no .brokers/env: start the brokers with 'make brokers-up' first" >&2; exit 1; fi; \
		set -a; source .brokers/env; set +a; cd bench && $(GO) run . $(PEERS_FLAGS)

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint: vet ## gofmt + go vet + staticcheck (with and without -tags integration) + go mod tidy check
	@out=$$(gofmt -l . 2>&1); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) run $(STATICCHECK) $(PKGS)
	$(GO) run $(STATICCHECK) -tags integration $(PKGS)
	@cp go.mod /tmp/courier-go.mod.$$$$; cp go.sum /tmp/courier-go.sum.$$$$; $(GO) mod tidy; \
		if ! cmp -s go.mod /tmp/courier-go.mod.$$$$ || ! cmp -s go.sum /tmp/courier-go.sum.$$$$; then echo "go mod tidy changes go.mod/go.sum: run it and commit"; \
		cp /tmp/courier-go.mod.$$$$ go.mod; cp /tmp/courier-go.sum.$$$$ go.sum; rm -f /tmp/courier-go.*.$$$$; exit 1; fi; rm -f /tmp/courier-go.*.$$$$

vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags integration $(PKGS)

fmt: ## gofmt -w
	gofmt -w .

brokers-up: ## install (if missing) and start RabbitMQ, Kafka, SQS, Pub/Sub, Redis, PostgreSQL on loopback
	@bash integration/brokers/up.sh

brokers-down: ## stop what brokers-up started
	@bash integration/brokers/down.sh
