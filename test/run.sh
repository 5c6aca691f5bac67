#!/usr/bin/env bash
# `npm test`: install what is missing, build, lint, type-check the tests, run the whole
# vitest suite against real ZooKeeper and PostgreSQL, and end with one plain line
# `N passed, N failed[, N skipped]`.
#
# Two vitest passes: everything else (two files at a time), then the chaos test on its own —
# its nemesis loads both cores for minutes, and timing-sensitive tests should not share them.
set -uo pipefail
cd "$(dirname "$0")/.."

bash deploy/scripts/ensure-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

echo "[test] lint (biome)" >&2
npx --no-install biome check . || { echo "0 passed, 1 failed"; exit 1; }
echo "[test] type-check tests" >&2
npx --no-install tsc -p tsconfig.tests.json || { echo "0 passed, 1 failed"; exit 1; }

main=.test-results.json
chaos=.test-results-chaos.json
rm -f "$main" "$chaos"
status=0
if [ "$#" -gt 0 ]; then
  # `npm test -- <filters>`: one pass over what was asked for.
  echo "[test] vitest $*" >&2
  npx --no-install vitest run --reporter=default --reporter=json --outputFile.json="$main" "$@" || status=1
  node test/summary.mjs "$main" || status=1
  exit $status
fi
echo "[test] vitest (all but the chaos suite)" >&2
npx --no-install vitest run --reporter=default --reporter=json --outputFile.json="$main" --exclude 'test/chaos/**' || status=1
echo "[test] vitest (the chaos suite, alone)" >&2
npx --no-install vitest run --reporter=default --reporter=json --outputFile.json="$chaos" test/chaos || status=1
node test/summary.mjs "$main" "$chaos" || status=1
exit $status
