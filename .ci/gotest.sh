#!/usr/bin/env bash
# Runs `go test -json <args>` and prints a readable summary (internal/testsummary): each
# package's result, failed tests' output in full, skips grouped by reason, and a closing
# "N passed, N failed, N skipped" line. The full JSON stream is kept in .ci/last-test.json
# (git-ignored) for digging.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${TMPDIR:-/tmp}/courier-testsummary-$$"
go build -o "$bin" ./internal/testsummary
trap 'rm -f "$bin"' EXIT
set +e
go test -json "$@" | tee .ci/last-test.json | "$bin"
rcs=("${PIPESTATUS[@]}")
set -e
if [ "${rcs[0]}" != 0 ] || [ "${rcs[2]}" != 0 ]; then exit 1; fi
