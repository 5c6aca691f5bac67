#!/usr/bin/env bash
# `npm test`: install what is missing, build, lint, type-check the tests, run the whole
# vitest suite against real ZooKeeper and PostgreSQL, and end with one plain line
# `N passed, N failed[, N skipped]`.
set -uo pipefail
cd "$(dirname "$0")/.."

bash deploy/scripts/ensure-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

echo "[test] lint (biome)" >&2
npx --no-install biome check . || { echo "0 passed, 1 failed"; exit 1; }
echo "[test] type-check tests" >&2
npx --no-install tsc -p tsconfig.tests.json || { echo "0 passed, 1 failed"; exit 1; }

results=.test-results.json
rm -f "$results"
echo "[test] vitest" >&2
npx --no-install vitest run --reporter=default --reporter=json --outputFile.json="$results" "$@"
status=$?
node test/summary.mjs "$results" || status=1
exit $status
