#!/usr/bin/env bash
# make test: lint, then every package's tests with the race detector. Tests that need a broker
# that is not configured skip with a message naming it; this script lists those skips at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(gofmt -l . 2>&1 || true)
if [ -n "$out" ]; then echo "gofmt needed:"; echo "$out"; exit 1; fi
go vet ./...
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
go test -race -count=1 -timeout 10m -v ./... >"$log" 2>&1
rc=$?
set -e
# Package results and failures in full; passing test lines summarised.
grep -E '^(ok|FAIL|---|panic:|\s+--- FAIL)|^\s+\S+_test\.go:[0-9]+:|^\s+suite\.go:[0-9]+:' "$log" | grep -v -- '--- PASS' | grep -v -- '--- SKIP' || true
passed=$(grep -cE '^\s*--- PASS' "$log" || true)
failed=$(grep -cE '^\s*--- FAIL' "$log" || true)
skipped=$(grep -cE '^\s*--- SKIP' "$log" || true)
if [ "$skipped" -gt 0 ]; then
  echo
  echo "Skipped tests (reason):"
  grep -B0 -A1 -E '^\s*--- SKIP' "$log" | grep -vE '^\s*--- SKIP|^--$' | sed -E 's/^\s+/  /' | sort | uniq -c | sort -rn | head -40
fi
echo
echo "make test: $passed passed, $failed failed, $skipped skipped"
exit $rc
