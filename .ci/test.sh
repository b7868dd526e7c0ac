#!/usr/bin/env bash
# make test: gofmt, go vet, then every package's tests with the race detector. Tests that need a
# broker that is not configured skip, and the summary lists every skip with its reason.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(gofmt -l . 2>&1 || true)
if [ -n "$out" ]; then echo "gofmt needed:"; echo "$out"; exit 1; fi
go vet ./...
go build -o "${TMPDIR:-/tmp}/courier-testsummary" ./internal/testsummary
set +e
go test -race -count=1 -timeout 10m -json "$@" ./... | "${TMPDIR:-/tmp}/courier-testsummary"
rcs=("${PIPESTATUS[@]}")
rc=0
if [ "${rcs[0]}" != 0 ] || [ "${rcs[1]}" != 0 ]; then rc=1; fi
set -e
exit "$rc"
