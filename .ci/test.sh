#!/usr/bin/env bash
# make test: gofmt, go vet, then every package's tests with the race detector. Tests that need a
# broker that is not configured skip, and the summary lists every skip with its reason.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(gofmt -l . 2>&1 || true)
if [ -n "$out" ]; then echo "gofmt needed:"; echo "$out"; exit 1; fi
go vet ./...
go vet -tags integration ./...
exec .ci/gotest.sh -race -count=1 -timeout 10m "$@" ./...
